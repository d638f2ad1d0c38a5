"""``nowplaying api``: serve the HTTP API and the live page with uvicorn."""

from __future__ import annotations

import argparse
import logging

import uvicorn

from nowplaying.settings import Settings
from serving.app import create_app
from serving.auth import AuthConfigError

log = logging.getLogger(__name__)


def run(settings: Settings, args: argparse.Namespace) -> int:
    try:
        app = create_app(settings)
    except AuthConfigError as exc:
        log.error("nowplaying api cannot start: %s", exc)
        return 2
    log.info(
        "nowplaying api on http://%s:%d/ (docs at /docs, metrics at /metrics; auth %s)",
        settings.api_host,
        settings.api_port,
        settings.api_auth,
    )
    config = uvicorn.Config(
        app,
        host=settings.api_host,
        port=settings.api_port,
        log_level=settings.log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=2,
    )
    uvicorn.Server(config).run()
    return 0
