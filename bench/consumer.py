"""bench/consumer: segstream's consumer against two baselines, same simulator, same run.

* naive: one record at a time (poll, decode, one CRM call, commit), the seed's Function pattern
  put behind Kafka. Goal: segstream >= 50x.
* bare aiohttp: the same requests fired at the same concurrency by a plain client, with no Kafka,
  no ordering, no dedupe, no limiter. It is the ceiling this machine and simulator allow. Goal:
  segstream >= 0.9x.

Also CPU-seconds per 1,000 events of segstream's consumer process (all its threads, librdkafka's
included, ``/proc/<pid>/stat``) against the bare client's (``time.process_time()`` of this
process around it): what the policies cost in CPU, not only in time.

The CRM simulator answers after 20 ms; 1,000 customers; 12 partitions. Run: ``make bench-consumer``
(a local broker is started unless KAFKA_BOOTSTRAP_SERVERS is set).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from confluent_kafka import Consumer

from bench.bare_consumer import first_update
from bench.common import (
    add_common_arguments,
    cpu_seconds,
    create_topic,
    finish,
    kafka_cluster,
    machine,
    service,
)
from consumer.sink.http import update_body
from sandbox.kafka.broker import free_port
from sandbox.records import interleaved_events, produce
from schemas.codec import EventCodec

LATENCY_MS = 20.0
CUSTOMERS = 1000
PARTITIONS = 12
CONCURRENCY = 100  # the consumer's crm_max_connections; the bare client uses the same


def sim_writes(url: str) -> int:
    with urllib.request.urlopen(url + "/_sim/stats", timeout=10) as response:  # noqa: S310
        stats = json.load(response)
    return int(stats["by_status"].get("200", 0))


def reset(url: str) -> None:
    request = urllib.request.Request(url + "/_sim/reset", method="POST")  # noqa: S310
    urllib.request.urlopen(request, timeout=10).close()  # noqa: S310


def naive(bootstrap: str, topic: str, crm: str, token: str, seconds: float) -> float:
    """One at a time, as a first attempt would be written: poll, call, commit."""
    import requests  # noqa: PLC0415 - only the naive baseline uses a blocking client

    codec = EventCodec(topic)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"naive-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    session = requests.Session()
    headers = {"Authorization": f"Bearer {token}"}
    done = 0
    started: float | None = None
    while True:
        message = consumer.poll(1.0)
        if message is None or message.error():
            continue
        if started is None:
            started = time.perf_counter()
        event = codec.decode(message.value() or b"")
        response = session.post(
            crm + "/v1/customers/update",
            json=update_body(first_update(event)),
            headers=headers | {"Idempotency-Key": event.event_id},
            timeout=5,
        )
        response.raise_for_status()
        consumer.commit(message=message, asynchronous=False)
        done += 1
        if time.perf_counter() - started >= seconds:
            break
    consumer.close()
    return done / (time.perf_counter() - started)


def bare_measured(
    bodies: list[tuple[str, dict[str, Any]]], crm: str, token: str
) -> tuple[float, float]:
    """(events/s, CPU-seconds per 1,000 events) of :func:`bare`."""
    cpu = time.process_time()
    rate = asyncio.run(bare(bodies, crm, token))
    return rate, (time.process_time() - cpu) * 1000 / len(bodies)


async def bare(bodies: list[tuple[str, dict[str, Any]]], crm: str, token: str) -> float:
    """The same requests at the same concurrency, nothing else."""
    limit = asyncio.Semaphore(CONCURRENCY)
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def send(key: str, body: dict[str, Any]) -> None:
            async with limit:
                headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": key}
                async with session.post(
                    crm + "/v1/customers/update", json=body, headers=headers
                ) as r:
                    r.raise_for_status()
                    await r.read()

        started = time.perf_counter()
        await asyncio.gather(*(send(key, body) for key, body in bodies))
        return len(bodies) / (time.perf_counter() - started)


def segstream(
    bootstrap: str, topic: str, crm: str, *, token_file: Path, total: int, run_dir: Path
) -> tuple[float, float]:
    """(events/s, CPU-seconds per 1,000 events) from the first write to the last."""
    port = free_port()
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "SEGSTREAM_CONSUMER_TOPIC": topic,
        "SEGSTREAM_CONSUMER_DEAD_LETTER_TOPIC": topic + ".dlq",
        "SEGSTREAM_CONSUMER_GROUP_ID": f"segstream-{uuid.uuid4().hex}",
        "SEGSTREAM_CONSUMER_CRM_BASE_URL": crm,
        "SEGSTREAM_CONSUMER_CRM_TOKEN_FILE": str(token_file),
        "SEGSTREAM_CONSUMER_CRM_RATE_LIMIT_PER_S": "0",
        "SEGSTREAM_CONSUMER_CRM_MAX_CONNECTIONS": str(CONCURRENCY),
        "SEGSTREAM_CONSUMER_METRICS_PORT": str(port),
    }
    with service(
        "bench-consumer",
        "consumer",
        {**os.environ, **env},
        run_dir,
        f"http://127.0.0.1:{port}/metrics",
        "run",
    ) as process:
        # Measure from the first write to the last: group join and dedupe rebuild are start-up.
        while sim_writes(crm) == 0:
            time.sleep(0.01)
        started, first, cpu = time.perf_counter(), sim_writes(crm), cpu_seconds(process.pid)
        while (written := sim_writes(crm)) < total:
            time.sleep(0.05)
        elapsed, cpu = time.perf_counter() - started, cpu_seconds(process.pid) - cpu
        return (written - first) / elapsed, cpu * 1000 / max(written - first, 1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--naive-seconds", type=float, default=10.0)
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    if args.smoke:
        args.events, args.naive_seconds = 300, 1.0
    host = machine()
    work = Path(tempfile.mkdtemp(prefix="segstream-bench-"))
    token_file = work / "crm-token"
    token_file.write_text(uuid.uuid4().hex)
    token = token_file.read_text()
    sim_port = free_port()
    crm = f"http://127.0.0.1:{sim_port}"
    sim_env = {
        **os.environ,
        "SEGSTREAM_CRM_SIM_PORT": str(sim_port),
        "SEGSTREAM_CRM_SIM_TOKEN_FILE": str(token_file),
        "SEGSTREAM_CRM_SIM_AUTO_CREATE": "true",
        "SEGSTREAM_CRM_SIM_LATENCY_MS_MIN": str(LATENCY_MS),
        "SEGSTREAM_CRM_SIM_LATENCY_MS_MAX": str(LATENCY_MS),
    }
    with (
        kafka_cluster(work) as bootstrap,
        service("bench-crm", "sandbox", sim_env, work, crm + "/healthz", "crm"),
    ):
        events = interleaved_events(customers=CUSTOMERS, total=args.events, seed=1)
        topic = create_topic(bootstrap, PARTITIONS)
        produce(bootstrap, topic, events)

        naive_rate = naive(bootstrap, topic, crm, token, args.naive_seconds)
        reset(crm)
        bare_rate, bare_cpu = bare_measured(
            [(e.event_id, update_body(first_update(e))) for e in events], crm, token
        )
        reset(crm)
        segstream_rate, segstream_cpu = segstream(
            bootstrap, topic, crm, token_file=token_file, total=len(events), run_dir=work
        )

    print(f"machine: {host}")
    print(
        f"simulator latency {LATENCY_MS:.0f} ms, {CUSTOMERS} customers, {PARTITIONS} partitions, "
        f"{args.events} events, concurrency {CONCURRENCY}"
    )
    print(f"naive (one call at a time): {naive_rate:8.1f} events/s")
    print(f"bare aiohttp client:        {bare_rate:8.1f} events/s  {bare_cpu:6.3f} CPU-s/1000")
    print(
        f"segstream consumer:         {segstream_rate:8.1f} events/s  "
        f"{segstream_cpu:6.3f} CPU-s/1000"
    )
    print(f"segstream / naive = {segstream_rate / naive_rate:6.1f}x  (goal >= 50x)")
    print(f"segstream / bare  = {segstream_rate / bare_rate:6.2f}x  (goal >= 0.9x)")
    print(f"CPU per event segstream / bare = {segstream_cpu / bare_cpu:6.2f}x")
    finish(
        {
            "machine": host,
            "events": args.events,
            "customers": CUSTOMERS,
            "partitions": PARTITIONS,
            "concurrency": CONCURRENCY,
            "crm_latency_ms": LATENCY_MS,
            "naive_per_s": round(naive_rate, 1),
            "bare_per_s": round(bare_rate, 1),
            "segstream_per_s": round(segstream_rate, 1),
            "bare_cpu_s_per_1000": round(bare_cpu, 3),
            "segstream_cpu_s_per_1000": round(segstream_cpu, 3),
        },
        args.output,
    )


if __name__ == "__main__":
    main()
