"""bench/latency: end-to-end latency, Kafka record timestamp -> CRM request received.

What a user feels: the webhook is answered 202 once the broker holds the record (its timestamp is
set by the bridge's producer), and the CRM sees the write some milliseconds later. Every part runs
on this machine: vegeta (fixed rate, open loop) -> the real bridge -> Kafka -> the consumer ->
the CRM simulator (answering after 20 ms, customers created on first write).

Two modes, each with its own bridge, topic and consumer, measured rate by rate in turn (segstream
then the baseline at the same rate, so a slow minute of the shared machine hits both):

* ``segstream`` — ``python -m consumer run``: per-customer order, dedupe, customer state and
  its changelog (acknowledged before the offset moves), rate limiter (set far above the offered
  rate), retries;
* ``bare`` — ``python -m bench.bare_consumer``: the same client, decode and request body, posted
  at once with no policy at all. It is the floor the machine, Kafka and the simulator set, so
  segstream minus bare is what segstream's policies cost in latency. (The bridge alone would
  measure a different path: the 202 comes before the consumer starts.)

Latency per event: the simulator's ``received_at`` of the event's first request (its
Idempotency-Key is the event id) minus the record's timestamp; both are milliseconds of this
machine's clock, so a figure is exact to ±1 ms. Customers: 100,000, Zipf exponent 0.5 (the
busiest gets 0.16 % of events; with the generator's 1.1 over 5,000 one customer would get 13 %,
tens per second, and its strict order would be the only thing measured). The rate grows until
segstream's p99 passes ``--knee-ms`` or it falls behind; figures are printed with the load
average. Run: ``make bench-latency`` (a local broker unless KAFKA_BOOTSTRAP_SERVERS is set).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.bridge.targets import write_signed_targets
from bench.bridge.vegeta import attack, locate_vegeta
from bench.common import (
    add_common_arguments,
    create_topic,
    finish,
    kafka_cluster,
    load_average,
    machine,
    percentile,
    service,
)
from bench.stack import (
    Bridge,
    Crm,
    Instance,
    bridge,
    crm_simulator,
    end_offsets,
    instant,
    new_group,
    record_times,
    start_consumer,
    wait_until_written,
)
from sandbox.kafka.broker import free_port

MODES = ("segstream", "bare")
PARTITIONS = 12
CUSTOMERS = 100_000
ZIPF_EXPONENT = 0.5
DEFAULT_RATES = (100, 200, 300, 400, 500, 600, 800, 1000, 1300, 1600, 2000)
# The consumer's limiter runs (its code is on the path) but never holds a call back.
UNTHROTTLED_RATE_PER_S = 100_000


@dataclass(frozen=True)
class Step:
    mode: str
    rate: int
    load: tuple[float, float, float]
    sent: int
    accepted: int
    written: int
    p50_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    bridge_p99_ms: float
    consumer_cpu_s_per_1000: float
    bridge_cpu_s_per_1000: float

    def row(self) -> str:
        return (
            f"  {self.mode:<9} {self.rate:>5}/s  202 {self.accepted:>6}/{self.sent:<6} "
            f"written {self.written:>6}  p50 {self.p50_ms:7.1f}  p99 {self.p99_ms:7.1f}  "
            f"p999 {self.p999_ms:7.1f}  max {self.max_ms:7.1f} ms  "
            f"cpu/1000 {self.consumer_cpu_s_per_1000:5.2f} s  load {self.load[0]:.1f}"
        )


@dataclass
class Lane:
    """One mode's bridge, topic and consumer."""

    mode: str
    topic: str
    bridge: Bridge
    consumer: Instance


@contextmanager
def lane(mode: str, work: Path, bootstrap: str, crm: Crm) -> Iterator[Lane]:
    topic = create_topic(bootstrap, PARTITIONS, prefix=f"bench-latency-{mode}")
    with ExitStack() as stack:
        the_bridge = stack.enter_context(bridge(work, bootstrap, topic, name=f"bridge-{mode}"))
        if mode == "segstream":
            consumer = start_consumer(
                work,
                bootstrap,
                topic,
                crm,
                group=new_group("bench-latency"),
                name="consumer-segstream",
                crm_rate_limit_per_s=UNTHROTTLED_RATE_PER_S,
                crm_rate_burst=1000,
            )
            stack.callback(consumer.stop)
        else:
            port = free_port()
            env = {
                **os.environ,
                "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                "BENCH_TOPIC": topic,
                "BENCH_GROUP": new_group("bench-bare"),
                "BENCH_CRM_URL": crm.url,
                "BENCH_CRM_TOKEN_FILE": str(crm.token_file),
                "BENCH_PORT": str(port),
            }
            url = f"http://127.0.0.1:{port}/healthz"
            process = stack.enter_context(
                service("consumer-bare", "bench.bare_consumer", env, work, url)
            )
            consumer = Instance("consumer-bare", process, url)
        yield Lane(mode, topic, the_bridge, consumer)


class LatencyBench:
    def __init__(self, vegeta: str, work: Path, bootstrap: str, crm: Crm, duration_s: float):
        self._vegeta = vegeta
        self._work = work
        self._bootstrap = bootstrap
        self._crm = crm
        self._duration_s = duration_s

    def step(self, lane: Lane, rate: int, duration_s: float | None = None) -> Step:
        duration = duration_s or self._duration_s
        crm = self._crm
        crm.reset()
        count = max(1, round(rate * duration))
        targets = self._work / "targets.jsonl"
        write_signed_targets(
            targets,
            lane.bridge.url,
            lane.bridge.secret,
            count,
            seed=rate,
            customers=CUSTOMERS,
            exponent=ZIPF_EXPONENT,
        )
        start = end_offsets(self._bootstrap, lane.topic)
        cpu_before = lane.consumer.cpu_seconds(), lane.bridge.instance.cpu_seconds()
        result = attack(self._vegeta, targets, rate, duration)
        written = wait_until_written(crm, result.accepted, timeout_s=60 + duration)
        cpu_after = lane.consumer.cpu_seconds(), lane.bridge.instance.cpu_seconds()
        load = load_average()
        end = end_offsets(self._bootstrap, lane.topic)
        produced = record_times(self._bootstrap, lane.topic, start, end)
        received: dict[str, float] = {}
        for request in crm.requests():
            key = request["idempotency_key"]
            if request["status"] == 200 and key in produced and key not in received:
                received[key] = instant(request["received_at"])
        latencies = sorted((received[key] - produced[key][0] / 1000) * 1000 for key in received)
        per_1000 = 1000 / max(written, 1)
        return Step(
            mode=lane.mode,
            rate=rate,
            load=load,
            sent=result.requests,
            accepted=result.accepted,
            written=len(latencies),
            p50_ms=round(percentile(latencies, 0.50), 1),
            p99_ms=round(percentile(latencies, 0.99), 1),
            p999_ms=round(percentile(latencies, 0.999), 1),
            max_ms=round(latencies[-1] if latencies else float("nan"), 1),
            bridge_p99_ms=round(result.p99_ms, 1),
            consumer_cpu_s_per_1000=round((cpu_after[0] - cpu_before[0]) * per_1000, 3),
            bridge_cpu_s_per_1000=round((cpu_after[1] - cpu_before[1]) * per_1000, 3),
        )


def knee_reached(step: Step, knee_ms: float) -> bool:
    """Past the knee: the tail beyond ``knee_ms``, or events accepted but not delivered."""
    return step.p99_ms > knee_ms or step.written < 0.95 * step.accepted or step.accepted == 0


def run(args: argparse.Namespace) -> dict[str, Any]:
    vegeta = locate_vegeta()
    results: dict[str, Any] = {
        "machine": machine(),
        "customers": CUSTOMERS,
        "zipf_exponent": ZIPF_EXPONENT,
        "partitions": PARTITIONS,
        "duration_s": args.duration,
        "steps": [],
    }
    modes = args.modes.split(",")
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        work = Path(tmp)
        with (
            kafka_cluster(work) as bootstrap,
            crm_simulator(work) as crm,
            ExitStack() as lanes_stack,
        ):
            lanes = [lanes_stack.enter_context(lane(m, work, bootstrap, crm)) for m in modes]
            bench = LatencyBench(vegeta, work, bootstrap, crm, args.duration)
            for each in lanes if not args.smoke else ():  # imports, connections, handshakes
                bench.step(each, min(args.rates), duration_s=min(2.0, args.duration))
            for rate in args.rates:
                steps = [bench.step(each, rate) for each in lanes]
                for step in steps:
                    print(step.row(), flush=True)
                    results["steps"].append(asdict(step))
                if knee_reached(steps[0], args.knee_ms):
                    break
    return results


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per rate")
    parser.add_argument(
        "--rates", type=lambda s: [int(r) for r in s.split(",")], default=list(DEFAULT_RATES)
    )
    parser.add_argument("--knee-ms", type=float, default=1000.0)
    parser.add_argument("--modes", default=",".join(MODES))
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    if args.smoke:
        args.duration, args.rates = 1.0, [20]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    started = time.monotonic()
    print(f"machine: {machine()}", flush=True)
    results = run(args)
    results["seconds"] = round(time.monotonic() - started, 1)
    finish(results, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
