"""The bound on a SIGTERM: once started, the deadline ends the process with its own exit code
unless the shutdown finished first (the real process: integration/test_consumer_shutdown.py)."""

from __future__ import annotations

import threading
import time

import pytest

from consumer.shutdown import EXIT_SHUTDOWN_TIMEOUT, ShutdownDeadline


class Exits:
    def __init__(self) -> None:
        self.codes: list[int] = []
        self.called = threading.Event()

    def __call__(self, code: int) -> None:
        self.codes.append(code)
        self.called.set()


def deadline_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "shutdown-deadline" and t.is_alive())


def until_no_deadline_thread(timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while deadline_threads() and time.monotonic() < end:
        threading.Event().wait(0.01)
    assert deadline_threads() == 0


def test_an_expired_deadline_exits_with_its_code_and_says_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    exits = Exits()
    ShutdownDeadline(0.05, exit_process=exits).start()

    assert exits.called.wait(10)
    assert exits.codes == [EXIT_SHUTDOWN_TIMEOUT]
    assert "did not stop within" in caplog.text


def test_a_cancelled_deadline_never_exits() -> None:
    exits = Exits()
    deadline = ShutdownDeadline(0.5, exit_process=exits)
    deadline.start()
    deadline.cancel()

    until_no_deadline_thread()  # a cancelled timer's thread ends without calling
    assert exits.codes == []


def test_a_second_signal_does_not_start_a_second_deadline() -> None:
    exits = Exits()
    deadline = ShutdownDeadline(30, exit_process=exits)
    deadline.start()
    deadline.start()

    assert deadline_threads() == 1
    deadline.cancel()
    until_no_deadline_thread()
    assert exits.codes == []
