# make run   — set up .venv, the data directory and database, then serve config/default.yaml
# make test  — set up .venv with test extras, chromium, firefox, webkit, coturn, postgresql and redis, lint, then run the whole test suite
# make lock  — rewrite requirements/*.txt after a change of dependencies in pyproject.toml
# make lock-upgrade — move every pin in requirements/*.txt to the newest version that fits

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CONFIG ?= config/default.yaml

# The lock: every package with its version and hashes, for the service alone and with the test
# extras (the same versions in both). pip-compile writes them; pinned so that `make lock` on
# another machine writes the same format.
LOCK_RUN  := requirements/run.txt
LOCK_TEST := requirements/test.txt
PIP_TOOLS := pip-tools==7.6.2
LOCK_VENV := build/lock-venv
PIP_COMPILE = CUSTOM_COMPILE_COMMAND="make lock" $(LOCK_VENV)/bin/pip-compile --quiet \
	--generate-hashes --allow-unsafe --strip-extras --build-deps-for editable \
	--no-emit-index-url --no-emit-find-links $(PIP_COMPILE_FLAGS)

.PHONY: run test lint format clean chromium firefox webkit coturn postgresql redis lock lock-upgrade

run: $(VENV)/.installed
	$(BIN)/sprechzimmer bootstrap --config $(CONFIG)
	$(BIN)/sprechzimmer serve --config $(CONFIG)

test: $(VENV)/.installed-test chromium firefox webkit coturn postgresql redis lint
	$(BIN)/pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(VENV)/.installed-test
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache test-artifacts build $(BIDI)/node_modules
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Stamp files: reinstall only when pyproject.toml or the lock changes. The locked packages go in
# first, in hash-checking mode; then the project itself, which has no single file to hash, without
# dependencies and built by the locked setuptools. pip check fails if the lock lacks one.
$(VENV)/.installed: pyproject.toml $(LOCK_RUN) | $(BIN)/python
	$(BIN)/pip install --quiet --require-hashes -r $(LOCK_RUN)
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/pip check
	touch $@

$(VENV)/.installed-test: pyproject.toml $(LOCK_TEST) | $(BIN)/python
	$(BIN)/pip install --quiet --require-hashes -r $(LOCK_TEST)
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/pip check
	touch $@ $(VENV)/.installed

# Keeps every pin that still fits pyproject.toml; the test lock first, then the service's lock
# constrained to it, so both hold the same versions. Needs PyPI; takes a few minutes.
lock: | $(LOCK_VENV)/bin/pip-compile
	$(PIP_COMPILE) --extra test --output-file $(LOCK_TEST) pyproject.toml
	$(PIP_COMPILE) --constraint $(LOCK_TEST) --output-file $(LOCK_RUN) pyproject.toml

lock-upgrade:
	$(MAKE) lock PIP_COMPILE_FLAGS=--upgrade

$(LOCK_VENV)/bin/pip-compile:
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install --quiet $(PIP_TOOLS)

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

# The Firefox tests (tests/web/firefox_bidi.py) drive Debian's firefox-esr over WebDriver BiDi
# with puppeteer-core from tests/web/bidi/package-lock.json: npm ci installs exactly the lock,
# and no browser is downloaded (puppeteer-core has no download step; the variable makes sure).
BIDI := tests/web/bidi
firefox: $(BIDI)/node_modules/.installed
	@if [ ! -x /usr/bin/firefox-esr ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends firefox-esr; \
	  else \
	    echo "error: /usr/bin/firefox-esr is missing; install Debian's firefox-esr package (sudo apt-get install firefox-esr)" >&2; \
	    exit 1; \
	  fi; \
	fi

$(BIDI)/node_modules/.installed: $(BIDI)/package.json $(BIDI)/package-lock.json
	@if ! command -v npm >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nodejs npm; \
	  else \
	    echo "error: node and npm are missing; install Debian's nodejs and npm packages (sudo apt-get install nodejs npm)" >&2; \
	    exit 1; \
	  fi; \
	fi
	cd $(BIDI) && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Debian's WebKitGTK has no WebRTC; tests/web/test_safari_paths.py holds that with its WebDriver
# under Xvfb (docs/browsers.md), and tests Safari's code paths in chromium.
webkit:
	@if [ ! -x /usr/bin/WebKitWebDriver ] || [ ! -x /usr/bin/Xvfb ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends webkit2gtk-driver xvfb; \
	  else \
	    echo "error: WebKitWebDriver or Xvfb is missing; install Debian's webkit2gtk-driver and xvfb packages (sudo apt-get install webkit2gtk-driver xvfb)" >&2; \
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

# The storage tests start their own PostgreSQL server in a temp dir on 127.0.0.1
# (tests/postgres_server.py) from Debian's binaries in /usr/lib/postgresql/<version>/bin. Debian's
# package also creates a cluster "main" on port 5432 and, under systemd, starts it; the tests never
# use it, so it is turned off again. (In containers policy-rc.d keeps it from starting at all.)
postgresql:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql \
	      && if [ -d /run/systemd/system ]; then systemctl disable --now postgresql.service; fi; \
	  else \
	    echo "error: PostgreSQL's server binaries are missing; install Debian's postgresql package (sudo apt-get install postgresql)" >&2; \
	    exit 1; \
	  fi; \
	fi

# The cluster tests start their own redis-server in a temp dir on 127.0.0.1 (tests/redis_server.py).
# Under systemd, Debian's package enables and starts redis-server.service on port 6379; the tests
# never use it, so it is turned off again. (In containers policy-rc.d keeps it from starting.)
redis:
	@if [ ! -x /usr/bin/redis-server ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server \
	      && if [ -d /run/systemd/system ]; then systemctl disable --now redis-server.service; fi; \
	  else \
	    echo "error: /usr/bin/redis-server is missing; install Debian's redis-server package (sudo apt-get install redis-server)" >&2; \
	    exit 1; \
	  fi; \
	fi
