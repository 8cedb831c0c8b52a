"""The event generator against the bridge's real application, with a publisher that fails on
purpose: order per customer, retries of the very same event, malformed requests, the ledger."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

from aiohttp.test_utils import TestServer
from pydantic import SecretStr

from producer_bridge.app import create_app
from producer_bridge.errors import PublishUnavailableError
from producer_bridge.publisher import Delivered, OutgoingRecord
from producer_bridge.settings import BridgeSettings
from sandbox.generator import EventGenerator, GeneratorConfig, read_ledger
from sandbox.generator.population import ZipfCustomers
from sandbox.secrets import new_webhook_secret
from schemas.codec import EventCodec
from schemas.model import Channel


class FlakyRecordingPublisher:
    """Refuses every twentieth record on its first attempt (503 to the sender), acknowledges
    the rest after a random few milliseconds, and records what it saw per customer key."""

    def __init__(self) -> None:
        self.stored: list[tuple[str, str, str]] = []  # (customer, event id, seq)
        self.refused: set[str] = set()
        self.overlaps: list[str] = []
        self._in_flight: Counter[str] = Counter()
        self._codec = EventCodec("t")
        self._rng = random.Random(3)
        self._seen = 0
        self._stored_ids: set[str] = set()

    async def publish_all(
        self, topic: str, records: Sequence[OutgoingRecord]
    ) -> list[Delivered | PublishUnavailableError]:
        results: list[Delivered | PublishUnavailableError] = []
        for record in records:
            event = self._codec.decode(record.value)
            key = event.customer_id
            self._in_flight[key] += 1
            if self._in_flight[key] > 1:
                self.overlaps.append(key)
            try:
                await asyncio.sleep(self._rng.uniform(0, 0.004))
                self._seen += 1
                first_attempt = event.event_id not in self.refused | self._stored_ids
                if self._seen % 20 == 0 and first_attempt:
                    self.refused.add(event.event_id)
                    results.append(PublishUnavailableError("refused on purpose"))
                    continue
                self.stored.append((key, event.event_id, event.attributes["seq"]))
                self._stored_ids.add(event.event_id)
                results.append(Delivered(topic, 0, len(self.stored)))
            finally:
                self._in_flight[key] -= 1
        return results

    def ready(self, topic: str, timeout: float) -> bool:
        return True

    def queued(self) -> int:
        return 0

    def close(self, timeout: float = 10.0) -> int:
        return 0


async def test_a_run_keeps_per_customer_order_retries_the_same_event_and_writes_a_ledger(
    tmp_path: Path,
) -> None:
    secret = new_webhook_secret()
    settings = BridgeSettings(webhook_secrets=SecretStr(secret), retry_after_s=1)
    publisher = FlakyRecordingPublisher()
    ledger = tmp_path / "ledger.jsonl"
    async with TestServer(create_app(settings, publisher), host="127.0.0.1") as server:
        generator = EventGenerator(
            GeneratorConfig(
                url=str(server.make_url("")),
                ledger=ledger,
                secret=secret,
                rate=400,
                duration_s=None,
                max_events=400,
                customers=60,
                zipf_exponent=1.2,
                malformed_share=0.05,
                duplicate_share=0.05,
                seed=11,
                drain_timeout_s=30,
            )
        )
        summary = await generator.run()

    entries = read_ledger(ledger)
    assert summary.accepted == len(entries) == summary.scheduled
    assert summary.abandoned == summary.valid_rejected == summary.malformed_unexpected == 0
    assert summary.malformed_sent > 0
    assert summary.responses["503"] >= 1
    assert summary.retries > 0
    assert summary.duplicates_sent > 0
    assert set(summary.channels) == {channel.value for channel in Channel}

    # Never two events of one customer at the bridge at once...
    assert publisher.overlaps == []
    # ...so each customer's events were stored in sending order, seq 1, 2, 3, ...
    stored_seq: dict[str, list[int]] = defaultdict(list)
    for customer, _event_id, seq in publisher.stored:
        if int(seq) not in stored_seq[customer]:  # a duplicate repeats an earlier seq
            stored_seq[customer].append(int(seq))
    assert all(seqs == list(range(1, len(seqs) + 1)) for seqs in stored_seq.values())
    # Every refused event was sent again as the same event and then stored.
    stored_ids = {event_id for _, event_id, _ in publisher.stored}
    assert publisher.refused <= stored_ids
    # The ledger agrees with what was stored, and with itself.
    assert {entry.event_id for entry in entries} == stored_ids
    retried = [entry for entry in entries if entry.event_id in publisher.refused]
    assert retried
    assert all(entry.attempts >= 2 for entry in retried)
    ledger_seq: dict[str, list[int]] = defaultdict(list)
    for entry in entries:
        ledger_seq[entry.customer_id].append(entry.seq)
    assert ledger_seq == stored_seq


def test_customers_are_zipf_skewed() -> None:
    customers = ZipfCustomers(1000, 1.1, random.Random(5))
    picks = Counter(customers.pick() for _ in range(20_000))
    top_ten = sum(count for _, count in picks.most_common(10))
    assert abs(top_ten / 20_000 - customers.share_of_top(10)) < 0.03
    assert customers.share_of_top(10) > 0.3  # ten of a thousand customers: a third of the traffic
    assert picks["C-0001"] > picks["C-0010"] > picks["C-0500"]


def test_the_ledger_skips_a_line_still_being_written(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    line = {
        "event_id": "e",
        "customer_id": "C-1",
        "seq": 1,
        "webhook_id": "msg_1",
        "attempts": 1,
        "accepted_at": "2026-11-28T10:00:00+00:00",
        "partition": 0,
        "offset": 0,
    }
    path.write_text(json.dumps(line) + "\n" + json.dumps(line)[:20])
    assert [entry.seq for entry in read_ledger(path)] == [1]
