"""What an admin does to accounts, shared by the web (`routes_admin`), the portal
(`routes_integration`) and the CLI: new accounts with a one-time set-password link, resets,
disabling, the admin role, each written to the audit log.

Disabling and resetting end the account's sign-in sessions in the database (the storage does it
in the same transaction, as for `sprechzimmer therapist disable`); the web and the portal then
also close the therapist's open sockets in this process (`relay_setup.sign_out_live`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

from signaling.config import Config
from signaling.credentials import hash_password, hash_token, new_token
from signaling.logs import LOGGER_NAME, log_event
from signaling.storage import Storage, Therapist

__all__ = [
    "PASSWORD_LINK_LIFETIME",
    "SET_PASSWORD_PATH",
    "audit",
    "create_account",
    "issue_password_link",
    "unusable_password_hash",
]

# Three days: long enough for a link sent on a Friday to be used on Monday, short enough that a
# forgotten mail is worthless soon. A newer link replaces it at once.
PASSWORD_LINK_LIFETIME = dt.timedelta(days=3)
# The token goes in the fragment: browsers never send it to the server in the page's request,
# so it stays out of access logs and Referer headers; the page posts it.
SET_PASSWORD_PATH = "/set-password"

logger = logging.getLogger(LOGGER_NAME)


async def audit(storage: Storage, actor: str, action: str, target: str | None) -> None:
    """One line of the audit log: who (an admin's username, ``cli`` or ``api:<key>``) did what
    to which account or key. Never client data."""
    await storage.add_audit_entry(_now(), actor, action, target)
    log_event(logger, "admin_action", action=action)


async def unusable_password_hash() -> str:
    """The hash of a random password nobody knows: an account that must set its own first.
    argon2 runs off the event loop, which also carries the media relay."""
    return await asyncio.to_thread(hash_password, new_token())


async def issue_password_link(config: Config, storage: Storage, therapist: Therapist) -> str:
    """A one-time link to set the account's password; only its hash is stored."""
    token = new_token()
    now = _now()
    await storage.create_password_link(
        therapist.id, hash_token(token), now, now + PASSWORD_LINK_LIFETIME
    )
    return f"{config.server.public_url}{SET_PASSWORD_PATH}#{token}"


async def create_account(config: Config, storage: Storage, username: str) -> tuple[Therapist, str]:
    """A new account without a usable password, and its set-password link. `AlreadyExists`
    when the username is taken."""
    therapist = await storage.add_therapist(username, await unusable_password_hash())
    return therapist, await issue_password_link(config, storage, therapist)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)
