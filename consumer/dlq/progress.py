"""Progress of a run: a ``rich`` bar on a terminal, a JSON log line every few seconds otherwise.

Both go to stderr, so stdout carries only the report (``--json`` output stays parseable); the bar
is drawn only when stdout and stderr are both terminals (an operator watching), the lines
otherwise (a Kubernetes Job, cron, a pipe).
"""

from __future__ import annotations

import logging
import sys
import time
from types import TracebackType
from typing import Final, Self

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from consumer.dlq.transfer import Tally

# Often enough to show a run is alive in a log, rarely enough not to drown it.
LINE_INTERVAL_S: Final = 5.0
_log = logging.getLogger("consumer.dlq.progress")


def _summary(tally: Tally) -> str:
    return (
        f"selected {tally.selected} · handled {tally.handled} · "
        f"skipped {tally.not_selected + tally.already_handled}"
    )


class _Shown:
    """A context manager: shown from ``with`` to its end, whatever ends it."""

    def start(self) -> None:
        """Nothing by default."""

    def close(self) -> None:
        """Nothing by default."""

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class BarProgress(_Shown):
    def __init__(self, total: int, label: str) -> None:
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[summary]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._task = self._progress.add_task(label, total=total, summary="")

    def start(self) -> None:
        self._progress.start()

    def close(self) -> None:
        self._progress.stop()

    def advance(self, offsets: int, tally: Tally) -> None:
        self._progress.update(self._task, advance=offsets, summary=_summary(tally))


class LineProgress(_Shown):
    def __init__(self, total: int, label: str) -> None:
        self._total = total
        self._label = label
        self._done = 0
        self._next_line = time.monotonic() + LINE_INTERVAL_S
        self._tally: Tally | None = None

    def close(self) -> None:
        if self._tally is not None:
            self._line(self._tally)

    def advance(self, offsets: int, tally: Tally) -> None:
        self._done += offsets
        self._tally = tally
        if time.monotonic() >= self._next_line:
            self._next_line = time.monotonic() + LINE_INTERVAL_S
            self._line(tally)

    def _line(self, tally: Tally) -> None:
        _log.info(
            "%s progress",
            self._label,
            extra={
                "offsets_read": self._done,
                "offsets_total": self._total,
                "selected": tally.selected,
                "handled": tally.handled,
                "skipped": tally.not_selected + tally.already_handled,
            },
        )


def progress_for(total: int, label: str) -> BarProgress | LineProgress:
    if sys.stdout.isatty() and sys.stderr.isatty():
        return BarProgress(total, label)
    return LineProgress(total, label)
