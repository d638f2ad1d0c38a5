"""Secrets never reach a log line: every configured secret is masked in every log record.

The settings keep secrets as ``SecretStr`` (shown as ``**********``), and the client factories
(:mod:`nowplaying.clients`) read them only to hand them to a client. But libraries log too:
the Kafka clients log their protocol requests at DEBUG, and a SASL PLAIN request carries the
password in the clear. Every entry point (:func:`nowplaying.cli.start_process`) therefore
installs a log record factory that masks the secrets' values in each record's message and
traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, Final
from urllib.parse import urlsplit

from pydantic import SecretStr

from nowplaying.settings import Settings

#: What a masked secret looks like in a log line (as pydantic shows a SecretStr).
REDACTED: Final = "**********"


def secret_values(settings: Settings) -> list[str]:
    """Every secret the settings hold: the ``SecretStr`` fields and a password inside the
    Redis URL."""
    values = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr) and value.get_secret_value():
            values.append(value.get_secret_value())
    url_password = urlsplit(settings.redis_url).password
    if url_password:
        values.append(url_password)
    return values


def redact_secrets_in_logs(secrets: Iterable[str]) -> None:
    """From now on, mask these values in every log record of the process (message, arguments,
    traceback), whichever library logs them. Needed because the Kafka clients log their
    protocol requests at DEBUG, and a SASL PLAIN request carries the password in the clear."""
    needles = sorted({n for s in secrets if s for n in (s, _as_in_bytes_repr(s))}, key=len)[::-1]
    if not needles:
        return
    previous = logging.getLogRecordFactory()

    def make_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        _redact(record, needles)
        return record

    logging.setLogRecordFactory(make_record)


def _as_in_bytes_repr(secret: str) -> str:
    """How the secret appears inside ``repr(bytes)``, e.g. in a logged request."""
    return repr(secret.encode())[2:-1]


def _mask(text: str, needles: Iterable[str]) -> str:
    for needle in needles:
        text = text.replace(needle, REDACTED)
    return text


def _redact(record: logging.LogRecord, needles: list[str]) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a malformed call; logging itself reports it when the record is handled
        return
    masked = _mask(message, needles)
    if masked != message:
        record.msg, record.args = masked, ()  # () not None: some formatters wrap non-tuples
    if record.exc_info and not record.exc_text:
        record.exc_text = _mask(logging.Formatter().formatException(record.exc_info), needles)
