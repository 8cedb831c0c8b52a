"""``make bench``: run every benchmark, then write ``docs/PERFORMANCE.md`` and its plots.

``python -m bench.report run [--only latency,bridge,...] [--smoke]`` runs the benchmarks one after
the other (each in its own process, each printing its figures) and keeps their JSON in
``docs/perf/``; ``python -m bench.report render`` writes the report from those files alone, so
the prose can be changed without measuring again. ``--results`` and ``--docs`` move both.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from bench.plots import plot_latency, plot_scaling

ROOT: Final = Path(__file__).resolve().parent.parent
BENCHES: Final = (
    "latency",
    "latency-goal",
    "consumer",
    "scaling",
    "failover",
    "state",
    "memory",
    "ratelimit",
    "bridge",
    "profile",
)
# What each benchmark is run with by `make bench` (the scripts' own defaults otherwise).
FULL_ARGS: Final[dict[str, list[str]]] = {
    "state": ["--sweep", "10000,100000,1000000"],
    # The goal's rate and its neighbours with three times the events per step: a p99 of
    # 15,000 events moves less with one slow second of the shared machine than one of 5,000.
    "latency-goal": ["--rates", "400,500,600", "--duration", "30"],
}
MODULES: Final = {"bridge": "bench.bridge", "latency-goal": "bench.latency"}
Goal = tuple[str, str, bool | None]


def run_benches(names: list[str], results: Path, smoke: bool) -> None:
    results.mkdir(parents=True, exist_ok=True)
    failed: list[str] = []
    for name in names:
        module = MODULES.get(name, f"bench.{name}")
        args = ["--smoke"] if smoke else FULL_ARGS.get(name, [])
        out = results / f"{name}.json"
        print(f"== {name}", flush=True)
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", module, *args, "--output", str(out)], check=False, cwd=ROOT
        )
        verdict = "ok" if done.returncode == 0 else f"FAILED (exit {done.returncode})"
        print(f"== {name}: {verdict}, {time.monotonic() - started:.0f} s", flush=True)
        if done.returncode != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)} (their previous results, if any, are kept)")


def load(results: Path, name: str) -> dict[str, Any] | None:
    path = results / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _fmt(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def _field(step: dict[str, Any] | None, key: str) -> float | None:
    return None if step is None else float(step[key])


def _load_text(data: dict[str, Any]) -> str:
    before = data.get("machine", {}).get("load_average")
    after = data.get("load_average_after")
    return f"load average (1/5/15 min) {tuple(before or ())} before, {tuple(after or ())} after"


# -- sections ---------------------------------------------------------------------------------


def latency_section(data: dict[str, Any], docs: Path, goals: list[Goal]) -> list[str]:
    steps = data["steps"]
    lines = [
        "## End-to-end latency",
        "",
        "Record timestamp (set by the bridge's producer) to the CRM simulator receiving the write, "
        "for every event, sent with vegeta through the real bridge at a fixed rate for "
        f"{data['duration_s']:.0f} s per rate, {data['customers']:,} customers (Zipf "
        f"{data['zipf_exponent']}), {data['partitions']} partitions, CRM answering after 20 ms. "
        "`bare` is the baseline: the same client, decode and request with no policy "
        "(`bench/bare_consumer.py`), measured at each rate right after segstream. "
        f"{_load_text(data)}.",
        "",
        *_latency_table(steps),
    ]
    lines += ["", "All latencies in ms. ![latency against rate](perf/latency.png)", ""]
    _latency_goal(steps, goals)
    plot_latency(steps, docs / "perf" / "latency.png")
    return lines


def latency_goal_section(data: dict[str, Any], docs: Path, goals: list[Goal]) -> list[str]:
    steps = data["steps"]
    _latency_goal(steps, goals)
    return [
        "### At the goal's rate, longer",
        "",
        f"The same benchmark at 400, 500 and 600 events/s, {data['duration_s']:.0f} s per rate "
        f"(three times the events per step: one slow second of the shared machine moves a p99 "
        f"less). {_load_text(data)}. The goal is judged on these rows.",
        "",
        *_latency_table(steps),
        "",
    ]


def _latency_table(steps: list[dict[str, Any]]) -> list[str]:
    rates = sorted({s["rate"] for s in steps})
    by = {(s["mode"], s["rate"]): s for s in steps}
    lines = [
        "| rate /s | segstream p50 | p99 | p99.9 | bare p50 | p99 | p99.9 "
        "| CPU-s/1000 segstream | bare | load |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for rate in rates:
        seg, bare = by.get(("segstream", rate)), by.get(("bare", rate))
        cells = [str(rate)]
        for step in (seg, bare):
            cells += [_fmt(_field(step, key)) for key in ("p50_ms", "p99_ms", "p999_ms")]
        cells += [_fmt(_field(step, "consumer_cpu_s_per_1000"), 2) for step in (seg, bare)]
        cells += [_fmt((seg or bare or {}).get("load", [math.nan])[0])]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _latency_goal(steps: list[dict[str, Any]], goals: list[Goal]) -> None:
    by = {(s["mode"], s["rate"]): s for s in steps}
    seg, bare = by.get(("segstream", 500)), by.get(("bare", 500))
    if seg is None:
        return
    baseline = f" (bare consumer {bare['p99_ms']} ms)" if bare is not None else ""
    goals.append(
        (
            "End-to-end p99 ≤ 50 ms at 500 events/s",
            f"p99 {seg['p99_ms']} ms{baseline}, load {seg['load'][0]}",
            seg["p99_ms"] <= 50,
        )
    )


def consumer_section(data: dict[str, Any], docs: Path, goals: list[Goal]) -> list[str]:
    naive, bare, seg = data["naive_per_s"], data["bare_per_s"], data["segstream_per_s"]
    load = data["machine"]["load_average"][0]
    goals.append(
        ("Consumer ≥ 50x one-call-at-a-time", f"{seg / naive:.1f}x, load {load}", seg / naive >= 50)
    )
    goals.append(
        (
            "Consumer ≥ 0.9x bare aiohttp client",
            f"{seg / bare:.2f}x, load {load}",
            seg / bare >= 0.9,
        )
    )
    cpu_ratio = data["segstream_cpu_s_per_1000"] / data["bare_cpu_s_per_1000"]
    return [
        "## Consumer throughput and CPU per event",
        "",
        f"`bench/consumer.py`: {data['events']:,} events already in the topic, "
        f"{data['customers']:,} customers, {data['partitions']} partitions, CRM answering after "
        f"{data['crm_latency_ms']:.0f} ms, concurrency {data['concurrency']}. {_load_text(data)}.",
        "",
        "| | events/s | CPU-seconds per 1,000 events |",
        "| --- | ---: | ---: |",
        f"| naive (poll, one call, commit) | {_fmt(naive)} | |",
        f"| bare aiohttp client (no Kafka) | {_fmt(bare)} | "
        f"{_fmt(data['bare_cpu_s_per_1000'], 3)} |",
        f"| segstream consumer | {_fmt(seg)} | {_fmt(data['segstream_cpu_s_per_1000'], 3)} |",
        "",
        f"segstream / naive = **{seg / naive:.1f}x**, segstream / bare = **{seg / bare:.2f}x**; "
        f"CPU per event segstream / bare = {cpu_ratio:.2f}x (the consumer's CPU includes "
        "librdkafka's threads, Avro decoding, the state changelog's producer and the metrics).",
        "",
    ]


def scaling_section(data: dict[str, Any], docs: Path, goals: list[Goal]) -> list[str]:
    runs = data["runs"]
    lines = [
        "## Throughput against instances",
        "",
        "`bench/scaling.py`: one group, 12 partitions, the events written once the group settled, "
        f"CRM 20 ms. {_load_text(data)}.",
        "",
        "| instances | events/s | x one instance | CPU-s/1000 (all instances) | load |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for run in runs:
        lines.append(
            f"| {run['instances']} | {_fmt(run['per_s'])} | {run['vs_one']:.2f} | "
            f"{_fmt(run['cpu_s_per_1000'], 3)} | {_fmt(run['load'][0])} |"
        )
    lines += ["", "![throughput against instances](perf/scaling.png)", ""]
    plot_scaling(runs, docs / "perf" / "scaling.png")
    return lines


def failover_section(data: dict[str, Any], docs: Path, goals: list[Goal]) -> list[str]:
    lines = [
        "## Pause after a consumer is killed",
        "",
        "`bench/failover.py`: two instances, events flowing at a steady rate, one instance "
        "killed with SIGKILL. Pause: from the kill until every partition has had a write of an "
        "event sent after the kill (the survivor's own partitions are the baseline). "
        f"{_load_text(data)}.",
        "",
        "| session.timeout.ms | rate /s | pause (s) | survivor's partitions (s) | written "
        "| latency after the kill p50 / max (ms) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for run in data["runs"]:
        lines.append(
            f"| {run['session_timeout_ms']} | {run['rate_per_s']:.0f} | {run['pause_s']} | "
            f"{run['survivor_partitions_resume_s']} | {run['written']}/{run['events']} | "
            f"{_fmt(run['latency_after_kill_p50_ms'])} / {_fmt(run['latency_after_kill_max_ms'])} |"
        )
    return [*lines, ""]


def state_section(data: dict[str, Any], docs: Path, goals: list[Goal]) -> list[str]:
    runs = data.get("runs", [data])
    lines = [
        "## State restore and dedupe rebuild against window size",
        "",
        "`bench/state.py --sweep`: each size in a process of its own; 12 partitions read "
        "concurrently, as on assignment; baselines are plain reads of the same records in the "
        f"same run. {_load_text(data)}.",
        "",
        "| window | state restore (s) | plain read (s) | memory / customer "
        "| dedupe rebuild (s) | plain read (s) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for run in runs:
        lines.append(
            f"| {run['customers']:,} | {run['restore_s']} | {run['baseline_read_s']} | "
            f"{run['memory_bytes_per_customer']} B | {run['dedupe_rebuild_s']} | "
            f"{run['dedupe_baseline_read_s']} |"
        )
    return [*lines, ""]


def memory_section(data: dict[str, Any], docs: Path, goals: list[Goal]) -> list[str]:
    lines = [
        "## Memory at the in-flight bound",
        "",
        "`bench/memory.py`: the consumer's RSS idle (assigned, nothing to do) and with "
        "`MAX_IN_FLIGHT` records in flight against a CRM answering after 5 s. "
        f"{_load_text(data)}.",
        "",
        "| MAX_IN_FLIGHT | idle RSS (MiB) | RSS at the bound (MiB) | per in-flight record |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for run in data["runs"]:
        lines.append(
            f"| {run['max_in_flight']:,} | {run['idle_rss_mib']} | {run['full_rss_mib']} | "
            f"{run['bytes_per_in_flight_record']:,} B |"
        )
    return [*lines, ""]


def ratelimit_section(data: dict[str, Any], docs: Path, goals: list[Goal]) -> list[str]:
    lines = [
        "## Rate-limit fidelity",
        "",
        "`bench/ratelimit.py`: three instances share a group rate against a CRM allowing 5 % "
        "more; the baseline is the same group unlimited. Rate measured at the CRM from the 5th "
        f"to the 90th percentile of the writes. {_load_text(data)}.",
        "",
        "| | writes/s | share of the group rate | 429s | load |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for run in data["runs"]:
        label = f"group rate {run['group_rate_per_s']:.0f}/s" if run["limited"] else "no limit"
        share = run["share_of_group_rate"]
        lines.append(
            f"| {label} | {_fmt(run['rate_per_s'])} | {_fmt(share, 3) if share else '-'} | "
            f"{run['throttled']}/{run['requests']} | {_fmt(run['load'][0])} |"
        )
        if run["limited"]:
            goals.append(
                (
                    "Limiter ≥ 0.95 of the group rate, ≤ 0.5 % 429s",
                    f"{share:.3f}, {100 * run['throttled_share']:.2f} % 429s, "
                    f"load {run['load'][0]}",
                    share >= 0.95 and run["throttled_share"] <= 0.005,
                )
            )
    return [*lines, ""]


def bridge_section(data: dict[str, Any], docs: Path, goals: list[Goal]) -> list[str]:
    modes = data["modes"]
    lines = [
        "## Bridge",
        "",
        f"`bench/bridge`: highest rate with every request 202, ≥ 95 % of the offered rate and "
        f"p99 ≤ {data['slo_p99_ms']:.0f} ms, bisected to {100 * data['precision']:.0f} %; "
        f"latency at half that rate. {_load_text(data)}.",
        "",
        "| mode | highest sustained 202/s | at half: p50 (ms) | p99 (ms) | CPU-s/1000 |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for mode, result in modes.items():
        half = result["half"]
        lines.append(
            f"| {mode} | {result['highest']['rate']:,} | {_fmt(half['p50_ms'])} | "
            f"{_fmt(half['p99_ms'])} | {_fmt(result.get('cpu_s_per_1000_at_half'), 3)} |"
        )
    if "ratio" in data:
        cpu = [modes[m].get("cpu_s_per_1000_at_half") for m in ("kafka", "baseline")]
        cpu_text = f"; CPU per request {cpu[0] / cpu[1]:.2f}x" if all(cpu) else ""
        load = data["machine"]["load_average"][0]
        goals.append(
            (
                "Bridge ≥ 0.8x the app without Kafka",
                f"{data['ratio']:.2f}x{cpu_text}, load {load}",
                data["ratio"] >= 0.8,
            )
        )
    return [*lines, ""]


def profile_section(data: dict[str, Any], docs: Path, goals: list[Goal]) -> list[str]:
    lines = [
        "## Profiles",
        "",
        f"`bench/profile.py`: py-spy sampling the consumer and the bridge for "
        f"{data['seconds']:.0f} s under load ({data['rate']}/s through the bridge). Share of "
        "samples per function, on the stack (inclusive) and at the top (self), the heaviest "
        f"first. {_load_text(data)}.",
        "",
    ]
    for process, rows in data["processes"].items():
        lines += [f"**{process}** ({rows['samples']} samples)", ""]
        lines += ["| function | inclusive | self |", "| --- | ---: | ---: |"]
        for row in rows["top"]:
            lines.append(f"| `{row['function']}` | {row['inclusive']:.1%} | {row['self']:.1%} |")
        lines.append("")
    return lines


SECTIONS: Final[dict[str, Callable[[dict[str, Any], Path, list[Goal]], list[str]]]] = {
    "latency": latency_section,
    "latency-goal": latency_goal_section,
    "consumer": consumer_section,
    "scaling": scaling_section,
    "failover": failover_section,
    "state": state_section,
    "memory": memory_section,
    "ratelimit": ratelimit_section,
    "bridge": bridge_section,
    "profile": profile_section,
}


def render(results: Path, docs: Path) -> Path:
    (docs / "perf").mkdir(parents=True, exist_ok=True)
    goals: list[Goal] = []
    body: list[str] = []
    host: dict[str, Any] = {}
    for name, section in SECTIONS.items():
        data = load(results, name)
        if data is None:
            body += [f"## {name}", "", "Not measured in this run.", ""]
            continue
        host = host or data.get("machine", {})
        body += section(data, docs, goals)
    notes = results / "notes.md"
    head = [
        "# Performance",
        "",
        "Generated by `make bench` (`python -m bench.report`; the figures' JSON is in "
        "[`perf/`](perf/), `python -m bench.report render` rewrites this file from it). Every "
        "figure is measured against a baseline in the same run, because the machine is shared "
        "and noisy: read the ratios, not the absolute numbers.",
        "",
        f"Machine: {host.get('nproc')} cores ({host.get('cpu')}), "
        f"{host.get('memory_gib')} GiB, Python {host.get('python')}, one local Apache Kafka "
        "4.1.1 broker (KRaft), the CRM simulator, the bridge, the consumers and vegeta all on it. "
        f"Report written {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.",
        "",
        "## Goals",
        "",
        "| goal | measured | met |",
        "| --- | --- | --- |",
        # A goal measured twice (latency, then latency-goal) is judged on the later section.
        *[
            f"| {g} | {m} | {'yes' if ok else 'no'} |"
            for g, m, ok in {goal[0]: goal for goal in goals}.values()
        ],
        "",
    ]
    if notes.exists():
        head += [notes.read_text().rstrip(), ""]
    out = docs / "PERFORMANCE.md"
    out.write_text("\n".join(head + body).rstrip() + "\n")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__)
    parser.add_argument("command", choices=("run", "render"), nargs="?", default="run")
    parser.add_argument("--only", default=",".join(BENCHES))
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (for the tests)")
    parser.add_argument("--results", type=Path, default=ROOT / "docs" / "perf")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs")
    args = parser.parse_args(argv)
    if args.command == "run":
        run_benches(args.only.split(","), args.results, args.smoke)
    print(f"wrote {render(args.results, args.docs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
