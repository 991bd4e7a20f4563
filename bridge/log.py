"""Logging: stdlib, one line per event, journald-friendly, secrets redacted.

Secrets are registered here as they are loaded (:func:`register_secret`); a filter on the
root handler replaces them in every formatted record, whatever logged them.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

_secrets: set[str] = set()
_handler: logging.Handler | None = None
_lock = threading.Lock()
_REDACTED = "***"

# sd-daemon(3) priority prefixes, so journald stores each line at its level.
_SD_PRIORITY = {
    logging.DEBUG: "<7>",
    logging.INFO: "<6>",
    logging.WARNING: "<4>",
    logging.ERROR: "<3>",
    logging.CRITICAL: "<2>",
}


def register_secret(value: str) -> None:
    """Never let ``value`` appear in a log line or in :func:`redact` output."""
    if len(value) >= 4:
        with _lock:
            _secrets.add(value)


def redact(text: str) -> str:
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, _REDACTED)
    return text


class _RedactingFormatter(logging.Formatter):
    def __init__(self, *, journald: bool) -> None:
        fmt = (
            "%(name)s: %(message)s"
            if journald
            else "%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        super().__init__(fmt)
        self._journald = journald

    def format(self, record: logging.LogRecord) -> str:
        text = redact(super().format(record))
        if self._journald:
            return _SD_PRIORITY.get(record.levelno, "<6>") + text
        return text


def setup(level: str = "INFO") -> None:
    """Configure the root logger once; journald gets priority prefixes, a tty gets times."""
    journald = bool(os.environ.get("JOURNAL_STREAM")) and not sys.stderr.isatty()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_RedactingFormatter(journald=journald))
    root = logging.getLogger()
    global _handler
    if _handler is not None:
        root.removeHandler(_handler)
    _handler = handler
    root.addHandler(handler)
    root.setLevel(level)
    # Chatty libraries stay at WARNING unless we debug.
    for name in ("livekit", "aiohttp.access"):
        logging.getLogger(name).setLevel(logging.WARNING if level != "DEBUG" else logging.DEBUG)
