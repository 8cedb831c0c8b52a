"""The promise behind a 202, under a real sender, while the broker goes away and comes back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections import defaultdict
from pathlib import Path

import pytest

from sandbox.generator import read_ledger
from sandbox.kafka.broker import LocalKafka, free_port
from sandbox.secrets import ensure_secret_file, new_webhook_secret
from support.kafka import TopicFactory, read_all
from support.services import ServiceProcess
from support.waiting import eventually_sync

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def count_503s(bridge_url: str) -> int:
    with urllib.request.urlopen(bridge_url + "/metrics", timeout=5) as response:  # noqa: S310
        page = response.read().decode()
    prefix = 'segstream_bridge_requests_total{route="/v1/interactions/completed",status="503"} '
    return sum(
        int(float(line.split()[-1])) for line in page.splitlines() if line.startswith(prefix)
    )


def test_broker_down_mid_run_gives_503s_loses_no_202_and_recovers_without_a_restart(
    controllable_kafka: LocalKafka, run_dir: Path
) -> None:
    bootstrap = controllable_kafka.bootstrap_servers
    topic = TopicFactory(bootstrap).create("outage", partitions=3)
    secret_file = run_dir / "webhook-secret"
    ensure_secret_file(secret_file, new_webhook_secret)
    ledger = run_dir / "ledger.jsonl"
    port = free_port()
    bridge_url = f"http://127.0.0.1:{port}"
    bridge = ServiceProcess(
        "bridge",
        ["producer_bridge"],
        {
            "SEGSTREAM_BRIDGE_PORT": str(port),
            "SEGSTREAM_BRIDGE_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "SEGSTREAM_BRIDGE_TOPIC": topic,
            "SEGSTREAM_BRIDGE_WEBHOOK_SECRETS_FILE": str(secret_file),
            "SEGSTREAM_BRIDGE_DELIVERY_TIMEOUT_MS": "2000",
            "SEGSTREAM_BRIDGE_RETRY_AFTER_S": "1",
        },
        run_dir,
    )
    generator: subprocess.Popen[str] | None = None
    generator_log = (run_dir / "generator.log").open("w")
    try:
        bridge.wait_http(bridge_url + "/readyz")
        generator = subprocess.Popen(
            [sys.executable, "-m", "sandbox", "generate", "--url", bridge_url,
             "--secret-file", str(secret_file), "--ledger", str(ledger), "--rate", "80",
             "--duration", "120", "--customers", "150", "--zipf", "1.2",
             "--malformed-share", "0.03", "--duplicate-share", "0.03", "--drain-timeout", "40"],
            stdout=subprocess.PIPE,
            stderr=generator_log,
            text=True,
            env=os.environ.copy(),
        )  # fmt: skip

        def accepted() -> int:
            return len(read_ledger(ledger)) if ledger.exists() else 0

        eventually_sync(lambda: accepted() >= 150, timeout=30)
        controllable_kafka.stop_node(0)
        try:
            eventually_sync(lambda: count_503s(bridge_url) >= 10, timeout=30)
            during_outage = accepted()
        finally:
            controllable_kafka.start_node(0)
        # Same bridge process, no restart: 202s come back on their own.
        eventually_sync(lambda: accepted() >= during_outage + 150, timeout=60)
        assert bridge.process.poll() is None

        generator.send_signal(signal.SIGTERM)
        output, _ = generator.communicate(timeout=90)
        summary = json.loads(output.strip().splitlines()[-1])
    finally:
        if generator is not None and generator.poll() is None:
            generator.kill()
            generator.wait()
        generator_log.close()
        assert bridge.stop() == 0

    assert summary["responses"].get("503", 0) >= 10
    assert summary["retries"] >= 10
    assert summary["valid_rejected"] == 0
    assert summary["malformed_unexpected"] == 0
    assert summary["abandoned"] == 0

    entries = read_ledger(ledger)
    assert len(entries) == summary["accepted"]
    records = sorted(read_all(bootstrap, topic), key=lambda r: (r.partition(), r.offset()))
    stored_ids = [dict(record.headers() or [])["event-id"].decode() for record in records]
    # Every event that got a 202 is in the topic (some twice: sender retries and duplicates).
    assert {entry.event_id for entry in entries} - set(stored_ids) == set()
    # ...and each customer's events are there in the order they were sent: the first occurrence
    # of each of its events, in partition order, runs through its ledger seq in order.
    by_event = {entry.event_id: entry for entry in entries}
    sent: dict[str, list[int]] = defaultdict(list)
    for entry in entries:
        sent[entry.customer_id].append(entry.seq)
    first_seen: dict[str, list[int]] = defaultdict(list)
    for event_id in dict.fromkeys(stored_ids):  # first occurrences, in order
        if event_id in by_event:
            entry = by_event[event_id]
            first_seen[entry.customer_id].append(entry.seq)
    assert first_seen == sent
    assert all(seqs == list(range(1, len(seqs) + 1)) for seqs in sent.values())
