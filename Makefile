# make run   — set up .venv, the data directory and database, then serve config/default.yaml
# make test  — set up .venv with test extras, chromium and coturn, lint, then run the whole test suite

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CONFIG ?= config/default.yaml

.PHONY: run test lint format clean chromium coturn

run: $(VENV)/.installed
	$(BIN)/sprechzimmer bootstrap --config $(CONFIG)
	$(BIN)/sprechzimmer serve --config $(CONFIG)

test: $(VENV)/.installed-test chromium coturn lint
	$(BIN)/pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed-test
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache test-artifacts build
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Stamp files: reinstall only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

# Browser tests drive Debian's chromium through playwright (no browser download).
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; \
	  else \
	    echo "error: /usr/bin/chromium is missing; install Debian's chromium package (sudo apt-get install chromium)" >&2; \
	    exit 1; \
	  fi; \
	fi

# The TURN tests start their own turnserver on 127.0.0.1 (tests/web/coturn_server.py). Under
# systemd, Debian's package enables and starts coturn.service on port 3478 of every address with
# its default configuration, so this turns it off again. (Its sysv script starts nothing unless
# /etc/default/coturn sets TURNSERVER_ENABLED=1, and containers' policy-rc.d denies starting.)
coturn:
	@if [ ! -x /usr/bin/turnserver ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends coturn \
	      && if [ -d /run/systemd/system ]; then systemctl disable --now coturn.service; fi; \
	  else \
	    echo "error: /usr/bin/turnserver is missing; install Debian's coturn package (sudo apt-get install coturn)" >&2; \
	    exit 1; \
	  fi; \
	fi
