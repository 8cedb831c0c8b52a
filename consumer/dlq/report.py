"""What the commands print on stdout: ``rich`` tables for people, one JSON object for machines."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from typing import Any, Final

from rich.console import Console
from rich.table import Table
from rich.text import Text

from consumer.dlq.inspection import Inspection
from consumer.dlq.transfer import Action, StopReason, Tally

_BAR_WIDTH: Final = 30
_ACTION_LABELS: Final = {
    Action.REPLAYED: "replayed",
    Action.PARKED: "parked",
    Action.PARKED_MAX_REPLAYS: "parked by the loop guard (--max-replays)",
    Action.DUPLICATE: "duplicate dead letters of one record (written once)",
    Action.UNREPLAYABLE: (
        "left in place: no original topic, a topic a replay may not write to, or no value "
        "kept (park them)"
    ),
}
_STOP_TEXT: Final = {
    StopReason.MAX: "stopped at --max; run again for the rest",
    StopReason.SIGNAL: "interrupted; everything counted was committed, run again to go on",
    StopReason.LEDGER_FULL: (
        "stopped: the records handled are too scattered among records left alone for the "
        "replay group to track more (offset.metadata.max.bytes); handle the records before "
        "them (inspect shows them), then run again"
    ),
}


def print_json(console: Console, payload: dict[str, Any]) -> None:
    console.print_json(json.dumps(payload, default=str))


def _histogram(title: str, counts: Iterable[tuple[str, int]], label: str) -> Table:
    rows = list(counts)
    table = Table(title=title, title_justify="left")
    table.add_column(label)
    table.add_column("records", justify="right")
    table.add_column("")
    top = max((n for _, n in rows), default=0)
    for name, count in rows:
        bar = "█" * max(1, round(count / top * _BAR_WIDTH)) if top else ""
        table.add_row(name, str(count), Text(bar, style="cyan"))
    return table


def reasons_table(reasons: Counter[tuple[str, str]]) -> Table:
    return _histogram(
        "Reasons",
        ((f"{stage} · {error}", n) for (stage, error), n in reasons.most_common()),
        "stage · error class",
    )


def print_tally(console: Console, command: str, tally: Tally, *, dry_run: bool) -> None:
    verb = "would be" if dry_run else "were"
    if dry_run:
        console.print(f"[bold]{command} plan[/bold] (dry run: nothing written, nothing committed)")
    else:
        console.print(f"[bold]{command}[/bold]")
    table = Table(show_header=False)
    table.add_column("what")
    table.add_column("records", justify="right")
    table.add_row("read in the dead-letter topic", str(tally.scanned))
    table.add_row("already handled by an earlier run", str(tally.already_handled))
    table.add_row("not selected by the filters", str(tally.not_selected))
    table.add_row("selected", str(tally.selected))
    for action in Action:
        if tally.outcomes[action]:
            table.add_row(f"  {verb} {_ACTION_LABELS[action]}", str(tally.outcomes[action]))
    if tally.superseded is not None:
        table.add_row(
            "  of the replayed: superseded (the customer's state is newer; changes nothing)",
            str(tally.superseded),
        )
    console.print(table)
    if tally.reasons:
        console.print(reasons_table(tally.reasons))
    if tally.stopped is not None:
        where = f" (at dead-letter record {tally.stopped_at})" if tally.stopped_at else ""
        console.print(f"[yellow]{_STOP_TEXT[tally.stopped]}{where}[/yellow]")


def print_inspection(console: Console, result: Inspection, *, include_handled: bool) -> None:
    scope = "all records" if include_handled else "records not yet replayed or parked"
    console.print(
        f"[bold]{result.topic}[/bold]: {result.scanned} records, "
        f"{result.handled} already handled by replay group {result.group!r}; "
        f"{result.matched} selected ({scope})"
    )
    if not result.complete:
        console.print("[yellow]interrupted: counts cover only what was read[/yellow]")
    if not result.matched:
        return
    console.print(_histogram("By error class", result.by_error_class.most_common(), "class"))
    console.print(_histogram("By stage", result.by_stage.most_common(), "stage"))
    console.print(_histogram("By hour dead-lettered (UTC)", sorted(result.by_hour.items()), "hour"))
    console.print(
        _histogram("By original partition", sorted(result.by_partition.items()), "topic[partition]")
    )
    console.print(
        _histogram(
            "By replays so far",
            ((str(k), v) for k, v in sorted(result.by_replay_count.items())),
            "replays",
        )
    )
    for shown in result.shown:
        _print_record(console, shown)


def _print_record(console: Console, shown: dict[str, Any]) -> None:
    console.rule(f"dead letter {shown['position']}" + (" (handled)" if shown["handled"] else ""))
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    for name in ("key", "origin", "dead_lettered_at", "stage", "error_class", "attempts"):
        table.add_row(name, str(shown[name]))
    table.add_row("error_message", Text(str(shown["error_message"])))
    table.add_row("replay_count", str(shown["replay_count"]))
    console.print(table)
    headers = Table(title="headers", title_justify="left")
    headers.add_column("name")
    headers.add_column("value")
    for name, value in shown["headers"]:
        headers.add_row(Text(name), Text(value))
    console.print(headers)
    if shown.get("value") is not None:
        console.print_json(json.dumps(shown["value"], default=str))
    else:
        console.print(
            f"[red]value not decodable[/red]: {shown.get('decode_error')} "
            f"(first bytes {shown.get('value_hex_preview')})"
        )
