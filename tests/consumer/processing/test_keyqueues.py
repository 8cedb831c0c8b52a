"""At most one record per key runs; the rest wait in arrival order."""

from __future__ import annotations

from consumer.processing.keyqueues import KeyedQueues


def test_one_record_per_key_runs_and_the_next_follows_in_order() -> None:
    queues: KeyedQueues[str] = KeyedQueues()
    assert queues.push("a", "a1") is True
    assert queues.push("b", "b1") is True  # another key starts at once
    assert queues.push("a", "a2") is False
    assert queues.push("a", "a3") is False
    assert queues.finish_head("a") == "a2"
    assert queues.finish_head("a") == "a3"
    assert queues.finish_head("a") is None
    assert queues.active_keys == 1
    assert queues.push("a", "a4") is True  # idle again: starts at once


def test_dropping_a_partitions_keys_returns_what_was_queued() -> None:
    queues: KeyedQueues[str] = KeyedQueues()
    queues.push(("t", 0, b"x"), "x1")
    queues.push(("t", 0, b"x"), "x2")
    queues.push(("t", 1, b"y"), "y1")
    dropped = queues.drop_where(lambda key: key[1] == 0)  # type: ignore[index]
    assert dropped == ["x1", "x2"]
    assert queues.active_keys == 1
