"""``segstream-dlq``: inspect, replay and park the consumer's dead letters.

Exit codes: see :mod:`consumer.dlq.errors` (0 ok, 1 partial, 2 usage, 3 fenced, 4 Kafka,
70 internal error, 130 interrupted, 143 terminated).

Interrupting: the first SIGINT (Ctrl-C) or SIGTERM stops the run after the record at hand,
commits the open transaction and writes the audit record; a second one exits at once (the open
transaction is then aborted by the next run or by the broker). SIGKILL at any moment loses
nothing and duplicates nothing: see :mod:`consumer.dlq.publisher`.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from datetime import UTC, datetime
from types import FrameType

from pydantic import ValidationError
from rich.console import Console

from consumer.dlq.errors import DlqError, ExitCode
from consumer.dlq.runner import RunOptions, StopFlag, run_inspect, run_transfer
from consumer.dlq.selection import STAGES, OffsetRange, Selection, SelectionError, parse_time
from consumer.dlq.settings import DlqSettings
from consumer.logs import configure_logging

_log = logging.getLogger("consumer.dlq")


class _Parser(argparse.ArgumentParser):
    """argparse, with its usage errors on exit code 2 as documented (argparse's own default)."""


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text}: must be 0 or more")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text}: must be 0 or more")
    return value


def _add_filters(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("filters (combined with AND; a repeated one with OR)")
    group.add_argument(
        "--error-class",
        action="append",
        default=[],
        metavar="CLASS",
        help="segstream.dlq.error.class, e.g. SinkRejectedError",
    )
    group.add_argument("--stage", action="append", default=[], choices=STAGES)
    group.add_argument(
        "--since", metavar="TIME", help="dead-lettered at or after: ISO-8601, a date, or 2h / 30m"
    )
    group.add_argument("--until", metavar="TIME", help="dead-lettered before (same forms)")
    group.add_argument(
        "--key", action="append", default=[], metavar="CUSTOMER_ID", help="record key"
    )
    group.add_argument(
        "--partition",
        action="append",
        default=[],
        metavar="P[:FIRST-LAST]",
        help="original partition, optionally an offset range (both ends included)",
    )


def _add_run_options(parser: argparse.ArgumentParser, *, replay: bool) -> None:
    parser.add_argument(
        "--all", action="store_true", help="select every record (required when no filter)"
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan; write nothing but the audit record, commit nothing",
    )
    parser.add_argument(
        "--max", type=_non_negative_int, metavar="N", help="handle at most N records"
    )
    if replay:
        parser.add_argument(
            "--rate",
            type=_non_negative_float,
            metavar="PER_S",
            help="records re-published per second (0: no limit; default SEGSTREAM_DLQ_RATE_PER_S)",
        )
        parser.add_argument(
            "--max-replays",
            type=_non_negative_int,
            metavar="N",
            help="park a record already replayed N times (default SEGSTREAM_DLQ_MAX_REPLAYS, 3)",
        )
    parser.add_argument("--operator", metavar="WHO", help="who runs this, for the audit record")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="segstream-dlq",
        description="Inspect, replay and park the dead letters of segstream's consumer.",
        epilog="Exit codes: 0 ok, 1 partial, 2 usage, 3 fenced by another run, 4 Kafka error, "
        "70 internal error, 130 interrupted, 143 terminated.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    inspect = commands.add_parser("inspect", help="count and show dead letters; changes nothing")
    _add_filters(inspect)
    inspect.add_argument("--show", type=_non_negative_int, default=0, metavar="N")
    inspect.add_argument(
        "--include-handled",
        action="store_true",
        help="also count records already replayed or parked by the replay group",
    )
    inspect.add_argument("--json", action="store_true", help="one JSON object on stdout")
    replay = commands.add_parser("replay", help="publish selected dead letters again, once each")
    _add_filters(replay)
    _add_run_options(replay, replay=True)
    replay.add_argument("--json", action="store_true", help="the audit record on stdout")
    park = commands.add_parser("park", help="move selected dead letters to the parked topic")
    _add_filters(park)
    _add_run_options(park, replay=False)
    park.add_argument("--json", action="store_true", help="the audit record on stdout")
    return parser


def selection_from(args: argparse.Namespace, now: datetime) -> Selection:
    return Selection(
        error_classes=frozenset(args.error_class),
        stages=frozenset(args.stage),
        since=parse_time(args.since, now) if args.since else None,
        until=parse_time(args.until, now) if args.until else None,
        keys=frozenset(args.key),
        partitions=tuple(OffsetRange.parse(p) for p in args.partition),
    )


def _install_signal_handlers(stop: StopFlag) -> None:
    def handle(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():  # the second one: leave now; the broker aborts the open transaction
            os._exit(128 + signum)
        stop.signum = signum
        stop.set()
        _log.warning("stopping after the current record (again to exit at once)")

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)


def _settings() -> DlqSettings:
    try:
        return DlqSettings()
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise SelectionError(f"invalid settings: {problems}") from exc


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging("INFO", service="segstream-dlq")
    stop = StopFlag()
    _install_signal_handlers(stop)
    console = Console()
    try:
        settings = _settings()
        configure_logging(settings.log_level, service="segstream-dlq")
        # "topic ... exists" on every run tells an operator nothing.
        logging.getLogger("consumer.topics").setLevel(logging.WARNING)
        selection = selection_from(args, datetime.now(UTC))
        if args.command == "inspect":
            code = run_inspect(
                settings,
                selection,
                include_handled=args.include_handled,
                show=args.show,
                json_output=args.json,
                stop=stop,
                console=console,
            )
        else:
            if selection.is_everything and not args.all:
                parser.error(f"{args.command}: give a filter, or --all to select every record")
            if args.all and not selection.is_everything:
                parser.error(f"{args.command}: --all and filters exclude each other")
            options = RunOptions(
                dry_run=args.dry_run,
                max_records=args.max,
                rate_per_s=getattr(args, "rate", None),
                max_replays=getattr(args, "max_replays", None),
                operator=args.operator,
                json_output=args.json,
            )
            code = run_transfer(
                settings, args.command, selection, options, stop=stop, console=console
            )
    except SelectionError as exc:
        _log.error("%s", exc)
        code = ExitCode.USAGE
    except DlqError as exc:
        _log.error("%s", exc)
        code = exc.exit_code
    sys.exit(int(code))
