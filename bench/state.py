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
of key + value per customer. Run: ``make bench-state`` (a local broker unless
KAFKA_BOOTSTRAP_SERVERS is set).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import tempfile
import time
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Producer

from bench.common import create_topic, kafka_cluster, machine
from consumer.clients import KafkaClients
from consumer.partition_reader import read_range, standalone_consumer, watermarks
from consumer.state import CustomerStates, CustomerVersions, KafkaChangelog, Version
from consumer.state.store import encode_versions

PARTITIONS = 12
ATTRIBUTES = ("last_interaction_summary", "sentiment", "segmentation_tags")
T0_MS = 1_795_000_000_000


def resident_bytes() -> int:
    """This process's resident set size (Linux ``/proc/self/statm``, pages x page size)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * 4096


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=1_000_000)
    args = parser.parse_args()
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
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
