"""Secrets are masked in every log record, wherever they appear (message, arguments, bytes
reprs, tracebacks), once the entry point installed the redaction."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from nowplaying.redaction import REDACTED, redact_secrets_in_logs, secret_values
from tests.support.settings import isolated_settings

SASL_PW = "pw-3d88f99e8c7a"
REDIS_PW = "r3dis-s3cret"


@pytest.fixture
def redacting() -> Iterator[None]:
    factory = logging.getLogRecordFactory()
    redact_secrets_in_logs([SASL_PW, REDIS_PW])
    try:
        yield
    finally:
        logging.setLogRecordFactory(factory)


def test_secret_values_are_the_secret_fields_and_a_url_password() -> None:
    settings = isolated_settings(
        kafka_sasl_password=SecretStr(SASL_PW),
        redis_password=SecretStr(REDIS_PW),
        redis_url="redis://:in-the-url@127.0.0.1:6380/0",
    )
    assert sorted(secret_values(settings)) == sorted([SASL_PW, REDIS_PW, "in-the-url"])
    assert secret_values(isolated_settings()) == []


def test_messages_arguments_and_bytes_reprs_are_masked(
    redacting: None, caplog: pytest.LogCaptureFixture
) -> None:
    log = logging.getLogger("test.redaction")
    with caplog.at_level(logging.DEBUG):
        log.debug("Request: %r", b"user\x00user\x00" + SASL_PW.encode())
        log.warning("connecting with password %s", REDIS_PW)
        log.info("nothing secret here: %d", 42)
    text = caplog.text
    assert SASL_PW not in text and REDIS_PW not in text
    assert text.count(REDACTED) == 2
    assert "nothing secret here: 42" in text


def test_tracebacks_are_masked(redacting: None, caplog: pytest.LogCaptureFixture) -> None:
    try:
        raise ValueError(f"auth failed for password {SASL_PW}")
    except ValueError:
        logging.getLogger("test.redaction").exception("boom")
    assert SASL_PW not in caplog.text
    assert f"auth failed for password {REDACTED}" in caplog.text


def test_a_masked_record_formats_with_formatters_that_wrap_arguments(redacting: None) -> None:
    from mode.utils.logging import ExtensionFormatter  # noqa: PLC0415 - Faust's log formatter

    record = logging.getLogRecordFactory()(
        "test", logging.DEBUG, __file__, 1, "Request: %r (100%% sure)", (SASL_PW.encode(),), None
    )
    line = ExtensionFormatter(fmt="%(message)s").format(record)
    assert line == f"Request: b'{REDACTED}' (100% sure)"


def test_a_record_with_bad_arguments_does_not_raise_when_made(redacting: None) -> None:
    make = logging.getLogRecordFactory()
    record = make("test", logging.INFO, __file__, 1, "two %s %s", ("one",), None)
    assert record.msg == "two %s %s"  # left to logging, which reports it when handling it
