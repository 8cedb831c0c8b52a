"""bench/state: customer-state memory per customer and restore time on assignment.

One changelog topic holds the state of ``--customers`` customers (default 1,000,000) over 12
partitions, each customer as the consumer writes it (three attributes set by one event, a
realistic event id). Then, in the same run:

* baseline: read every partition back with the same standalone reader and do nothing with the
  records (the floor that Kafka and the client set);
* restore: what a consumer does on assignment, :meth:`CustomerStates.restore` of every partition
  (concurrently, as the engine's partition preparation runs them).

Printed: restore seconds and records/s against the baseline's, and resident memory per customer
held (RSS growth over the restore, after a collection, divided by customers) against the raw bytes
of key + value per customer.

The dedupe history is rebuilt the same way on assignment, from the input partition itself:
``--dedupe-events`` events (the dedupe window: the TTL's worth of records) are written to an input
topic, then read back plainly (baseline) and rebuilt with :func:`consumer.dedupe.rebuild_partition`
for every partition concurrently.

``--sweep 10000,100000,1000000`` runs each size in a process of its own (so memory figures do
not mix) and prints restore and rebuild time against window size. Run: ``make bench-state``
(a local broker unless KAFKA_BOOTSTRAP_SERVERS is set).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Producer

from bench.common import (
    add_common_arguments,
    create_topic,
    finish,
    kafka_cluster,
    machine,
    resident_bytes,
)
from consumer.clients import KafkaClients
from consumer.dedupe import rebuild_partition
from consumer.partition_reader import read_range, standalone_consumer, watermarks
from consumer.state import CustomerStates, CustomerVersions, KafkaChangelog, Version
from consumer.state.store import encode_versions
from sandbox.records import interleaved_events, produce
from schemas.codec import EventCodec

PARTITIONS = 12
ATTRIBUTES = ("last_interaction_summary", "sentiment", "segmentation_tags")
T0_MS = 1_795_000_000_000


def fill(bootstrap: str, topic: str, customers: int) -> int:
    """Write one state record per customer; returns the raw key + value bytes written."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 50,
            "batch.num.messages": 10_000,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 1_000_000,
        }
    )
    raw = 0
    for number in range(customers):
        customer = f"C-{number:08d}"
        event_id = f"{number:08x}-4c1b-4a8e-9a53-0f1f3e9b2a11-2026-11-28T10:15:00Z"
        version = Version(T0_MS + number, event_id)
        value = encode_versions(CustomerVersions(dict.fromkeys(ATTRIBUTES, version)), T0_MS)
        raw += len(customer) + len(value)
        while True:
            try:
                producer.produce(
                    topic, key=customer.encode(), value=value, partition=number % PARTITIONS
                )
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    if producer.flush(120) != 0:
        raise RuntimeError("the state topic did not take every record")
    return raw


def fill_events(bootstrap: str, topic: str, events: int) -> None:
    """``events`` interactions of ``events // 4`` customers, as the bridge writes them."""
    produce(bootstrap, topic, interleaved_events(customers=max(1, events // 4), total=events))


async def rebuild(bootstrap: str, topic: str) -> tuple[float, int]:
    """Seconds to rebuild every partition's dedupe history, concurrently; event ids found."""
    ends = [end for _, end in await asyncio.to_thread(partition_ends, bootstrap, topic)]
    codec = EventCodec(topic)
    started = time.perf_counter()
    found = await asyncio.gather(
        *(
            asyncio.to_thread(
                rebuild_partition,
                KafkaClients(bootstrap),
                topic,
                partition,
                until_offset=end,
                ttl_s=3600,
                timeout_s=600,
                codec=codec,
            )
            for partition, end in enumerate(ends)
        )
    )
    return time.perf_counter() - started, sum(len(ids) for ids in found)


def partition_ends(bootstrap: str, topic: str) -> list[tuple[int, int]]:
    consumer = standalone_consumer(KafkaClients(bootstrap), "bench-state-ends")
    try:
        deadline = time.monotonic() + 60
        return [watermarks(consumer, topic, p, deadline) for p in range(PARTITIONS)]
    finally:
        consumer.close()


def read_partition(bootstrap: str, topic: str, partition: int) -> int:
    consumer = standalone_consumer(KafkaClients(bootstrap), "bench-state-baseline")
    try:
        deadline = time.monotonic() + 600
        _, end = watermarks(consumer, topic, partition, deadline)
        records = read_range(
            consumer, topic, partition, start=OFFSET_BEGINNING, end=end, deadline=deadline
        )
        return sum(1 for message in records if message.value())
    finally:
        consumer.close()


async def baseline_read(bootstrap: str, topic: str) -> tuple[float, int]:
    """Seconds to read every partition back, concurrently as a restore does; records read."""
    started = time.perf_counter()
    counts = await asyncio.gather(
        *(asyncio.to_thread(read_partition, bootstrap, topic, p) for p in range(PARTITIONS))
    )
    return time.perf_counter() - started, sum(counts)


async def restore(bootstrap: str, topic: str) -> tuple[float, CustomerStates]:
    changelog = KafkaChangelog(
        KafkaClients(bootstrap), topic, delivery_timeout_ms=30_000, read_timeout_s=600
    )
    states = CustomerStates(
        changelog, retention_ms=7 * 86_400_000, max_customers_per_partition=10_000_000
    )
    started = time.perf_counter()
    await asyncio.gather(*(states.restore(p) for p in range(PARTITIONS)))
    elapsed = time.perf_counter() - started
    changelog.close()
    return elapsed, states


def sweep(sizes: list[int], dedupe_max: int) -> dict[str, Any]:
    """One process per size (a fresh heap for each memory figure)."""
    runs = []
    for size in sizes:
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            subprocess.run(
                [
                    sys.executable, "-m", "bench.state", "--customers", str(size),
                    "--dedupe-events", str(min(size, dedupe_max)), "--output", out.name,
                ],
                check=True,
            )  # fmt: skip
            runs.append(json.loads(Path(out.name).read_text()))
    return {"machine": machine(), "runs": runs}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--dedupe-events", type=int, default=None, help="default: --customers")
    parser.add_argument("--sweep", default=None, help="comma-separated sizes, one run each")
    parser.add_argument("--dedupe-max", type=int, default=1_000_000, help="largest sweep window")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    if args.smoke:
        args.customers, args.dedupe_events = 240, 240
    if args.sweep:
        swept = sweep([int(n) for n in args.sweep.split(",")], args.dedupe_max)
        for run in swept["runs"]:
            print(
                f"  {run['customers']:>9} customers: restore {run['restore_s']:6.2f} s "
                f"(plain read {run['baseline_read_s']:6.2f} s), "
                f"{run['memory_bytes_per_customer']} B/customer; "
                f"{run['dedupe_events']:>9} events: rebuild {run['dedupe_rebuild_s']:6.2f} s "
                f"(plain read {run['dedupe_baseline_read_s']:6.2f} s)"
            )
        finish(swept, args.output)
        return
    dedupe_events = args.customers if args.dedupe_events is None else args.dedupe_events
    with tempfile.TemporaryDirectory(prefix="bench-state-") as tmp, kafka_cluster(Path(tmp)) as bs:
        topic = create_topic(bs, PARTITIONS, prefix="bench-state")
        raw = fill(bs, topic, args.customers)
        base_s, read = asyncio.run(baseline_read(bs, topic))
        gc.collect()
        before = resident_bytes()
        restore_s, states = asyncio.run(restore(bs, topic))
        gc.collect()
        held = resident_bytes() - before
        customers = states.customers()
        events_topic = create_topic(bs, PARTITIONS, prefix="bench-dedupe")
        fill_events(bs, events_topic, dedupe_events)
        dedupe_base_s, events_read = asyncio.run(baseline_read(bs, events_topic))
        dedupe_s, ids = asyncio.run(rebuild(bs, events_topic))
    if ids != dedupe_events or events_read != dedupe_events:
        raise RuntimeError(f"rebuilt {ids} ids, read {events_read}, wrote {dedupe_events}")
    if customers != args.customers or read != args.customers:
        raise RuntimeError(f"restored {customers}, read {read}, wrote {args.customers}")
    per_customer = held / customers
    result = {
        "machine": machine(),
        "customers": customers,
        "partitions": PARTITIONS,
        "baseline_read_s": round(base_s, 2),
        "restore_s": round(restore_s, 2),
        "restore_records_per_s": round(customers / restore_s),
        "restore_vs_baseline_time": round(restore_s / base_s, 2),
        "memory_bytes_per_customer": round(per_customer),
        "raw_bytes_per_customer": round(raw / customers),
        "memory_vs_raw": round(per_customer / (raw / customers), 2),
        "dedupe_events": dedupe_events,
        "dedupe_baseline_read_s": round(dedupe_base_s, 2),
        "dedupe_rebuild_s": round(dedupe_s, 2),
        "dedupe_rebuild_vs_baseline_time": round(dedupe_s / dedupe_base_s, 2),
    }
    print(json.dumps(result, indent=2))
    finish(result, args.output)


if __name__ == "__main__":
    main()
