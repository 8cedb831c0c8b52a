"""bench/memory: the consumer's resident memory with its in-flight bound full.

For each ``MAX_IN_FLIGHT`` bound: a topic holding three times the bound in events (realistic
size, ~300 bytes of Avro each), a consumer started on it against a CRM that answers after
``--crm-latency-ms`` (5 s: the bound fills and stays full), and the consumer's RSS
(``/proc/<pid>/statm``) sampled while ``segstream_consumer_in_flight_records`` is at the bound.
The baseline is the same process idle, assigned and restored but with nothing to do (an empty
topic): the difference is what the bound costs, divided by the bound per record. librdkafka's
prefetch (bounded by the client's ``queued.max.messages.kbytes``) is part of the figure, as it is
part of the process. Run: ``make bench-memory``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
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
from bench.stack import Crm, crm_simulator, new_group, start_consumer
from sandbox.records import interleaved_events, produce

PARTITIONS = 12


def measure(work: Path, bootstrap: str, crm: Crm, bound: int, sample_s: float) -> dict[str, Any]:
    topic = create_topic(bootstrap, PARTITIONS, prefix="bench-memory")
    instance = start_consumer(
        work, bootstrap, topic, crm, group=new_group("bench-memory"), name=f"consumer-{bound}",
        max_in_flight=bound, crm_rate_limit_per_s=0,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while instance.metric("segstream_consumer_assigned_partitions") < PARTITIONS:
            if time.monotonic() > deadline:
                raise RuntimeError("no assignment within 120 s")
            time.sleep(0.2)
        time.sleep(1.0)
        idle = instance.resident_bytes()
        produce(bootstrap, topic, interleaved_events(customers=bound * 3, total=bound * 3))
        deadline = time.monotonic() + 120
        while instance.metric("segstream_consumer_in_flight_records") < bound:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the in-flight bound {bound} was not reached within 120 s")
            time.sleep(0.1)
        peak, in_flight = 0, 0.0
        until = time.monotonic() + sample_s
        while time.monotonic() < until:
            peak = max(peak, instance.resident_bytes())
            in_flight = max(in_flight, instance.metric("segstream_consumer_in_flight_records"))
            time.sleep(0.1)
    finally:
        instance.stop()
    return {
        "max_in_flight": bound,
        "in_flight_seen": int(in_flight),
        "idle_rss_mib": round(idle / 2**20, 1),
        "full_rss_mib": round(peak / 2**20, 1),
        "bytes_per_in_flight_record": round((peak - idle) / bound),
        "load": load_average(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__)
    parser.add_argument(
        "--bounds", type=lambda s: [int(n) for n in s.split(",")], default=[1000, 4000]
    )
    parser.add_argument("--crm-latency-ms", type=float, default=5000.0)
    parser.add_argument("--sample-s", type=float, default=3.0)
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    if args.smoke:
        args.bounds, args.sample_s = [50], 0.3
    results: dict[str, Any] = {"machine": machine(), "runs": []}
    print(f"machine: {results['machine']}", flush=True)
    latency = args.crm_latency_ms
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        work = Path(tmp)
        with (
            kafka_cluster(work) as bootstrap,
            crm_simulator(work, latency_ms_min=latency, latency_ms_max=latency) as crm,
        ):
            for bound in args.bounds:
                result = measure(work, bootstrap, crm, bound, args.sample_s)
                print(
                    f"  MAX_IN_FLIGHT {bound:>6}: idle {result['idle_rss_mib']:7.1f} MiB, "
                    f"full {result['full_rss_mib']:7.1f} MiB, "
                    f"{result['bytes_per_in_flight_record']:>6} B per in-flight record, "
                    f"load {result['load'][0]:.1f}",
                    flush=True,
                )
                results["runs"].append(result)
    finish(results, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
