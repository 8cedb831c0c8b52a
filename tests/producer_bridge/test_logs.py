"""A broker that is away must not drown the log in identical lines."""

from __future__ import annotations

import logging

from producer_bridge.logs import RepeatFilter


def record(message: str, reason: str = "") -> logging.LogRecord:
    made = logging.LogRecord(
        "producer_bridge.publisher", logging.WARNING, __file__, 1, message, (), None
    )
    made.reason = reason
    return made


def test_repeats_are_dropped_for_the_interval_then_counted() -> None:
    now = [100.0]
    repeat = RepeatFilter(interval_s=30, clock=lambda: now[0])
    passed = [
        repeat.filter(record("kafka client error", f"Connect to 127.0.0.1:{p} failed after {p}ms"))
        for p in range(50)
    ]
    assert passed == [True] + [False] * 49
    now[0] += 31
    released = record("kafka client error", "Connect to 127.0.0.1:9092 failed after 0ms")
    assert repeat.filter(released)
    assert released.repeated == 49  # type: ignore[attr-defined]


def test_different_lines_are_not_held_back() -> None:
    repeat = RepeatFilter(interval_s=30, clock=lambda: 0.0)
    assert repeat.filter(record("kafka client error", "broker down"))
    assert repeat.filter(record("kafka client error", "topic unknown"))
    assert repeat.filter(record("event accepted"))
