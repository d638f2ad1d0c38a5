"""The worker's Faust app runs a monitor without per-message statistics, and keeps the rest."""

from __future__ import annotations

from pathlib import Path

from faust.sensors import Monitor
from faust.types import TP
from faust.types.tuples import Message

from nowplaying.settings import Settings
from streams.faust_kafka import QuietMonitor
from streams.worker import faust_app

TOPIC_PARTITION = TP("play-events", 3)


def message(offset: int) -> Message:
    return Message("play-events", 3, offset, 1.0, 0, [], b"u", b"{}", None)


def test_the_worker_app_uses_the_quiet_monitor(tmp_path: Path) -> None:
    app = faust_app(Settings(), tmp_path)
    assert isinstance(app.monitor, QuietMonitor)


def test_messages_are_not_counted_but_commits_are() -> None:
    faust_monitor, quiet = Monitor(), QuietMonitor()
    for monitor in (faust_monitor, quiet):
        msg = message(7)
        monitor.on_message_in(TOPIC_PARTITION, 7, msg)
        monitor.on_message_out(TOPIC_PARTITION, 7, msg)
        monitor.on_tp_commit({TOPIC_PARTITION: 8})
    assert faust_monitor.messages_received_total == 1
    assert quiet.messages_received_total == 0
    assert quiet.tp_read_offsets == {}
    assert quiet.tp_committed_offsets == faust_monitor.tp_committed_offsets == {TOPIC_PARTITION: 8}
