"""bench/scaling: consumer group throughput with 1, 2 and 3 instances, and CPU per event.

For each instance count: a new topic (12 partitions) and group; the instances start and settle
(every partition assigned), then ``--events`` events (10,000 customers, in order per customer)
are written to the topic at once, and the rate is measured at the CRM simulator (20 ms per call)
from the first write to the last. CPU-seconds per 1,000 events are summed over the instances
(``/proc/<pid>/stat``). Counts run in the order 1, 2, 3, 3, 2, 1 and each count's two runs are
averaged, so a drift of the shared machine's load does not show as scaling. The baseline is the
one-instance run: the ratio N-instance / 1-instance is the scaling. Everything shares this
machine's cores, the simulator included, so on 2 cores the ratio says how much the machine, not
the design, lets scale. Run: ``make bench-scaling``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.common import (
    add_common_arguments,
    create_topic,
    finish,
    kafka_cluster,
    load_average,
    machine,
)
from bench.stack import Crm, Instance, crm_simulator, new_group, start_consumer
from sandbox.records import interleaved_events, produce

PARTITIONS = 12
CUSTOMERS = 10_000


def wait_settled(instances: list[Instance], timeout_s: float = 120) -> None:
    """Until the instances own every partition between them, each at least one."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        owned = [i.metric("segstream_consumer_assigned_partitions") for i in instances]
        if sum(owned) == PARTITIONS and min(owned) > 0:
            return
        time.sleep(0.2)
    raise RuntimeError(f"the group did not settle within {timeout_s:.0f} s")


def measure(work: Path, bootstrap: str, crm: Crm, count: int, events: int) -> dict[str, Any]:
    crm.reset()
    topic = create_topic(bootstrap, PARTITIONS, prefix=f"bench-scaling-{count}")
    group = new_group("bench-scaling")
    with ExitStack() as stack:
        instances = []
        for number in range(count):
            instance = start_consumer(
                work, bootstrap, topic, crm, group=group, name=f"consumer-{count}-{number}",
                crm_rate_limit_per_s=0,
            )  # fmt: skip
            stack.callback(instance.stop)
            instances.append(instance)
        wait_settled(instances)
        cpu_before = sum(i.cpu_seconds() for i in instances)
        batch = interleaved_events(customers=CUSTOMERS, total=events, seed=count)
        produce(bootstrap, topic, batch)
        while crm.ok_writes() == 0:
            time.sleep(0.01)
        started, first = time.perf_counter(), crm.ok_writes()
        deadline = time.monotonic() + 300
        while (written := crm.ok_writes()) < events and time.monotonic() < deadline:
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        cpu = sum(i.cpu_seconds() for i in instances) - cpu_before
    return {
        "instances": count,
        "events": events,
        "written": written,
        "per_s": round((written - first) / elapsed, 1),
        "cpu_s_per_1000": round(cpu * 1000 / max(written, 1), 3),
        "load": load_average(),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"machine": machine(), "partitions": PARTITIONS, "runs": []}
    with tempfile.TemporaryDirectory(prefix="bench-scaling-") as tmp:
        work = Path(tmp)
        with kafka_cluster(work) as bootstrap, crm_simulator(work) as crm:
            # 1, 2, 3 then 3, 2, 1: a machine getting busier or quieter during the run moves
            # every count's mean the same way, so the ratios between counts hold.
            order = args.instances + (args.instances[::-1] if args.mirror else [])
            measured: dict[int, list[dict[str, Any]]] = {}
            for count in order:
                run_result = measure(work, bootstrap, crm, count, args.events)
                print(
                    f"  {count} instance(s): {run_result['per_s']:8.1f} events/s  "
                    f"{run_result['cpu_s_per_1000']:6.3f} CPU-s/1000  "
                    f"load {run_result['load'][0]:.1f}",
                    flush=True,
                )
                measured.setdefault(count, []).append(run_result)
    for count in args.instances:
        runs = measured[count]
        results["runs"].append(
            {
                "instances": count,
                "events": args.events,
                "written": min(r["written"] for r in runs),
                "per_s": round(sum(r["per_s"] for r in runs) / len(runs), 1),
                "cpu_s_per_1000": round(sum(r["cpu_s_per_1000"] for r in runs) / len(runs), 3),
                "load": runs[-1]["load"],
                "each": runs,
            }
        )
    base = results["runs"][0]["per_s"]
    for run_result in results["runs"]:
        run_result["vs_one"] = round(run_result["per_s"] / base, 2)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scaling", description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument(
        "--instances", type=lambda s: [int(n) for n in s.split(",")], default=[1, 2, 3]
    )
    parser.add_argument(
        "--no-mirror", dest="mirror", action="store_false", help="each count once, not twice"
    )
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    if args.smoke:
        args.events, args.instances, args.mirror = 100, [1], False
    print(f"machine: {machine()}", flush=True)
    results = run(args)
    finish(results, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
