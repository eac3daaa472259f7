"""The `sprechzimmer` command: serve, check configuration, manage accounts and keys, purge.

Every failure the operator can cause ends in one line on stderr and a non-zero exit status, never a
traceback: 2 for bad configuration or usage, 1 for anything else (unknown user, duplicate user,
bad password). Passwords are read from an interactive prompt or, when stdin is not a terminal, as
one line from stdin — never from argv, which other users of the machine can see.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import getpass
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from signaling.config import Config, ConfigError, load_config
from signaling.credentials import (
    generate_password,
    hash_password,
    hash_token,
    load_or_create_session_secret,
    new_token,
)
from signaling.package_files import default_config_path
from signaling.storage import AlreadyExists, NotFound, Storage, StorageFailure, open_storage
from signaling.workers import (
    WorkerError,
    check_workers,
    node_id,
    run_workers,
    worker_config,
    worker_count,
)

if TYPE_CHECKING:
    from signaling.cluster import Cluster

__all__ = ["main"]

# ./config/default.yaml (the source tree) if present, else the copy the package ships.
DEFAULT_CONFIG = default_config_path()
PROG = "sprechzimmer"

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
API_KEY_NAME = USERNAME
MIN_PASSWORD_LENGTH = 8
BOOTSTRAP_USERNAME = "demo"

EXIT_FAILURE = 1
EXIT_USAGE = 2


class CommandError(Exception):
    """A one-line error for the operator."""

    def __init__(self, message: str, status: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.status = status


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "check-config":
            return _check_config(args)
        config = load_config(args.config)
        if args.command == "serve" and args.worker_index is None:
            count = worker_count(args.workers)
            check_workers(config, count)
            if count > 1:
                return _supervise(config, args, count)
        return asyncio.run(args.run(config, args)) or 0
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    except CommandError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return exc.status
    except WorkerError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except StorageFailure as exc:
        # the operator's own terminal: the backend's full text helps ("database is locked")
        print(f"{PROG}: database: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except OSError as exc:
        print(f"{PROG}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        default=DEFAULT_CONFIG,
        metavar="PATH",
        help=f"configuration file (default: {DEFAULT_CONFIG})",
    )
    parser = argparse.ArgumentParser(
        prog=PROG, description="Sprechzimmer: 1:1 video consultations for psychotherapists."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        parent: argparse._SubParsersAction,  # type: ignore[type-arg]
        name: str,
        help_text: str,
        run: Callable[[Config, argparse.Namespace], Awaitable[int | None]] | None = None,
    ) -> argparse.ArgumentParser:
        sub = parent.add_parser(name, parents=[common], help=help_text, description=help_text)
        sub.set_defaults(run=run)
        return sub

    serve = command(commands, "serve", "Run the web server until interrupted.", _serve)
    serve.add_argument(
        "--workers",
        default="1",
        metavar="N",
        help="nodes on this machine sharing the HTTP port, each with a slice of the UDP range; "
        "'auto' = one per core; more than 1 needs cluster.redis_url (default: 1)",
    )
    # set by the supervisor of --workers for each worker it starts
    serve.add_argument("--worker-index", type=int, default=None, help=argparse.SUPPRESS)
    serve.add_argument("--worker-count", type=int, default=1, help=argparse.SUPPRESS)
    drain = command(
        commands,
        "drain",
        "Tell running nodes (through Redis) to take no new rooms, let their calls end, then exit.",
        _drain,
    )
    drain.add_argument(
        "nodes",
        nargs="*",
        metavar="NODE",
        help="node ids (default: every node of this machine, i.e. whose id is the hostname or "
        "starts with '<hostname>-')",
    )
    check = command(commands, "check-config", "Validate a configuration file and exit.")
    check.add_argument("path", nargs="?", metavar="PATH", help="file to check (default: --config)")
    command(
        commands,
        "bootstrap",
        "Create the data directory and database; create user 'demo' if there is no therapist.",
        _bootstrap,
    )
    command(commands, "purge", "Purge expired personal data and old statistics now.", _purge)

    password_note = " The password is prompted for, or read as one line from stdin."
    therapist = commands.add_parser(
        "therapist", help="Manage therapist accounts.", description="Manage therapist accounts."
    )
    therapist_commands = therapist.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, help_text, run in (
        ("add", "Create a therapist account." + password_note, _therapist_add),
        ("disable", "Stop a therapist from signing in.", _therapist_disable),
        ("enable", "Allow a disabled therapist to sign in again.", _therapist_enable),
        ("reset-password", "Set a new password." + password_note, _therapist_reset_password),
        (
            "totp-reset",
            "Remove the account's authenticator app and recovery codes (a lost phone, a changed "
            "session secret); the therapist signs in with the password and sets it up again.",
            _therapist_totp_reset,
        ),
    ):
        sub = command(therapist_commands, name, help_text, run)
        sub.add_argument("name", metavar="NAME", help="username: a-z 0-9 . _ -, 2 to 64 long")
    command(therapist_commands, "list", "List therapist accounts.", _therapist_list)

    admin = commands.add_parser(
        "admin",
        help="Manage admin accounts (usage reports, account management).",
        description="Manage admin accounts (usage reports, account management).",
    )
    admin_commands = admin.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, help_text, run in (
        (
            "add",
            "Give an account the admin role; create it if there is none and print a one-time"
            " link to set its password (valid 3 days).",
            _admin_add,
        ),
        ("remove", "Take the admin role from an account.", _admin_remove),
    ):
        sub = command(admin_commands, name, help_text, run)
        sub.add_argument("name", metavar="NAME", help="username: a-z 0-9 . _ -, 2 to 64 long")

    apikey = commands.add_parser(
        "apikey",
        help="Manage API keys for practice software.",
        description="Manage API keys for practice software.",
    )
    apikey_commands = apikey.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, help_text, run in (
        ("create", "Create a key and print it once; only its hash is stored.", _apikey_create),
        ("revoke", "Revoke the active key with this name.", _apikey_revoke),
    ):
        sub = command(apikey_commands, name, help_text, run)
        sub.add_argument("name", metavar="NAME", help="key name: a-z 0-9 . _ -, 2 to 64 long")
    command(
        apikey_commands, "list", "List API keys (names and dates, never the keys).", _apikey_list
    )
    return parser


# --- commands


def _check_config(args: argparse.Namespace) -> int:
    path = args.path or args.config
    load_config(path)
    print(f"{path}: ok")
    return 0


async def _serve(config: Config, args: argparse.Namespace) -> None:
    from signaling.app import serve
    from signaling.logs import configure_logging

    configure_logging(config.logging, log_ip=config.privacy.log_ip)
    index = args.worker_index
    if index is not None:
        config = worker_config(config, index, args.worker_count)
    await serve(config, node=node_id(config, index), reuse_port=index is not None)


def _supervise(config: Config, args: argparse.Namespace, count: int) -> int:
    from signaling.logs import configure_logging

    configure_logging(config.logging, log_ip=config.privacy.log_ip)

    async def prepare() -> None:
        # once, before the workers race for them: migrations and the session secret
        async with _storage(config):
            pass
        if not config.server.session_secret:
            load_or_create_session_secret(config.storage.data_dir)

    asyncio.run(prepare())
    return run_workers(args.config, count)


# How long `drain` waits for each node to say, in its registry entry, that it is draining.
DRAIN_ACK_SECONDS = 10.0


async def _drain(config: Config, args: argparse.Namespace) -> int:
    if not config.cluster.enabled:
        raise CommandError(
            "drain needs cluster.redis_url (or SPRECHZIMMER_REDIS_URL); a node alone drains on "
            "SIGTERM (systemctl stop), telling participants",
            EXIT_USAGE,
        )
    from signaling.cluster import DRAIN_MESSAGE, Cluster, RedisUnavailable

    cluster = Cluster(config, node_id(config, None), load=lambda: 0)
    try:
        wanted, pending = await _ask_to_drain(cluster, args.nodes, DRAIN_MESSAGE)
    except RedisUnavailable as exc:
        raise CommandError(f"Redis at {config.cluster.location}: {exc}") from None
    finally:
        await cluster.link.close()
    for node in sorted(wanted - pending):
        print(f"{node}: draining")
    if pending:
        raise CommandError(f"no answer from {', '.join(sorted(pending))}")
    return 0


async def _ask_to_drain(
    cluster: Cluster, names: list[str], message: str
) -> tuple[set[str], set[str]]:
    """Publish the drain message to each node; the nodes asked, and those that did not say
    they are draining (or exit) within DRAIN_ACK_SECONDS."""
    live = {node.node_id for node in await cluster.nodes()}
    wanted = set(names) if names else _local_nodes(live, cluster.node_id)
    unknown = sorted(wanted - live)
    if unknown:
        raise CommandError(f"no live node named {', '.join(unknown)}")
    if not wanted:
        raise CommandError("no live node of this machine; name the nodes to drain")
    for node in sorted(wanted):
        await cluster.publish(node, {"type": message})
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DRAIN_ACK_SECONDS
    pending = set(wanted)
    while pending and loop.time() < deadline:
        nodes = {node.node_id: node for node in await cluster.nodes()}
        # a node that has already exited (its entry removed) has drained too
        pending = {name for name in pending if name in nodes and not nodes[name].draining}
        if pending:
            await asyncio.sleep(0.2)
    return wanted, pending


def _local_nodes(live: set[str], base: str) -> set[str]:
    return {node for node in live if node == base or node.startswith(f"{base}-")}


async def _bootstrap(config: Config, args: argparse.Namespace) -> None:
    async with _storage(config) as storage:
        if not config.server.session_secret:
            load_or_create_session_secret(config.storage.data_dir)
        print(f"Database ready: {config.storage.location}")
        if await storage.count_therapists() > 0:
            return
        password = generate_password()
        await storage.add_therapist(BOOTSTRAP_USERNAME, hash_password(password))
        print(f"Created therapist '{BOOTSTRAP_USERNAME}' with password: {password}")
        print(
            "This password is shown only once. Change it with: "
            f"{PROG} therapist reset-password {BOOTSTRAP_USERNAME}"
        )


async def _purge(config: Config, args: argparse.Namespace) -> None:
    async with _storage(config) as storage:
        result = await storage.purge(
            dt.datetime.now(dt.UTC), config.privacy.statistics_retention_days
        )
    print(
        f"Purged {result.appointments_purged} appointment(s); "
        f"deleted {result.statistics_deleted} statistic row(s)."
    )


async def _therapist_add(config: Config, args: argparse.Namespace) -> None:
    name = _username(args.name)
    async with _storage(config) as storage:
        if await storage.get_therapist(name) is not None:
            raise CommandError(f"therapist {name!r} already exists")
        password_hash = hash_password(_read_new_password())
        try:
            await storage.add_therapist(name, password_hash)
        except AlreadyExists:
            raise CommandError(f"therapist {name!r} already exists") from None
    print(f"Therapist {name!r} created.")


async def _therapist_list(config: Config, args: argparse.Namespace) -> None:
    async with _storage(config) as storage:
        therapists = await storage.list_therapists()
    for therapist in therapists:
        status = "disabled" if therapist.disabled else "active"
        print(f"{therapist.username}\t{status}\tcreated {therapist.created_at:%Y-%m-%d}")


async def _therapist_disable(config: Config, args: argparse.Namespace) -> None:
    await _set_disabled(config, args.name, True)
    print(f"Therapist {args.name!r} disabled.")


async def _therapist_enable(config: Config, args: argparse.Namespace) -> None:
    await _set_disabled(config, args.name, False)
    print(f"Therapist {args.name!r} enabled.")


async def _set_disabled(config: Config, name: str, disabled: bool) -> None:
    name = _username(name)
    async with _storage(config) as storage:
        try:
            await storage.set_therapist_disabled(name, disabled)
        except NotFound:
            raise CommandError(f"no therapist named {name!r}") from None


async def _therapist_reset_password(config: Config, args: argparse.Namespace) -> None:
    name = _username(args.name)
    async with _storage(config) as storage:
        if await storage.get_therapist(name) is None:
            raise CommandError(f"no therapist named {name!r}")
        password_hash = hash_password(_read_new_password())
        try:
            await storage.set_therapist_password(name, password_hash)
        except NotFound:
            raise CommandError(f"no therapist named {name!r}") from None
    print(f"Password of {name!r} changed.")


async def _admin_add(config: Config, args: argparse.Namespace) -> None:
    from signaling.account_admin import audit, create_account

    name = _username(args.name)
    async with _storage(config) as storage:
        if await storage.get_therapist(name) is None:
            # A link rather than a printed password (as `bootstrap` prints): the password is
            # then chosen by its owner and never sits in a terminal's scrollback.
            try:
                _therapist, link = await create_account(config, storage, name)
            except AlreadyExists:
                raise CommandError(f"therapist {name!r} already exists") from None
            await audit(storage, "cli", "therapist_added", name)
            await storage.set_therapist_admin(name, True)
            await audit(storage, "cli", "admin_granted", name)
            print(link)
            print(
                f"Admin {name!r} created. The link sets the password; it works once, for 3 days,"
                " and is shown only now.",
                file=sys.stderr,
            )
            return
        await storage.set_therapist_admin(name, True)
        await audit(storage, "cli", "admin_granted", name)
    print(f"{name!r} is now an admin.")


async def _admin_remove(config: Config, args: argparse.Namespace) -> None:
    from signaling.account_admin import audit

    name = _username(args.name)
    async with _storage(config) as storage:
        try:
            await storage.set_therapist_admin(name, False)
        except NotFound:
            raise CommandError(f"no therapist named {name!r}") from None
        await audit(storage, "cli", "admin_revoked", name)
    print(f"{name!r} is no longer an admin.")


async def _therapist_totp_reset(config: Config, args: argparse.Namespace) -> None:
    name = _username(args.name)
    async with _storage(config) as storage:
        therapist = await storage.get_therapist(name)
        if therapist is None:
            raise CommandError(f"no therapist named {name!r}")
        removed = await storage.delete_totp(therapist.id)
    print(
        f"Two-factor sign-in of {name!r} removed."
        if removed
        else f"{name!r} had no two-factor sign-in."
    )


async def _apikey_create(config: Config, args: argparse.Namespace) -> None:
    name = _key_name(args.name)
    key = new_token()
    async with _storage(config) as storage:
        try:
            await storage.add_api_key(name, hash_token(key))
        except AlreadyExists:
            raise CommandError(f"an active API key named {name!r} already exists") from None
    print(key)
    print(f"API key {name!r} created. It is shown only this once.", file=sys.stderr)


async def _apikey_list(config: Config, args: argparse.Namespace) -> None:
    async with _storage(config) as storage:
        keys = await storage.list_api_keys()
    for key in keys:
        status = "active" if key.active else f"revoked {key.revoked_at:%Y-%m-%d}"
        print(f"{key.name}\t{status}\tcreated {key.created_at:%Y-%m-%d}")


async def _apikey_revoke(config: Config, args: argparse.Namespace) -> None:
    name = _key_name(args.name)
    async with _storage(config) as storage:
        try:
            await storage.revoke_api_key(name)
        except NotFound:
            raise CommandError(f"no active API key named {name!r}") from None
    print(f"API key {name!r} revoked.")


# --- helpers


@contextlib.asynccontextmanager
async def _storage(config: Config) -> AsyncIterator[Storage]:
    """Open (creating and migrating) the configured database and always close it."""
    storage = await open_storage(config.storage)
    try:
        yield storage
    finally:
        await storage.close()


def _username(name: str) -> str:
    if not USERNAME.match(name):
        raise CommandError(
            f"invalid username {name!r}: use 2 to 64 characters a-z 0-9 . _ -, "
            "starting with a letter or digit",
            EXIT_USAGE,
        )
    return name


def _key_name(name: str) -> str:
    if not API_KEY_NAME.match(name):
        raise CommandError(
            f"invalid key name {name!r}: use 2 to 64 characters a-z 0-9 . _ -, "
            "starting with a letter or digit",
            EXIT_USAGE,
        )
    return name


def _read_new_password() -> str:
    if sys.stdin.isatty():
        password = getpass.getpass("New password: ")
        if password != getpass.getpass("Repeat password: "):
            raise CommandError("passwords do not match")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise CommandError("password must not be empty")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise CommandError(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    return password
