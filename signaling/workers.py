"""`sprechzimmer serve --workers N`: N nodes on one machine, sharing the HTTP port.

Each worker is a process of its own (`python -m signaling serve --worker-index i --worker-count
N`): the app, its relay and its event loop on one core. They all bind the HTTP port with
SO_REUSEPORT, and the kernel spreads new connections over them by a hash of the 4-tuple (measured
against a supervisor that accepts and hands sockets over in docs/scaling.md). Each gets its own
slice of the UDP range, so no two relays ever bind the same port, its own metrics port (the
configured one plus its index) and its own node id (`<node_id or hostname>-<index>`).

The supervisor only watches: it restarts a worker that dies without being asked to (with a back-off
so a worker that cannot start does not spin), passes SIGTERM, SIGINT and SIGHUP on to every worker,
and exits once all have exited after a stop. Workers die with it (PR_SET_PDEATHSIG), so a killed
supervisor leaves no orphan holding the port.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import logging
import os
import signal
import socket
import subprocess
import sys
import time

from signaling.config import Config
from signaling.logs import LOGGER_NAME, log_event

__all__ = ["WorkerError", "node_id", "run_workers", "worker_config", "worker_count"]

logger = logging.getLogger(LOGGER_NAME)

# A room's two legs take a port each: a slice smaller than that holds no call at all.
MIN_PORTS_PER_WORKER = 2
# A worker that died after running this long is restarted at once; sooner, after a back-off that
# doubles up to RESTART_MAX_SECONDS (a broken config or a taken port must not spin the CPU).
HEALTHY_RUN_SECONDS = 60.0
RESTART_FIRST_SECONDS = 1.0
RESTART_MAX_SECONDS = 30.0
POLL_SECONDS = 0.2
PR_SET_PDEATHSIG = 1  # linux/prctl.h


class WorkerError(Exception):
    """A `--workers` request that cannot work; `str()` is the one line for the operator."""


def worker_count(text: str) -> int:
    """`auto` (one per core this process may run on) or a positive integer."""
    if text == "auto":
        return max(1, len(os.sched_getaffinity(0)))
    if not text.isdigit() or int(text) < 1:
        raise WorkerError(f"--workers: must be 'auto' or a positive integer, got {text!r}")
    return int(text)


def check_workers(config: Config, count: int) -> None:
    """Refuse what would not work: several workers without Redis (rooms and login throttles
    would not be shared), or a UDP range too small to split."""
    if count == 1:
        return
    if not config.cluster.enabled:
        raise WorkerError(
            f"--workers {count} needs cluster.redis_url (or SPRECHZIMMER_REDIS_URL): without "
            "Redis the workers would not share rooms or login throttles"
        )
    media = config.media
    ports = media.udp_port_max - media.udp_port_min + 1
    if ports // count < MIN_PORTS_PER_WORKER:
        raise WorkerError(
            f"media.udp_port_min..udp_port_max: {ports} port(s) cannot be split into {count} "
            f"slices of at least {MIN_PORTS_PER_WORKER} (one room's two legs)"
        )


def node_id(config: Config, index: int | None) -> str:
    """`cluster.node_id`, else the hostname; `-<index>` added for a worker of `--workers`."""
    base = config.cluster.node_id or socket.gethostname().split(".")[0] or "node"
    return base if index is None else f"{base}-{index}"


def worker_config(config: Config, index: int, count: int) -> Config:
    """The configuration of worker `index` of `count`: its slice of the UDP range (split evenly;
    the remainder of an uneven split is left unused so every slice has the same size) and its
    own metrics port."""
    media = config.media
    size = (media.udp_port_max - media.udp_port_min + 1) // count
    low = media.udp_port_min + index * size
    metrics = config.metrics
    if metrics.enabled:
        host = f"[{metrics.host}]" if ":" in metrics.host else metrics.host
        metrics = dataclasses.replace(metrics, listen=f"{host}:{metrics.port + index}")
    return dataclasses.replace(
        config,
        media=dataclasses.replace(media, udp_port_min=low, udp_port_max=low + size - 1),
        metrics=metrics,
    )


def run_workers(config_path: str, count: int) -> int:
    """Start `count` workers and supervise them until they have all exited after a signal."""
    supervisor = _Supervisor(config_path, count)
    return supervisor.run()


class _Supervisor:
    def __init__(self, config_path: str, count: int) -> None:
        self._config_path = config_path
        self._count = count
        self._workers: dict[int, subprocess.Popen[bytes]] = {}
        self._started: dict[int, float] = {}
        self._backoff: dict[int, float] = {}
        self._restart_at: dict[int, float] = {}
        self._stopping = False
        self._failed = False

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._pass_on)
        for index in range(self._count):
            self._start(index)
        log_event(logger, "workers_started", workers=self._count)
        while self._workers or (self._restart_at and not self._stopping):
            self._reap()
            self._restart_due()
            time.sleep(POLL_SECONDS)
        log_event(logger, "workers_stopped")
        return 1 if self._failed else 0

    def _start(self, index: int) -> None:
        command = [
            sys.executable,
            "-m",
            "signaling",
            "serve",
            "--config",
            self._config_path,
            "--worker-index",
            str(index),
            "--worker-count",
            str(self._count),
        ]
        # its own session: a terminal's Ctrl-C reaches the supervisor only, which passes it on
        # once, instead of every worker getting it twice
        self._workers[index] = subprocess.Popen(
            command, start_new_session=True, preexec_fn=_die_with_parent
        )
        self._started[index] = time.monotonic()

    def _pass_on(self, signum: int, frame: object) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT):
            self._stopping = True
            self._restart_at.clear()
        for process in self._workers.values():
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signum)

    def _reap(self) -> None:
        for index, process in list(self._workers.items()):
            status = process.poll()
            if status is None:
                continue
            del self._workers[index]
            if self._stopping:
                if status != 0:
                    self._failed = True
                continue
            ran = time.monotonic() - self._started[index]
            delay = 0.0 if ran >= HEALTHY_RUN_SECONDS else self._backoff.get(index, 0.0)
            self._backoff[index] = min(max(delay * 2, RESTART_FIRST_SECONDS), RESTART_MAX_SECONDS)
            log_event(
                logger,
                "worker_died",
                logging.ERROR,
                worker=index,
                status=status,
                restart_in=f"{delay:g}s",
            )
            self._restart_at[index] = time.monotonic() + delay

    def _restart_due(self) -> None:
        now = time.monotonic()
        for index, at in list(self._restart_at.items()):
            if now >= at:
                del self._restart_at[index]
                self._start(index)


def _die_with_parent() -> None:
    # runs in the child between fork and exec: SIGTERM when the supervisor dies, however it dies
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
