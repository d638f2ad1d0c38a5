"""The consumer-lag timer: how far each assigned partition's high watermark is ahead of what the
worker released (``nowplaying_consumer_lag_messages``, through the sensor)."""

from __future__ import annotations

import faust
from faust.types import ConsumerT

from streams.instrumentation import PipelineSensor
from streams.offsets import HeldOffsets


def report_lag(consumer: ConsumerT, offsets: HeldOffsets, sensor: PipelineSensor) -> None:
    """Messages behind the high watermark, per assigned partition the worker released
    messages of."""
    try:
        assignment = consumer.assignment()
    except Exception:  # not started or rebalancing
        return
    for tp in assignment:
        position = offsets.position(tp.topic, tp.partition)
        try:
            highwater = consumer.highwater(tp)
        except Exception:
            continue
        if position is not None and highwater is not None:
            sensor.on_consumer_lag(tp.topic, tp.partition, max(0, highwater - position))


def add_lag_timer(
    app: faust.App, offsets: HeldOffsets, sensor: PipelineSensor, interval_seconds: float
) -> None:
    """Report the lag every ``interval_seconds`` while the app runs."""

    async def update_lag() -> None:
        report_lag(app.consumer, offsets, sensor)

    app.timer(interval_seconds)(update_lag)
