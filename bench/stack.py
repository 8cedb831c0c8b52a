"""The system's processes for a benchmark: CRM simulator, consumer instances, bridge, and what
is read back from them (the simulator's request log, a topic's record timestamps, metrics)."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from bench.common import cpu_seconds, resident_bytes, service
from consumer.pipeline import header_value
from sandbox.kafka.broker import free_port
from sandbox.secrets import ensure_secret_file, new_bearer_token, new_webhook_secret
from schemas.topics import HEADER_EVENT_ID

# The CRM answers after this long in every consumer benchmark: a SaaS CRM's update call takes
# tens of milliseconds, and a latency is what makes concurrency matter at all.
CRM_LATENCY_MS = 20.0


def _get_json(url: str, timeout: float = 30) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback
        return json.load(response)


def _post_json(url: str, body: Any) -> Any:
    request = urllib.request.Request(  # noqa: S310 - loopback
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return json.load(response)


def instant(text: str) -> float:
    """An ISO-8601 time of the simulator's logs as epoch seconds."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass
class Crm:
    url: str
    token_file: Path
    process: subprocess.Popen[bytes]

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = _get_json(self.url + "/_sim/stats")
        return stats

    def ok_writes(self) -> int:
        """Requests answered 200 or 201 (first answers, not idempotent replays)."""
        by_status = self.stats()["by_status"]
        return int(by_status.get("200", 0)) + int(by_status.get("201", 0))

    def requests(self) -> list[dict[str, Any]]:
        """Every ``/v1`` request with ``received_at``, ``status``, ``idempotency_key``."""
        return list(_get_json(self.url + "/_sim/requests", timeout=120)["requests"])

    def set_faults(self, **faults: Any) -> None:
        _post_json(self.url + "/_sim/faults", faults)

    def reset(self) -> None:
        _post_json(self.url + "/_sim/reset", {})


@contextmanager
def crm_simulator(work: Path, **settings: Any) -> Iterator[Crm]:
    """The simulator with customers created on first write (one event = one request) and
    :data:`CRM_LATENCY_MS`, unless ``settings`` say otherwise (``SEGSTREAM_CRM_SIM_*``)."""
    token_file = work / "crm-token"
    ensure_secret_file(token_file, new_bearer_token)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    chosen = {
        "auto_create": "true",
        "latency_ms_min": CRM_LATENCY_MS,
        "latency_ms_max": CRM_LATENCY_MS,
        **settings,
    }
    env = {
        **os.environ,
        **{f"SEGSTREAM_CRM_SIM_{k.upper()}": str(v) for k, v in chosen.items()},
        "SEGSTREAM_CRM_SIM_PORT": str(port),
        "SEGSTREAM_CRM_SIM_TOKEN_FILE": str(token_file),
    }
    with service("crm-sim", "sandbox", env, work, url + "/healthz", "crm") as process:
        yield Crm(url, token_file, process)


@dataclass
class Instance:
    """One running service process, with what a benchmark reads off it."""

    name: str
    process: subprocess.Popen[bytes]
    metrics_url: str
    stack: ExitStack = field(default_factory=ExitStack)

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def resident_bytes(self) -> int:
        return resident_bytes(self.pid)

    def metric(self, name: str) -> float:
        """The sum of every sample of ``name`` on the instance's ``/metrics``."""
        total = 0.0
        with urllib.request.urlopen(self.metrics_url, timeout=10) as response:  # noqa: S310
            for line in response.read().decode().splitlines():
                if line.startswith(name) and line[len(name)] in " {":
                    total += float(line.rsplit(" ", 1)[1])
        return total

    def stop(self) -> None:
        self.stack.close()


def consumer_env(
    bootstrap: str, topic: str, group: str, crm: Crm, **settings: Any
) -> dict[str, str]:
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "SEGSTREAM_CONSUMER_TOPIC": topic,
        "SEGSTREAM_CONSUMER_DEAD_LETTER_TOPIC": topic + ".dlq",
        "SEGSTREAM_CONSUMER_GROUP_ID": group,
        "SEGSTREAM_CONSUMER_CRM_BASE_URL": crm.url,
        "SEGSTREAM_CONSUMER_CRM_TOKEN_FILE": str(crm.token_file),
        **{f"SEGSTREAM_CONSUMER_{k.upper()}": str(v) for k, v in settings.items()},
    }


def start_consumer(
    work: Path, bootstrap: str, topic: str, crm: Crm, *, group: str, name: str, **settings: Any
) -> Instance:
    """A ``python -m consumer run`` process, up once its metrics answer; ``stop()`` ends it."""
    port = free_port()
    env = consumer_env(bootstrap, topic, group, crm, metrics_port=port, **settings)
    url = f"http://127.0.0.1:{port}/metrics"
    stack = ExitStack()
    process = stack.enter_context(service(name, "consumer", env, work, url, "run"))
    return Instance(name, process, url, stack)


def new_group(prefix: str = "bench") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@dataclass
class Bridge:
    url: str
    secret: str
    instance: Instance


@contextmanager
def bridge(work: Path, bootstrap: str, topic: str, name: str = "bridge") -> Iterator[Bridge]:
    """The real bridge (``python -m producer_bridge``) producing to ``topic``."""
    secret_file = work / f"{name}-webhook-secret"
    secret = ensure_secret_file(secret_file, new_webhook_secret)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "SEGSTREAM_BRIDGE_PORT": str(port),
        "SEGSTREAM_BRIDGE_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "SEGSTREAM_BRIDGE_TOPIC": topic,
        "SEGSTREAM_BRIDGE_WEBHOOK_SECRETS_FILE": str(secret_file),
    }
    with service(name, "producer_bridge", env, work, url + "/readyz") as process:
        yield Bridge(url, secret, Instance(name, process, url + "/metrics"))


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """Each partition's high watermark now."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-offsets"})
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
            for p in partitions
        }
    finally:
        consumer.close()


def record_times(
    bootstrap: str, topic: str, start: dict[int, int], end: dict[int, int]
) -> dict[str, tuple[int, int]]:
    """``event-id`` header -> (record timestamp in epoch ms, partition) of every record between
    ``start`` and ``end`` (per-partition offsets)."""
    wanted = {p: e for p, e in end.items() if e > start.get(p, 0)}
    found: dict[str, tuple[int, int]] = {}
    if not wanted:
        return found
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "bench-reader", "enable.auto.commit": False}
    )
    try:
        consumer.assign([TopicPartition(topic, p, start.get(p, 0)) for p in wanted])
        deadline = time.monotonic() + 120
        while wanted and time.monotonic() < deadline:
            for message in consumer.consume(10_000, 0.5):
                if message.error():
                    continue
                partition, offset = message.partition() or 0, message.offset() or 0
                event_id = header_value(message, HEADER_EVENT_ID)
                if event_id is not None:
                    found[event_id.decode()] = (message.timestamp()[1], partition)
                if partition in wanted and offset + 1 >= wanted[partition]:
                    del wanted[partition]
        if wanted:
            raise RuntimeError(f"{topic}: partitions {sorted(wanted)} not read to the end")
        return found
    finally:
        consumer.close()


def wait_until_written(crm: Crm, expected: int, *, timeout_s: float, quiet_s: float = 3.0) -> int:
    """Poll the simulator until ``expected`` writes arrived, or nothing new arrived for
    ``quiet_s`` seconds, or ``timeout_s`` passed; returns the writes counted."""
    deadline = time.monotonic() + timeout_s
    last, last_change = -1, time.monotonic()
    while True:
        count = crm.ok_writes()
        now = time.monotonic()
        if count != last:
            last, last_change = count, now
        if count >= expected or now - last_change >= quiet_s or now >= deadline:
            return count
        time.sleep(0.1)
