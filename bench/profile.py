"""bench/profile: where the consumer and the bridge spend their CPU under load.

The end-to-end path of ``bench/latency`` (vegeta -> bridge -> Kafka -> consumer -> CRM
simulator) at ``--rate`` events/s while py-spy (a sampling profiler from PyPI, the ``bench``
extra) records both processes without stopping them (``--nonblocking``). Printed per process: the
functions with the largest share of the samples, inclusive (on the stack) and self (at the top),
idle threads left out. Only samples of the thread holding the GIL count (``--gil``): that is
the interpreter's time, which is what one Python process has one core of; native threads
(librdkafka's) and waits do not show. ``--keep DIR`` keeps py-spy's collapsed stacks (for a
flame graph). Run: ``make bench-profile``.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from bench.bridge.targets import write_signed_targets
from bench.bridge.vegeta import attack, locate_vegeta
from bench.common import add_common_arguments, finish, kafka_cluster, machine
from bench.latency import CUSTOMERS, ZIPF_EXPONENT, lane
from bench.stack import Instance, crm_simulator

_LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")
_FRAME_LINE = re.compile(r":\d+\)$")


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(found).exists():
        raise RuntimeError("py-spy not found: pip install -e '.[bench]'")
    return found


def frame_name(frame: str) -> str:
    """``handle (consumer/pipeline.py:123)`` -> ``handle (consumer/pipeline.py)``; paths are
    cut to the part after ``site-packages/`` or the project root."""
    name = _FRAME_LINE.sub(")", frame)
    for marker in ("site-packages/", "/lib/python3", str(Path(__file__).parent.parent) + "/"):
        if marker in name:
            head, _, tail = name.partition("(")
            name = head + "(" + tail.split(marker, 1)[1].lstrip("/").removeprefix(".11/")
    return name


def summarize(collapsed: str, top: int) -> dict[str, Any]:
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    samples = 0
    for line in collapsed.splitlines():
        match = _LINE.match(line.strip())
        if match is None:
            continue
        count = int(match["count"])
        frames = [frame_name(f) for f in match["stack"].split(";")[1:]]  # [0] is the thread
        if not frames:
            continue
        samples += count
        for name in set(frames):
            inclusive[name] += count
        own[frames[-1]] += count
    rows: list[dict[str, Any]] = [
        {"function": name, "inclusive": count / samples, "self": own[name] / samples}
        for name, count in inclusive.most_common()
        if own[name] / max(samples, 1) >= 0.01 or count / max(samples, 1) >= 0.05
    ]
    rows.sort(key=lambda r: (-r["self"], -r["inclusive"]))
    return {"samples": samples, "top": rows[:top]}


def record(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            py_spy(), "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
            "--rate", "200", "--nonblocking", "--gil", "--format", "raw", "--output", str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


def run(args: argparse.Namespace) -> dict[str, Any]:
    vegeta = locate_vegeta()
    results: dict[str, Any] = {
        "machine": machine(),
        "rate": args.rate,
        "seconds": args.seconds,
        "processes": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        work = Path(tmp)
        with (
            kafka_cluster(work) as bootstrap,
            crm_simulator(work) as crm,
            lane("segstream", work, bootstrap, crm) as the_lane,
        ):
            targets = work / "targets.jsonl"
            count = round(args.rate * (args.seconds + 2))
            write_signed_targets(
                targets, the_lane.bridge.url, the_lane.bridge.secret, count,
                customers=CUSTOMERS, exponent=ZIPF_EXPONENT,
            )  # fmt: skip
            attacker = threading.Thread(
                target=attack, args=(vegeta, targets, args.rate, args.seconds + 2)
            )
            attacker.start()
            processes: dict[str, Instance] = {
                "consumer": the_lane.consumer,
                "bridge": the_lane.bridge.instance,
            }
            recorders = {
                name: record(instance.pid, args.seconds, work / f"{name}.txt")
                for name, instance in processes.items()
            }
            for recorder in recorders.values():
                recorder.wait(args.seconds + 60)
            attacker.join()
            for name in processes:
                collapsed = (work / f"{name}.txt").read_text()
                results["processes"][name] = summarize(collapsed, args.top)
                if args.keep:
                    Path(args.keep).mkdir(parents=True, exist_ok=True)
                    (Path(args.keep) / f"{name}.collapsed.txt").write_text(collapsed)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--keep", default=None, help="directory for the collapsed stacks")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    if args.smoke:
        args.rate, args.seconds = 20, 1.0
    print(f"machine: {machine()}", flush=True)
    results = run(args)
    for name, summary in results["processes"].items():
        print(f"{name}: {summary['samples']} samples")
        for row in summary["top"]:
            print(f"  {row['self']:6.1%} self {row['inclusive']:6.1%} incl  {row['function']}")
    finish(results, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
