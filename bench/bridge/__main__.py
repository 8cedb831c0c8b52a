"""``python -m bench.bridge`` (``make bench-bridge``): how many durable 202s per second.

Two modes of the same aiohttp application, driven by the same load generator (vegeta, fixed
rate) in the same run, one after the other on the same machine:

* ``baseline`` — the bridge's app answering 202 right after authentication, parsing, validation
  and Avro encoding, without Kafka (``bench/bridge/server.py``);
* ``kafka`` — the real bridge (``python -m producer_bridge``): 202 only once the broker
  acknowledged the record (``acks=all``, idempotent producer), broker on this machine too.

For each mode: the highest rate that is *sustained* (every request answered 202, throughput at
least 95 % of the offered rate, p99 within the SLO ``--max-p99-ms``, default 50 ms), found by
growing the rate step by step (x1.5) and then bisecting to within ``--precision`` (default 2 %,
so the ratio measures the bridge, not the step size; a rate is refused only when two steps at it
fail, so one slow moment of the shared machine does not end the search); then p50/p99 and the
bridge's CPU-seconds per 1,000 requests at half that rate. Prints the ratio kafka/baseline
(goal >= 0.8) and the load average.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.bridge.targets import write_signed_targets
from bench.bridge.vegeta import AttackResult, VegetaMissingError, attack, locate_vegeta
from bench.common import (
    add_common_arguments,
    cpu_seconds,
    create_topic,
    finish,
    kafka_cluster,
    machine,
    service,
)
from sandbox.kafka.broker import free_port
from sandbox.secrets import ensure_secret_file, new_webhook_secret

MODES = ("baseline", "kafka")


@contextmanager
def bridge_process(
    mode: str, bootstrap: str, topic: str, secret_file: Path, work: Path
) -> Iterator[tuple[str, int]]:
    port = free_port()
    module = "producer_bridge" if mode == "kafka" else "bench.bridge.server"
    # Tuning settings (SEGSTREAM_BRIDGE_LINGER_MS, _COMPRESSION_TYPE, ...) pass through, so one
    # can measure their effect; where to listen, what to produce to and the secrets are ours.
    ours = ("PORT", "HOST", "KAFKA_BOOTSTRAP_SERVERS", "TOPIC", "WEBHOOK_SECRETS", "SHARED_SECRETS")
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if not k.removeprefix("SEGSTREAM_BRIDGE_").startswith(ours)
        },
        "SEGSTREAM_BRIDGE_PORT": str(port),
        "SEGSTREAM_BRIDGE_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "SEGSTREAM_BRIDGE_TOPIC": topic,
        "SEGSTREAM_BRIDGE_WEBHOOK_SECRETS_FILE": str(secret_file),
    }
    url = f"http://127.0.0.1:{port}"
    with service(f"bridge-{mode}", module, env, work, url + "/readyz") as process:
        yield url, process.pid


def requests_so_far(url: str) -> float:
    total = 0.0
    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:  # noqa: S310
        for line in response.read().decode().splitlines():
            if line.startswith("segstream_bridge_requests_total{"):
                total += float(line.rsplit(" ", 1)[1])
    return total


def wait_until_idle(url: str, timeout: float = 120.0, breath_s: float = 1.0) -> None:
    """After an overloaded step the server still works off requests their client gave up on
    (they sit in socket buffers, not yet in a handler); the next step starts only once the
    request count stands still apart from these /metrics reads."""
    deadline = time.monotonic() + timeout
    previous = -1.0
    while time.monotonic() < deadline:
        try:
            current = requests_so_far(url)
        except OSError:
            current = -1.0
        if previous >= 0 and current - previous <= 1:
            break
        previous = current
        time.sleep(0.5)
    time.sleep(breath_s)  # and the machine catches its breath


class Bench:
    def __init__(self, vegeta: str, work: Path, secret: str, args: argparse.Namespace) -> None:
        self._vegeta = vegeta
        self._work = work
        self._secret = secret
        self._args = args

    def run_at(self, url: str, rate: int, duration_s: float) -> AttackResult:
        # Signed afresh for every attack: a signature is only valid for 5 minutes.
        targets = self._work / "targets.jsonl"
        pool = max(min(1000, self._args.pool), min(self._args.pool, int(rate * duration_s)))
        write_signed_targets(targets, url, self._secret, pool)
        result = attack(self._vegeta, targets, rate, duration_s)
        verdict = "ok" if result.sustained(self._args.max_p99_ms) else "not sustained"
        print(
            f"  {rate:>6}/s  202s {result.accepted:>6}/{result.requests:<6} "
            f"throughput {result.throughput:8.1f}/s  p50 {result.p50_ms:7.1f} ms  "
            f"p99 {result.p99_ms:7.1f} ms  {verdict}",
            flush=True,
        )
        wait_until_idle(url, breath_s=0.0 if self._args.smoke else 1.0)
        return result

    def warm_up(self, url: str) -> None:
        """A fresh process pays for imports, first connections and the producer's idempotence
        handshake on its first requests; none of that belongs in a measurement."""
        print("  warm-up:", flush=True)
        self.run_at(url, self._args.start_rate, 3.0)

    def sustained_at(self, url: str, rate: int) -> AttackResult:
        """One step, and a second one when the first is not sustained: with a 50 ms SLO a single
        slow moment of the shared machine fails a step, and the search must not take that for
        the bridge's limit (a rate is refused only when it fails twice)."""
        first = self.run_at(url, rate, self._args.duration)
        if first.sustained(self._args.max_p99_ms) or self._args.smoke:
            return first
        return self.run_at(url, rate, self._args.duration)

    def highest_sustained(self, url: str) -> AttackResult:
        """Grow the rate until a step is not sustained (or, when the first is not, shrink it
        until one is), then bisect between the last good and the first bad rate."""
        args = self._args
        low: AttackResult | None = None
        high_rate: int | None = None
        rate = args.start_rate
        while low is None and rate >= 10:
            result = self.sustained_at(url, rate)
            if result.sustained(args.max_p99_ms):
                low = result
            else:
                high_rate, rate = rate, int(rate / args.growth)
        if low is None:
            raise RuntimeError(f"not even {rate}/s is sustained: is the machine overloaded?")
        rate = int(low.rate * args.growth)
        while high_rate is None and rate <= args.ceiling:
            result = self.sustained_at(url, rate)
            if not result.sustained(args.max_p99_ms):
                high_rate = rate
                break
            low = result
            rate = int(rate * args.growth)
        if high_rate is None:
            return low
        while (high_rate - low.rate) / low.rate > args.precision:
            middle = int((low.rate + high_rate) / 2)
            result = self.sustained_at(url, middle)
            if result.sustained(args.max_p99_ms):
                low = result
            else:
                high_rate = middle
        return low


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bridge", description=__doc__)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per attack step")
    parser.add_argument("--latency-duration", type=float, default=10.0)
    parser.add_argument("--start-rate", type=int, default=400)
    parser.add_argument("--growth", type=float, default=1.5, help="rate factor between steps")
    parser.add_argument("--ceiling", type=int, default=20_000)
    parser.add_argument("--precision", type=float, default=0.02, help="bisect until within this")
    parser.add_argument("--max-p99-ms", type=float, default=50.0, help="the SLO of 'sustained'")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--pool", type=int, default=20_000, help="distinct signed requests")
    parser.add_argument("--modes", default=",".join(MODES))
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    if args.smoke:
        args.duration, args.latency_duration, args.start_rate = 1.0, 1.0, 20
        # The figures of a smoke run mean nothing; only that every step runs.
        args.ceiling, args.pool, args.max_p99_ms = 30, 100, 10_000.0
    try:
        vegeta = locate_vegeta()
    except (VegetaMissingError, subprocess.CalledProcessError) as exc:
        print(exc, file=sys.stderr)
        return 2
    host = machine()
    print(
        f"machine: {host['nproc']} cores, {host['cpu']}, load average {host['load_average']}; "
        f"load generator: {vegeta}",
        flush=True,
    )
    results: dict[str, Any] = {
        "machine": host,
        "slo_p99_ms": args.max_p99_ms,
        "precision": args.precision,
        "modes": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench-bridge-") as tmp:
        work = Path(tmp)
        secret_file = work / "webhook-secret"
        secret = ensure_secret_file(secret_file, new_webhook_secret)
        with kafka_cluster(work) if "kafka" in args.modes else nullcontext("") as bootstrap:
            topic = create_topic(bootstrap, args.partitions) if bootstrap else "unused"
            bench = Bench(vegeta, work, secret, args)
            for mode in args.modes.split(","):
                print(f"{mode}:", flush=True)
                broker = bootstrap or "127.0.0.1:1"  # the baseline never connects
                with bridge_process(mode, broker, topic, secret_file, work) as (url, pid):
                    if not args.smoke:
                        bench.warm_up(url)
                    best = bench.highest_sustained(url)
                    half_rate = max(1, best.rate // 2)
                    print(f"  latency at half the highest rate ({half_rate}/s):", flush=True)
                    cpu = cpu_seconds(pid)
                    half = bench.run_at(url, int(half_rate), args.latency_duration)
                    cpu = cpu_seconds(pid) - cpu
                results["modes"][mode] = {
                    "highest": asdict(best),
                    "half": asdict(half),
                    # CPU time is far less sensitive to a busy machine than a p99 is: the
                    # steadier measure of what Kafka costs the bridge per request.
                    "cpu_s_per_1000_at_half": round(cpu * 1000 / max(half.requests, 1), 3),
                }
    summarize(results)
    finish(results, args.output)
    return 0


def summarize(results: dict[str, Any]) -> None:
    modes = results["modes"]
    print("\nmode       highest sustained 202/s   at half: rate   p50 ms   p99 ms  CPU-s/1000")
    for mode, result in modes.items():
        half = result["half"]
        print(
            f"{mode:<10} {result['highest']['rate']:>24}   {half['rate']:>13}  "
            f"{half['p50_ms']:7.1f}  {half['p99_ms']:7.1f}  {result['cpu_s_per_1000_at_half']:9.3f}"
        )
    if "kafka" in modes and "baseline" in modes:
        ratio = modes["kafka"]["highest"]["rate"] / modes["baseline"]["highest"]["rate"]
        results["ratio"] = ratio
        verdict = "meets" if ratio >= 0.8 else "misses"
        print(f"\nratio kafka/baseline = {ratio:.2f} ({verdict} the 0.8 goal)")


if __name__ == "__main__":
    sys.exit(main())
