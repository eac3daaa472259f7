"""The terms of use and privacy notice the client consents to, and their version.

The texts are pages (`web/pages/terms.html`, `web/pages/privacy.html`, served at `/terms` and
`/privacy`). A consent records the version it was given for; change `TERMS_VERSION` whenever
either text changes in substance, and clients who have not yet consented must accept the new one
(`POST /api/client/{token}/consent` with an older version answers 400 `terms_changed`).
"""

from __future__ import annotations

__all__ = ["PRIVACY_PATH", "TERMS_PATH", "TERMS_VERSION"]

# Year and month the texts took effect.
TERMS_VERSION = "2026-11"

TERMS_PATH = "/terms"
PRIVACY_PATH = "/privacy"
