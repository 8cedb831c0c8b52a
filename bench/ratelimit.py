"""bench/ratelimit: how close a consumer group gets to its configured CRM rate, and its 429s.

The scenario of ``tests/integration/test_consumer_limits.py``: three instances share a group
rate of ``--group-rate`` requests/s (burst 10) against a CRM simulator whose own token bucket
allows 5 % more (burst: 200 ms of its rate); events of 1,000 customers written once the group
has settled. Measured at the simulator: the write rate from the 5th to the 90th percentile of
the run's writes (the tail is instances running out of work one after the other) and the share
of requests answered 429. Goal: >= 0.95 of the group rate with <= 0.5 % 429s.

Baseline, same run: the same three instances with no rate limit against an unlimited simulator,
which says what this machine can do at all while it runs this test; a group rate well below
that which the group still misses is the limiter's fault, one near it is the machine's.
Run: ``make bench-ratelimit``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
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
from bench.scaling import wait_settled
from bench.stack import Crm, crm_simulator, instant, new_group, start_consumer
from sandbox.records import interleaved_events, produce

PARTITIONS = 12


def measure(
    work: Path,
    bootstrap: str,
    crm: Crm,
    *,
    group_rate: float,
    group_burst: int,
    events: int,
    limited: bool,
    instances: int,
) -> dict[str, Any]:
    crm.reset()
    crm_rate = group_rate * 1.05 if limited else 0.0
    crm.set_faults(rate_limit_per_s=crm_rate, rate_limit_burst=max(1, round(crm_rate / 5)))
    topic = create_topic(bootstrap, PARTITIONS, prefix="bench-ratelimit")
    group = new_group("bench-ratelimit")
    with ExitStack() as stack:
        group_members = []
        for number in range(instances):
            instance = start_consumer(
                work, bootstrap, topic, crm, group=group, name=f"consumer-rl-{number}",
                crm_rate_limit_per_s=group_rate if limited else 0, crm_rate_burst=group_burst,
            )  # fmt: skip
            stack.callback(instance.stop)
            group_members.append(instance)
        wait_settled(group_members)
        produce(bootstrap, topic, interleaved_events(customers=1000, total=events, seed=11))
        deadline = time.monotonic() + 30 + 3 * events / max(group_rate, 1)
        while crm.ok_writes() < events and time.monotonic() < deadline:
            time.sleep(0.2)
        requests = [r for r in crm.requests() if r["path"] == "/v1/customers/update"]
    times = sorted(instant(r["received_at"]) for r in requests if r["status"] == 200)
    low, high = times[len(times) // 20], times[len(times) * 9 // 10]
    rate = (len(times) * 17 // 20) / (high - low) if high > low else float("nan")
    throttled = sum(1 for r in requests if r["status"] == 429)
    per_second = Counter(int(t - times[0]) for t in times)
    return {
        "limited": limited,
        "group_rate_per_s": group_rate if limited else None,
        "group_burst": group_burst if limited else None,
        "instances": instances,
        "crm_rate_per_s": crm_rate or None,
        "events": events,
        "written": len(times),
        "rate_per_s": round(rate, 1),
        "share_of_group_rate": round(rate / group_rate, 3) if limited else None,
        "requests": len(requests),
        "throttled": throttled,
        "throttled_share": round(throttled / max(len(requests), 1), 4),
        "per_second": [per_second[s] for s in range(int(times[-1] - times[0]) + 1)],
        "load": load_average(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ratelimit", description=__doc__)
    parser.add_argument("--group-rate", type=float, default=200.0)
    parser.add_argument("--group-burst", type=int, default=10)
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--events", type=int, default=6000)
    parser.add_argument("--no-baseline", action="store_true")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    if args.smoke:
        args.events, args.instances, args.no_baseline = 100, 1, True
    results: dict[str, Any] = {"machine": machine(), "runs": []}
    print(f"machine: {results['machine']}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-ratelimit-") as tmp:
        work = Path(tmp)
        with (
            kafka_cluster(work) as bootstrap,
            crm_simulator(work, latency_ms_min=0, latency_ms_max=0) as crm,
        ):
            for limited in (True,) if args.no_baseline else (False, True):
                result = measure(
                    work,
                    bootstrap,
                    crm,
                    group_rate=args.group_rate,
                    group_burst=args.group_burst,
                    events=args.events,
                    limited=limited,
                    instances=args.instances,
                )
                label = f"group rate {args.group_rate:.0f}/s" if limited else "no limit"
                print(
                    f"  {label:<18} {result['rate_per_s']:8.1f} writes/s, "
                    f"429s {result['throttled']}/{result['requests']}, "
                    f"load {result['load'][0]:.1f}; per second {result['per_second']}",
                    flush=True,
                )
                results["runs"].append(result)
    finish(results, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
