"""Retrying a failing Redis or Kafka call: exponential backoff, forever (never drop, never skip).

:class:`Retrier` runs an operation until it succeeds, doubling the wait after each failure from
``retry_initial_seconds`` up to ``retry_max_seconds``. It reports every retry and each
dependency's state to the injected :class:`streams.instrumentation.PipelineSensor`, and keeps
which dependencies are failing right now (with the error) for the worker's ``/readyz``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from nowplaying.settings import Settings
from streams.instrumentation import PipelineSensor

log = logging.getLogger(__name__)

T = TypeVar("T")


class Retrier:
    """Runs operations until they succeed; ``sleep`` is the backoff sleep (injectable)."""

    def __init__(
        self,
        settings: Settings,
        sensor: PipelineSensor,
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self._initial = settings.retry_initial_seconds
        self._max = settings.retry_max_seconds
        self._sensor = sensor
        self._sleep = sleep
        #: Dependencies whose last call failed (and is being retried), with the error.
        self.failing: dict[str, str] = {}

    async def run(self, dependency: str, op: Callable[[], Awaitable[T]]) -> T:
        """Run ``op`` until it succeeds, backing off exponentially between failures."""
        delay = self._initial
        while True:
            try:
                value = await op()
            except Exception as exc:
                self._sensor.on_retry(dependency)
                self._sensor.on_dependency_up(dependency, False)
                self.failing[dependency] = f"{type(exc).__name__}: {exc}"[:200]
                log.warning(
                    "%s failed (%s: %s); retrying in %.2f s",
                    dependency,
                    type(exc).__name__,
                    exc,
                    delay,
                )
                await self._sleep(delay)
                delay = min(delay * 2, self._max)
                continue
            self._sensor.on_dependency_up(dependency, True)
            self.failing.pop(dependency, None)
            return value
