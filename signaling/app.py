"""The aiohttp application: routes, security headers and error handling, and `serve`."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import signal
import ssl
from collections.abc import AsyncIterator, Awaitable, MutableMapping
from typing import TYPE_CHECKING

from aiohttp import web

from signaling.config import Config
from signaling.connection_guard import ConnectionGuard, GuardedSite
from signaling.credentials import load_or_create_session_secret
from signaling.drain import DRAIN, Drain, wait_for_rooms_to_end
from signaling.health_recorder import record_health_periodically
from signaling.http_errors import (
    API_PREFIX,
    MAX_BODY_BYTES,
    STORAGE_RETRY_AFTER_SECONDS,
    api_error_middleware,
    log_request_error,
    storage_failure_status,
)
from signaling.invitations_by_mail import InvitationsByMail, send_reminders_periodically
from signaling.logs import LOGGER_NAME, log_event
from signaling.metrics import METRICS, ClusterNode, Metrics, serve_metrics
from signaling.readiness import check_readiness
from signaling.relay_setup import (
    CONSULTATIONS,
    OTHER_NODES,
    SIGNED_IN_SOCKETS,
    close_live_media,
    live_media,
    live_state,
)
from signaling.routes_admin import AdminApi, SetPasswordApi
from signaling.routes_client import ClientApi
from signaling.routes_integration import IntegrationApi
from signaling.routes_pages import Pages
from signaling.routes_single_sign_on import SingleSignOn
from signaling.routes_statistics import OwnRecordsApi
from signaling.routes_therapist import TherapistApi
from signaling.storage import Storage, StorageFailure, open_storage
from signaling.tls import reload_certificate, server_context
from signaling.ws_endpoint import SignalingEndpoint

if TYPE_CHECKING:
    from signaling.cluster import Cluster
    from signaling.cluster.signal_relay import SignalRelay

__all__ = [
    "CLUSTER",
    "CONFIG",
    "CONNECTION_GUARD",
    "SESSION_SECRET",
    "SIGNALING",
    "STORAGE",
    "create_app",
    "listen_url",
    "serve",
    "shut_down",
    "start_site",
]

CONFIG = web.AppKey("config", Config)
STORAGE = web.AppKey("storage", Storage)
SESSION_SECRET = web.AppKey("session_secret", str)
SIGNALING = web.AppKey("signaling", SignalingEndpoint)
CONNECTION_GUARD = web.AppKey("connection_guard", ConnectionGuard)
# Only in a cluster (cluster.redis_url): this node's membership (signaling/cluster/).
CLUSTER: web.AppKey[Cluster] = web.AppKey("cluster")

# SIGTERM to exit in under 10 s: telling participants, closing rooms and their database writes
# get DRAIN_SECONDS; stopping HTTP (open requests get HANDLER_GRACE_SECONDS) gets CLEANUP_SECONDS.
DRAIN_SECONDS = 5.0
CLEANUP_SECONDS = 3.0
HANDLER_GRACE_SECONDS = 2.0

logger = logging.getLogger(LOGGER_NAME)

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'"
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Permissions-Policy": "camera=(self), microphone=(self), display-capture=(self)",
}

# A plain page, in both of the service's languages: no template, script or stylesheet that could
# itself need the database or fail.
STORAGE_UNAVAILABLE_PAGE = (
    "503 Service Unavailable\n\n"
    "Der Dienst kann gerade nicht auf seine Daten zugreifen. "
    "Bitte laden Sie die Seite in einer Minute neu.\n\n"
    "The service cannot reach its data right now. Please reload this page in a minute.\n"
)

# One year, the minimum for browsers' HSTS preload lists.
HSTS = "max-age=31536000"


def create_app(
    config: Config,
    storage: Storage,
    session_secret: str | None = None,
    cluster: Cluster | None = None,
) -> web.Application:
    """Build the application. `storage` and `cluster` stay owned by the caller (open and close
    them there)."""
    headers = dict(SECURITY_HEADERS)
    if config.server.tls:
        headers["Strict-Transport-Security"] = HSTS
    guard = ConnectionGuard(config.limits, config.server.trusted_proxies, headers)
    # The header middleware is outermost so that 500s from the error middleware get headers too;
    # the API's JSON errors are innermost, so /api/ never falls through to the plain-text 500.
    # The guard's middleware comes next: its 429 gets the headers, and it sees a request from
    # start to end.
    app = web.Application(
        middlewares=[
            _security_headers_middleware(headers),
            guard.middleware,
            _error_middleware,
            api_error_middleware,
        ],
        client_max_size=MAX_BODY_BYTES,
    )
    app[CONFIG] = config
    app[CONNECTION_GUARD] = guard
    app[STORAGE] = storage
    app[SESSION_SECRET] = session_secret or config.server.session_secret or ""
    app[METRICS] = metrics = Metrics()
    app[DRAIN] = drain = Drain()
    login_attempts = code_attempts = sso_attempts = None
    signal_relay = None
    if cluster is not None:
        from signaling.cluster.login_attempts import RedisLoginAttempts

        app[CLUSTER] = cluster
        # a new room needs Redis (placement, the signal relay): without it, "try again"
        drain.refuse_joins_while(lambda: not cluster.reachable)
        login_attempts = RedisLoginAttempts(cluster.link, config.cluster.key_prefix, config.limits)
        code_attempts = RedisLoginAttempts(
            cluster.link,
            config.cluster.key_prefix,
            config.limits,
            namespace="login-code",
            unavailable="Codes cannot be checked right now; try again in a moment",
        )
        sso_attempts = RedisLoginAttempts(
            cluster.link, config.cluster.key_prefix, config.limits, namespace="login-sso"
        )
        from signaling.cluster.signal_relay import SignalRelay

        signal_relay = SignalRelay(cluster, config.cluster.heartbeat_interval_seconds)
        metrics.watch_cluster(_cluster_view(cluster))
    metrics.watch_live(lambda: live_state(app))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    invitation_mail = InvitationsByMail(config, storage, app[SESSION_SECRET], metrics=metrics)
    TherapistApi(
        config,
        storage,
        session_secret=app[SESSION_SECRET],
        login_attempts=login_attempts,
        invitation_mail=invitation_mail,
        code_attempts=code_attempts,
    ).register(app.router)
    IntegrationApi(config, storage, invitation_mail=invitation_mail).register(app.router)
    AdminApi(config, storage).register(app.router)
    SetPasswordApi(config, storage).register(app.router)
    OwnRecordsApi(config, storage).register(app.router)
    ClientApi(config, storage).register(app.router)
    app[SIGNALING] = SignalingEndpoint(
        config,
        storage,
        lambda: app[CONSULTATIONS],
        metrics=metrics,
        drain=drain,
        cluster=cluster,
        signal_relay=signal_relay,
    )
    app[SIGNALING].register(app.router)
    pages = Pages(config, storage)
    pages.register(app.router)
    SingleSignOn(
        config, storage, pages, session_secret=app[SESSION_SECRET], attempts=sso_attempts
    ).register(app.router)
    app.cleanup_ctx.append(live_media(config, storage))
    if cluster is not None and signal_relay is not None:
        # after live_media: it needs the consultations
        app.cleanup_ctx.append(_cluster_rooms(cluster, signal_relay))
    app.cleanup_ctx.append(_purge_periodically)
    app.cleanup_ctx.append(record_health_periodically(storage))
    if config.mail.enabled:
        app.cleanup_ctx.append(send_reminders_periodically(invitation_mail))
    return app


def _cluster_rooms(cluster: Cluster, signal_relay: SignalRelay):  # type: ignore[no-untyped-def]
    """The placement of this node's rooms (renewed each heartbeat, released at their end), the
    signal relay's watcher, the dashboards' presence, cancels and sign-outs reaching other
    nodes, and the sweep of dead nodes' rooms, for as long as the app runs."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        from signaling.cluster.presence import Presence
        from signaling.cluster.remote_actions import RemoteActions
        from signaling.cluster.room_sweep import RoomSweep, sweep_interval

        tasks: set[asyncio.Task[None]] = set()
        presence = Presence(
            cluster, app[CONFIG].cluster.key_prefix, app[STORAGE], app[CONSULTATIONS]
        )
        actions = RemoteActions(cluster, app[STORAGE], app[CONSULTATIONS], app[SIGNED_IN_SOCKETS])
        app[OTHER_NODES] = actions
        settings = app[CONFIG].cluster
        sweep = RoomSweep(
            cluster,
            app[STORAGE],
            app[CONSULTATIONS],
            settings.dead_room_grace_seconds,
            sweep_interval(settings.heartbeat_interval_seconds, settings.dead_room_grace_seconds),
        )
        sweep.on_swept.append(lambda a: presence.room_reset(a.therapist_id, a.id))

        def hosted() -> list[int]:
            registry = app.get(CONSULTATIONS)
            return [c.appointment_id for c in registry.active] if registry is not None else []

        def ended(appointment_id: int) -> None:
            from signaling.cluster import RedisUnavailable

            async def release() -> None:
                # left in place, the key expires one TTL later anyway
                with contextlib.suppress(RedisUnavailable):
                    await cluster.placement.release(appointment_id)

            task = asyncio.create_task(release())
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        cluster.hosted_rooms = hosted
        app[CONSULTATIONS].on_ended.append(ended)
        signal_relay.start()
        presence.start()
        actions.start()
        sweep.start()
        yield
        await sweep.close()
        await actions.close()
        await presence.close()
        await signal_relay.close()

    return context


def _cluster_view(cluster: Cluster):  # type: ignore[no-untyped-def]
    async def read() -> list[ClusterNode] | None:
        from signaling.cluster import RedisUnavailable

        try:
            nodes = await cluster.nodes()
        except RedisUnavailable:
            return None
        return [ClusterNode(n.node_id, n.rooms, n.capacity, n.draining) for n in nodes]

    return read


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers HTTP. In a cluster it names the node that answered (no
    secret: the id is in every node's registry entry), which is how one tells workers apart."""
    cluster = request.app.get(CLUSTER)
    if cluster is not None:
        return web.json_response({"status": "ok", "node": cluster.node_id})
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: the database answers, a UDP port of the range is free, and not shutting down."""
    app = request.app
    cluster = app.get(CLUSTER)
    checks = await check_readiness(
        app[CONFIG],
        app[STORAGE],
        app[DRAIN].draining,
        cluster.reachable if cluster is not None else None,
    )
    body: dict = {"checks": {name: "ok" if ok else "failed" for name, ok in checks.items()}}
    failed = [name for name, ok in checks.items() if not ok]
    if failed:
        log_event(logger, "readiness_failed", logging.WARNING, failed=",".join(failed))
        return web.json_response({"status": "unavailable", "failed": failed, **body}, status=503)
    return web.json_response({"status": "ok", **body})


async def _purge_periodically(app: web.Application) -> AsyncIterator[None]:
    """Purge expired personal data at startup and then every `privacy.purge_interval_seconds`."""
    task = asyncio.create_task(_purge_loop(app[CONFIG], app[STORAGE]))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _purge_loop(config: Config, storage: Storage) -> None:
    while True:
        try:
            result = await storage.purge(
                dt.datetime.now(dt.UTC), config.privacy.statistics_retention_days
            )
        except Exception:
            log_event(logger, "purge_failed", logging.ERROR, exc_info=True)
        else:
            if result.appointments_purged or result.statistics_deleted:
                log_event(
                    logger,
                    "purged",
                    appointments=result.appointments_purged,
                    statistics=result.statistics_deleted,
                )
        await asyncio.sleep(config.privacy.purge_interval_seconds)


def _security_headers_middleware(headers: dict[str, str]):  # type: ignore[no-untyped-def]
    @web.middleware
    async def security_headers(request: web.Request, handler):  # type: ignore[no-untyped-def]
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            # 404s, redirects and other raised responses get the headers too.
            exc.headers.update(headers)
            _no_store_unless_declared(request, exc.headers)
            raise
        response.headers.update(headers)
        _no_store_unless_declared(request, response.headers)
        return response

    return security_headers


def _no_store_unless_declared(request: web.Request, headers: MutableMapping[str, str]) -> None:
    """`Cache-Control: no-store` on every response that does not choose its own caching, and on
    everything under /api/ regardless: API answers carry CSRF tokens, notes, names and
    appointments. Only pages and assets without personal data (login, terms, /static/) choose
    `no-cache` themselves. Deny by default, so a new route cannot forget it."""
    if request.path.startswith(API_PREFIX) or "Cache-Control" not in headers:
        headers["Cache-Control"] = "no-store"


@web.middleware
async def _error_middleware(request: web.Request, handler):  # type: ignore[no-untyped-def]
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except asyncio.CancelledError:
        raise
    except StorageFailure as exc:
        log_request_error(request, exc)
        if storage_failure_status(exc) is None:
            return web.Response(status=500, text="500 Internal Server Error")
        # A page visitor gains nothing from 507's distinction: both mean "not now, try again".
        return web.Response(
            status=503,
            text=STORAGE_UNAVAILABLE_PAGE,
            headers={"Retry-After": str(STORAGE_RETRY_AFTER_SECONDS)},
        )
    except Exception as exc:
        log_request_error(request, exc)
        return web.Response(status=500, text="500 Internal Server Error")


async def start_site(
    runner: web.AppRunner,
    app: web.Application,
    host: str,
    port: int,
    ssl_context: ssl.SSLContext | None = None,
    reuse_port: bool = False,
) -> web.BaseSite:
    """Listen on host:port with the app's `ConnectionGuard` (header deadline, per-address cap)
    in front of every connection. `runner` must be set up. `reuse_port`: several processes
    share the port (`serve --workers`)."""
    site = GuardedSite(
        runner, host, port, app[CONNECTION_GUARD], ssl_context=ssl_context, reuse_port=reuse_port
    )
    await site.start()
    return site


def listen_url(config: Config, port: int | None = None) -> str:
    scheme = "https" if config.server.tls else "http"
    host = config.server.host
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port or config.server.port}"


def _ssl_context(config: Config) -> ssl.SSLContext | None:
    return server_context(config)


def _nothing_to_reload() -> None:
    log_event(logger, "reload_ignored", reason="no TLS certificate configured")


async def serve(
    config: Config,
    ready: asyncio.Event | None = None,
    node: str | None = None,
    reuse_port: bool = False,
) -> None:
    """Run the server until SIGINT or SIGTERM; reload the TLS certificate on SIGHUP.

    Alone, SIGTERM ends every call at once, telling both people (a restart). In a cluster
    (`cluster.redis_url`), SIGTERM or `sprechzimmer drain` drains: no new rooms, /readyz false,
    live calls run to their end for up to `cluster.drain_timeout_seconds`; a second SIGTERM ends
    them at once. `node` names this node in the cluster (default: `cluster.node_id`, else the
    hostname)."""
    storage = await open_storage(config.storage)
    cluster: Cluster | None = None
    try:
        secret = config.server.session_secret or load_or_create_session_secret(
            config.storage.data_dir
        )
        if config.cluster.enabled:
            from signaling.cluster import Cluster
            from signaling.workers import node_id

            cluster = Cluster(config, node or node_id(config, None), load=lambda: _live_rooms(app))
        app = create_app(config, storage, session_secret=secret, cluster=cluster)
        runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=HANDLER_GRACE_SECONDS
        )
        await runner.setup()
        metrics_runner = None
        try:
            if cluster is not None:
                await cluster.start()
            tls = server_context(config)
            await start_site(
                runner, app, config.server.host, config.server.port, tls, reuse_port=reuse_port
            )
            metrics_runner = await _start_metrics(app, config)
            # signal handlers before the "listening" line: whoever waits for that line may signal
            stop, stop_now = asyncio.Event(), asyncio.Event()

            def on_stop_signal() -> None:
                (stop_now if stop.is_set() else stop).set()

            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, on_stop_signal)
            if tls is not None:
                loop.add_signal_handler(signal.SIGHUP, reload_certificate, tls, config)
            else:
                # SIGHUP's default would end the process (status 129, which systemd counts as a
                # clean stop): behind a TLS-terminating proxy there is simply nothing to reload
                loop.add_signal_handler(signal.SIGHUP, _nothing_to_reload)
            if cluster is not None:
                cluster.on_drain_requested(stop.set)
            url = listen_url(config)
            print(f"Sprechzimmer is listening on {url}", flush=True)
            fields = {"node": cluster.node_id} if cluster is not None else {}
            log_event(
                logger, "server_started", url=url, public_url=config.server.public_url, **fields
            )
            if ready is not None:
                ready.set()
            await stop.wait()
            if cluster is not None:
                await _drain_calls(app, cluster, config.cluster.drain_timeout_seconds, stop_now)
            log_event(logger, "server_stopping")
            await _within(DRAIN_SECONDS, shut_down(app), "drain")
        finally:
            if metrics_runner is not None:
                await metrics_runner.cleanup()
            await _within(CLEANUP_SECONDS, runner.cleanup(), "cleanup")
    finally:
        if cluster is not None:
            await cluster.close()
        await storage.close()
    log_event(logger, "server_stopped")


async def _drain_calls(
    app: web.Application, cluster: Cluster, timeout: float, stop_now: asyncio.Event
) -> None:
    """A node of a cluster: no new rooms here (the registry says so at once, /readyz turns
    false), and the live calls run to their end, for up to `timeout` seconds."""
    app[DRAIN].begin()
    cluster.begin_drain()
    rooms = _live_rooms(app)
    log_event(logger, "drain_started", rooms=rooms, timeout_seconds=f"{timeout:g}")
    if await wait_for_rooms_to_end(lambda: _live_rooms(app), timeout, stop_now):
        log_event(logger, "drain_finished")
    else:
        log_event(logger, "drain_cut_short", logging.WARNING, rooms=_live_rooms(app))


def _live_rooms(app: web.Application) -> int:
    relay = live_state(app).relay
    return len(relay.rooms) if relay is not None else 0


async def shut_down(app: web.Application) -> None:
    """Refuse new joins (and /readyz says 503), end every live consultation telling both people
    (`ended` `shutdown`, close 1001) with its database writes, close the relay, then close the
    sockets of dashboards and pages that had not joined."""
    app[DRAIN].begin()
    await close_live_media(app)
    app[SIGNALING].close_all()


async def _within(seconds: float, step: Awaitable[None], name: str) -> None:
    try:
        await asyncio.wait_for(step, seconds)
    except TimeoutError:
        log_event(logger, "shutdown_step_timed_out", logging.WARNING, step=name)


async def _start_metrics(app: web.Application, config: Config) -> web.AppRunner | None:
    """The Prometheus listener. If its port is taken the service runs on without it: a busy
    metrics port must not keep consultations from happening (Prometheus reports the target
    down)."""
    if not config.metrics.enabled:
        return None
    try:
        runner = await serve_metrics(app[METRICS], config.metrics.host, config.metrics.port)
    except OSError as exc:
        log_event(
            logger,
            "metrics_unavailable",
            logging.ERROR,
            listen=config.metrics.listen,
            error=exc.strerror or type(exc).__name__,
        )
        return None
    log_event(logger, "metrics_listening", listen=config.metrics.listen)
    return runner
