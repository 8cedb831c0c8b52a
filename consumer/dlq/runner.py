"""One command run from its settings: topics, audit, reading, transactions, report, exit code."""

from __future__ import annotations

import logging
import secrets
import signal
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from rich.console import Console

from consumer.clients import KafkaClients
from consumer.dlq.audit import AuditLog, AuditRecord, Outcome, ReasonCount
from consumer.dlq.destinations import ReplayDestinations
from consumer.dlq.errors import DlqError, ExitCode, KafkaUnavailableError, UsageError
from consumer.dlq.inspection import Decoder, inspect
from consumer.dlq.park import ParkChooser
from consumer.dlq.progress import progress_for
from consumer.dlq.publisher import TransactionalPublisher
from consumer.dlq.reader import DeadLetterReader
from consumer.dlq.records import TopicCodecs
from consumer.dlq.replay import ReplayChooser
from consumer.dlq.report import print_inspection, print_json, print_tally
from consumer.dlq.selection import Selection
from consumer.dlq.settings import DlqSettings
from consumer.dlq.superseded import SupersededCheck
from consumer.dlq.transfer import Action, Chooser, Plan, StopReason, Tally, Transfer
from consumer.errors import ConfigurationError, ConsumerError
from consumer.topics import TopicSpec, dead_letter_tool_topics, ensure_topics
from schemas.topics import INTERACTIONS_TOPIC

Command = Literal["replay", "park"]
_OUTCOMES: dict[ExitCode, Outcome] = {
    ExitCode.OK: "ok",
    ExitCode.PARTIAL: "partial",
    ExitCode.USAGE: "usage",
    ExitCode.FENCED: "fenced",
    ExitCode.KAFKA: "failed",
    ExitCode.INTERNAL: "failed",
    ExitCode.INTERRUPTED: "interrupted",
    ExitCode.TERMINATED: "terminated",
}
_log = logging.getLogger("consumer.dlq")


class StopFlag(threading.Event):
    """Set by SIGINT / SIGTERM; remembers which, for the exit code."""

    signum: int | None = None

    def exit_code(self) -> ExitCode:
        return ExitCode.TERMINATED if self.signum == signal.SIGTERM else ExitCode.INTERRUPTED


@dataclass(frozen=True)
class RunOptions:
    dry_run: bool = False
    max_records: int | None = None
    rate_per_s: float | None = None  # None: the setting
    max_replays: int | None = None  # None: the setting
    operator: str | None = None
    json_output: bool = False


def new_run_id() -> str:
    """Sortable and unique: ``20261128T091500Z-3fa91c``."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def _reader(settings: DlqSettings) -> DeadLetterReader:
    return DeadLetterReader(
        KafkaClients.from_settings(settings),
        settings.dead_letter_topic,
        settings.group_id,
        timeout_s=settings.kafka_timeout_s,
    )


def _tool_topics(settings: DlqSettings, dead_letter_partitions: int) -> tuple[TopicSpec, ...]:
    return dead_letter_tool_topics(
        settings.dead_letter_topic,
        partitions=dead_letter_partitions,
        replication_factor=settings.topic_replication_factor,
        min_insync_replicas=settings.topic_min_insync_replicas,
        parked_topic=settings.parked,
        audit_topic=settings.audit,
    )


def _ensure(settings: DlqSettings, specs: list[TopicSpec]) -> None:
    try:
        ensure_topics(
            KafkaClients.from_settings(settings),
            specs,
            timeout=settings.kafka_timeout_s,
            env_prefix=settings.model_config["env_prefix"],
            # The tool creates its topics only when missing, at every run; the operator's
            # create-topics is where a topic unlike the settings is worth a warning.
            warn_unlike=False,
        )
    except ConfigurationError as exc:
        raise UsageError(str(exc)) from exc  # a setting to change: exit 2, nothing changed
    except ConsumerError as exc:
        raise KafkaUnavailableError(str(exc)) from exc


def run_inspect(
    settings: DlqSettings,
    selection: Selection,
    *,
    include_handled: bool,
    show: int,
    json_output: bool,
    stop: StopFlag,
    console: Console,
) -> ExitCode:
    reader = _reader(settings)
    try:
        result = inspect(
            reader,
            settings.group_id,
            selection,
            include_handled=include_handled,
            show=show,
            decode=Decoder(TopicCodecs(INTERACTIONS_TOPIC, settings.schema_registry_url)),
            stop=stop,
        )
    finally:
        reader.close()
    if json_output:
        print_json(console, result.as_json())
    else:
        print_inspection(console, result, include_handled=include_handled)
    return stop.exit_code() if stop.is_set() else ExitCode.OK


def run_transfer(
    settings: DlqSettings,
    command: Command,
    selection: Selection,
    options: RunOptions,
    *,
    stop: StopFlag,
    console: Console,
) -> ExitCode:
    """``replay`` or ``park``: audit ``started``, the run, audit ``finished``, the report."""
    run_id = new_run_id()
    max_replays = settings.max_replays if options.max_replays is None else options.max_replays
    rate = settings.rate_per_s if options.rate_per_s is None else options.rate_per_s
    chooser: Chooser
    if command == "replay":
        destinations = ReplayDestinations(
            KafkaClients.from_settings(settings),
            [
                settings.dead_letter_topic,
                settings.parked,
                settings.audit,
                settings.state_changelog_topic,
            ],
            timeout_s=settings.kafka_timeout_s,
        )
        chooser = ReplayChooser(settings.parked, max_replays, destinations.allowed)
        shown_options: dict[str, Any] = {"rate_per_s": rate, "max_replays": max_replays}
    else:
        chooser = ParkChooser(settings.parked)
        shown_options, rate = {}, 0.0
    shown_options |= {"max": options.max_records, "parked_topic": settings.parked}
    started = AuditRecord(
        run_id=run_id,
        event="started",
        command=command,
        dry_run=options.dry_run,
        operator=settings.who(options.operator),
        time=datetime.now(UTC),
        dead_letter_topic=settings.dead_letter_topic,
        group=settings.group_id,
        selection=selection.describe(),
        options=shown_options,
    )
    # Only the audit topic is created before the run; a dry run creates nothing else.
    _, audit_spec = _tool_topics(settings, 1)
    _ensure(settings, [audit_spec])
    audit = AuditLog(
        KafkaClients.from_settings(settings), settings.audit, timeout_s=settings.kafka_timeout_s
    )
    try:
        audit.append(started)
        check = _superseded_check(settings) if options.dry_run and command == "replay" else None
        plan = Plan(
            selection=selection,
            choose=chooser,
            dry_run=options.dry_run,
            run_id=run_id,
            max_records=options.max_records,
            rate_per_s=rate,
            metadata_budget=settings.offset_metadata_max_bytes,
            superseded=check if check is not None and check.unknown is None else None,
        )
        tally, code, error = _transfer(settings, plan, stop, command)
        if check is not None and check.unknown is not None:
            tally.superseded = None
            _log.warning("superseded count unknown", extra={"reason": check.unknown})
        finished = started.model_copy(
            update={
                "event": "finished",
                "time": datetime.now(UTC),
                "counts": tally.counts(),
                "reasons": [
                    ReasonCount(stage=stage, error_class=error_class, count=count)
                    for (stage, error_class), count in tally.reasons.most_common()
                ],
                "outcome": _OUTCOMES[code],
                "exit_code": int(code),
                "stopped": tally.stopped.value if tally.stopped else None,
                "error": error,
            }
        )
        audit.append(finished)
    finally:
        audit.close()
    if error is not None:
        _log.error("%s stopped: %s", command, error, extra={"run_id": run_id})
    if options.json_output:
        print_json(console, finished.model_dump(mode="json"))
    else:
        console.print(f"run {run_id}")
        print_tally(console, command, tally, dry_run=options.dry_run)
        if check is not None and check.unknown is not None:
            console.print(f"[yellow]superseded: unknown ({check.unknown})[/yellow]")
    return code


def _superseded_check(settings: DlqSettings) -> SupersededCheck:
    """The consumer group's customer state; without one (``unknown`` says why) no count."""
    check = SupersededCheck(
        KafkaClients.from_settings(settings),
        settings.state_changelog_topic,
        codecs=TopicCodecs(INTERACTIONS_TOPIC, settings.schema_registry_url),
        timeout_s=settings.kafka_timeout_s,
    )
    check.available()
    return check


def _transfer(
    settings: DlqSettings, plan: Plan, stop: StopFlag, command: Command
) -> tuple[Tally, ExitCode, str | None]:
    reader = _reader(settings)
    publisher: TransactionalPublisher | None = None
    tally = Tally()
    try:
        partitions = reader.partitions()
        if not plan.dry_run:
            parked_spec, _ = _tool_topics(settings, len(partitions))
            _ensure(settings, [parked_spec])
            # Before reading the group's offsets: fences an earlier run and aborts what it
            # left open, so the offsets read next are final.
            publisher = TransactionalPublisher(
                KafkaClients.from_settings(settings),
                settings.group_id,
                transaction_timeout_ms=settings.transaction_timeout_ms,
                timeout_s=settings.kafka_timeout_s,
            )
        ledgers = reader.ledgers(partitions)
        windows = reader.windows(ledgers)
        total = sum(w.size for w in windows.values())
        label = f"{command} (dry run)" if plan.dry_run else command
        with progress_for(total, label) as progress:
            run = Transfer(
                reader, windows, ledgers, plan, publisher=publisher, stop=stop, tally=tally
            )
            run.run(progress)
    except DlqError as exc:
        return tally, exc.exit_code, str(exc)
    except Exception as exc:  # a bug: still audited; the open transaction is aborted below
        _log.exception("%s failed", command)
        return tally, ExitCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}"
    finally:
        if publisher is not None:
            publisher.close()
        reader.close()
    if tally.stopped is StopReason.SIGNAL:
        return tally, stop.exit_code(), None
    if tally.stopped is StopReason.LEDGER_FULL or tally.outcomes[Action.UNREPLAYABLE]:
        return tally, ExitCode.PARTIAL, None
    return tally, ExitCode.OK, None
