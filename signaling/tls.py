"""HTTPS straight from the configured certificate and key, reloaded on SIGHUP.

One ``ssl.SSLContext`` serves for the process's life. Reloading calls ``load_cert_chain`` on it
again: connections made after that use the new certificate, open ones keep theirs. A renewal
tool (certbot's deploy hook, acme.sh's reloadcmd) only has to send SIGHUP.
"""

from __future__ import annotations

import logging
import ssl

from signaling.config import Config
from signaling.logs import LOGGER_NAME, log_event

__all__ = ["reload_certificate", "server_context"]

logger = logging.getLogger(LOGGER_NAME)


def server_context(config: Config) -> ssl.SSLContext | None:
    """The server's TLS context, or None when TLS is off."""
    if not config.server.tls:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(config.server.tls_cert, config.server.tls_key)  # type: ignore[arg-type]
    return context


def reload_certificate(context: ssl.SSLContext, config: Config) -> bool:
    """Load the certificate and key files again; on any error keep serving the old pair."""
    cert, key = config.server.tls_cert, config.server.tls_key
    try:
        # Try the pair on a scratch context first: a failed load_cert_chain can leave a context
        # holding the new certificate without its key, which would break every handshake.
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key)  # type: ignore[arg-type]
        context.load_cert_chain(cert, key)  # type: ignore[arg-type]
    except (OSError, ssl.SSLError) as exc:
        # e.g. a renewal that wrote the certificate but not yet the matching key
        log_event(logger, "certificate_reload_failed", logging.ERROR, error=type(exc).__name__)
        return False
    log_event(logger, "certificate_reloaded")
    return True
