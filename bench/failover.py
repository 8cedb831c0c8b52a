"""bench/failover: the pause in the flow when a consumer instance is killed (SIGKILL).

Two instances share a 12-partition topic while events flow at ``--rate`` per second (a producer
thread, timestamps and partitions recorded). One instance is killed with SIGKILL; the flow goes
on. For every partition: the time from the kill to the CRM's first request for an event of that
partition written after the kill. The survivor's partitions resume within milliseconds (the
baseline, measured in the same run); the victim's wait for the group to notice (the session
timeout), the rebalance, and the new owner's state restore and dedupe rebuild. The pause is the
largest of these; also printed: the end-to-end latency of the events sent during the pause, and
whether every event was written. Repeated per ``--session-timeouts-ms``.
Run: ``make bench-failover``.
"""

from __future__ import annotations

import argparse
import functools
import signal
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from bench.common import (
    add_common_arguments,
    create_topic,
    finish,
    kafka_cluster,
    load_average,
    machine,
    percentile,
)
from bench.stack import Crm, Instance, crm_simulator, instant, new_group, start_consumer
from sandbox.records import make_event
from schemas.codec import EventCodec
from schemas.topics import HEADER_CONTENT_TYPE, HEADER_EVENT_ID, HEADER_SOURCE

PARTITIONS = 12
CUSTOMERS = 2000


class Flow(threading.Thread):
    """Events at a steady rate; remembers each one's partition and record timestamp."""

    def __init__(self, bootstrap: str, topic: str, rate: float) -> None:
        super().__init__(daemon=True)
        self._producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1})
        self._codec = EventCodec(topic)
        self._topic = topic
        self._interval = 1.0 / rate
        self._halt = threading.Event()
        self.sent: dict[str, tuple[int, int]] = {}  # event id -> (partition, timestamp ms)
        self._run = uuid.uuid4().hex[:6]

    def _acked(self, event_id: str, error: KafkaError | None, message: Message) -> None:
        if error is None:
            self.sent[event_id] = (message.partition() or 0, message.timestamp()[1])

    def run(self) -> None:
        number, next_at = 0, time.monotonic()
        while not self._halt.is_set():
            number += 1
            customer = f"C-{self._run}-{number % CUSTOMERS:05d}"
            event = make_event(customer, number, event_id=f"{self._run}-{number}")
            self._producer.produce(
                self._topic,
                key=customer.encode(),
                value=self._codec.encode(event),
                headers=[
                    (HEADER_EVENT_ID, event.event_id.encode()),
                    (HEADER_CONTENT_TYPE, self._codec.content_type.encode()),
                    (HEADER_SOURCE, b"bench"),
                ],
                on_delivery=functools.partial(self._acked, event.event_id),
            )
            self._producer.poll(0)
            next_at += self._interval
            self._halt.wait(max(0.0, next_at - time.monotonic()))
        self._producer.flush(30)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def measure(
    work: Path, bootstrap: str, crm: Crm, *, session_timeout_ms: int, rate: float, after_s: float
) -> dict[str, Any]:
    crm.reset()
    topic = create_topic(bootstrap, PARTITIONS, prefix="bench-failover")
    group = new_group("bench-failover")
    instances: list[Instance] = []
    try:
        for number in range(2):
            instances.append(
                start_consumer(
                    work,
                    bootstrap,
                    topic,
                    crm,
                    group=group,
                    name=f"consumer-{number}",
                    session_timeout_ms=session_timeout_ms,
                    crm_rate_limit_per_s=0,
                )
            )
        deadline = time.monotonic() + 120
        while [i.metric("segstream_consumer_assigned_partitions") for i in instances] != [6, 6]:
            if time.monotonic() > deadline:
                raise RuntimeError("the two instances did not settle at 6 partitions each")
            time.sleep(0.2)
        flow = Flow(bootstrap, topic, rate)
        flow.start()
        time.sleep(3.0 if after_s else 1.0)
        killed_at = time.time()
        instances[0].process.send_signal(signal.SIGKILL)
        time.sleep(session_timeout_ms / 1000 + after_s)
        flow.stop()
        deadline = time.monotonic() + 120
        while crm.ok_writes() < len(flow.sent) and time.monotonic() < deadline:
            time.sleep(0.2)
        first: dict[str, float] = {}
        for request in crm.requests():
            key = request["idempotency_key"]
            if request["status"] == 200 and key not in first:
                first[key] = instant(request["received_at"])
    finally:
        for instance in instances:
            instance.stop()
    resumed: dict[int, float] = {}
    during: list[float] = []
    for event_id, (partition, timestamp_ms) in flow.sent.items():
        received = first.get(event_id)
        if received is None or timestamp_ms / 1000 < killed_at:
            continue
        resumed[partition] = min(resumed.get(partition, received), received)
        during.append((received - timestamp_ms / 1000) * 1000)
    pauses = sorted(resumed.get(p, float("inf")) - killed_at for p in range(PARTITIONS))
    during.sort()
    return {
        "session_timeout_ms": session_timeout_ms,
        "rate_per_s": rate,
        "events": len(flow.sent),
        "written": sum(1 for e in flow.sent if e in first),
        "pause_s": round(pauses[-1], 2),
        "survivor_partitions_resume_s": round(pauses[len(pauses) // 2 - 1], 3),
        "latency_after_kill_p50_ms": round(percentile(during, 0.5), 1),
        "latency_after_kill_max_ms": round(during[-1] if during else float("nan"), 1),
        "load": load_average(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.failover", description=__doc__)
    parser.add_argument(
        "--session-timeouts-ms",
        type=lambda s: [int(n) for n in s.split(",")],
        default=[6000, 45000],
    )
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--after-s", type=float, default=15.0, help="flow after the timeout")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    if args.smoke:
        args.session_timeouts_ms, args.rate, args.after_s = [6000], 20.0, 0.0
    results: dict[str, Any] = {"machine": machine(), "runs": []}
    print(f"machine: {results['machine']}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-failover-") as tmp:
        work = Path(tmp)
        with kafka_cluster(work) as bootstrap, crm_simulator(work) as crm:
            for timeout_ms in args.session_timeouts_ms:
                result = measure(
                    work,
                    bootstrap,
                    crm,
                    session_timeout_ms=timeout_ms,
                    rate=args.rate,
                    after_s=args.after_s,
                )
                print(
                    f"  session.timeout.ms {timeout_ms}: pause {result['pause_s']} s "
                    f"(survivor's partitions {result['survivor_partitions_resume_s']} s), "
                    f"written {result['written']}/{result['events']}, "
                    f"load {result['load'][0]:.1f}",
                    flush=True,
                )
                results["runs"].append(result)
    finish(results, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
