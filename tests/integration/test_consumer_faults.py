"""A CRM that fails in the ways real ones do: errors, timeouts, hangs, an outage longer than the
retry budget, a misconfigured address answering 400 to everything. Every event's effect gets
there, in order per customer, and nothing is dead-lettered."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from sandbox.records import ids_by_customer, interleaved_events, produce
from support.consumers import ConsumerGroup
from support.crm import CrmSimulator
from support.kafka import read_all
from support.metrics import sample
from support.waiting import eventually_sync

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


@pytest.mark.parametrize(
    ("faults", "consumer"),
    [
        pytest.param({"error_rate": 0.25}, {}, id="a quarter of the calls 500 or 503"),
        pytest.param(
            {"timeout_rate": 0.1, "hang_s": 3.0},
            {"crm_timeout_s": 1.0},
            id="a tenth hang past the client's timeout",
        ),
        pytest.param({"timeout_rate": 0.1, "hang_s": 0.5}, {}, id="a tenth hang, then answer 504"),
    ],
)
def test_an_unwell_crm_gets_every_event_in_order_and_nothing_is_dead_lettered(
    kafka_bootstrap: str,
    pipeline_topics,
    crm: CrmSimulator,
    group: ConsumerGroup,
    *,
    faults: dict[str, Any],
    consumer: dict[str, Any],
) -> None:
    crm.set_faults(**faults)
    events = interleaved_events(customers=40, total=400, seed=13)
    produce(kafka_bootstrap, pipeline_topics.events, events)
    url = group.start(**consumer) and group.metrics_urls[0]

    eventually_sync(lambda: len(crm.applied()) >= len(events), timeout=240)
    assert crm.event_ids_by_customer() == ids_by_customer(events)
    assert read_all(kafka_bootstrap, pipeline_topics.dead_letters) == []
    failed = sum(1 for r in crm.requests() if r["status"] >= 500)
    assert failed > 0, "no fault was injected: the test shows nothing"
    assert (sample(url, "segstream_consumer_sink_retries_total") or 0) > 0


def test_an_outage_longer_than_the_retry_budget_dead_letters_nothing(
    kafka_bootstrap: str, pipeline_topics, crm: CrmSimulator, group: ConsumerGroup
) -> None:
    """Issue 8 §3: time waiting on the open breaker counted towards the budget, so a record's
    first failure after an outage longer than the budget sent it to the dead-letter topic."""
    events = interleaved_events(customers=40, total=400, seed=17)
    first, second = events[:100], events[100:]
    produce(kafka_bootstrap, pipeline_topics.events, first)
    group.start(retry_max_elapsed_s=3.0)  # a budget far shorter than the outage
    url = group.metrics_urls[0]
    eventually_sync(lambda: len(crm.applied()) >= len(first), timeout=60)

    crm.set_faults(outage=True)
    produce(kafka_bootstrap, pipeline_topics.events, second)
    eventually_sync(lambda: sample(url, "segstream_consumer_circuit_open") == 1, timeout=30)
    outage_ends = time.monotonic() + 10  # three budgets long
    while time.monotonic() < outage_ends:
        assert read_all(kafka_bootstrap, pipeline_topics.dead_letters) == []
        time.sleep(1)
    # Back, but not well: the first attempts after the outage fail now and then.
    crm.set_faults(outage=False, error_rate=0.2)

    eventually_sync(lambda: len(crm.applied()) >= len(events), timeout=120)
    assert read_all(kafka_bootstrap, pipeline_topics.dead_letters) == []
    assert crm.event_ids_by_customer() == ids_by_customer(events)


class _AnswersBadRequest(BaseHTTPRequestHandler):
    """What nginx answers when plain HTTP reaches its HTTPS port."""

    requests = 0

    def do_POST(self) -> None:
        type(self).requests += 1
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = b"<html><h1>400 Bad Request</h1>The plain HTTP request was sent to HTTPS port</html>"
        self.send_response(400)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        return None


@contextmanager
def wrong_port() -> Iterator[tuple[str, type[_AnswersBadRequest]]]:
    handler = type("Handler", (_AnswersBadRequest,), {"requests": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def test_a_sink_answering_400_to_everyone_opens_the_breaker_and_dead_letters_nothing(
    kafka_bootstrap: str, pipeline_topics, crm: CrmSimulator, group: ConsumerGroup
) -> None:
    """Issue 8 §2: a URL that answers 400 to every request dead-lettered every record while the
    breaker stayed closed. Nothing may be lost: once the address is fixed, everything arrives."""
    events = interleaved_events(customers=60, total=300, seed=19)
    produce(kafka_bootstrap, pipeline_topics.events, events)
    with wrong_port() as (url, handler):
        misconfigured = group.start(crm_base_url=url)
        metrics = group.metrics_urls[0]
        eventually_sync(lambda: sample(metrics, "segstream_consumer_circuit_open") == 1, timeout=60)
        # The breaker probes now and then; every probe is refused too.
        probes_from = handler.requests
        eventually_sync(lambda: handler.requests >= probes_from + 2, timeout=30)
        assert sample(metrics, "segstream_consumer_circuit_open") == 1
        assert read_all(kafka_bootstrap, pipeline_topics.dead_letters) == []
        assert misconfigured.stop() == 0

    group.start()  # the operator fixed the address
    eventually_sync(lambda: len(crm.applied()) >= len(events), timeout=120)
    assert crm.event_ids_by_customer() == ids_by_customer(events)
    assert read_all(kafka_bootstrap, pipeline_topics.dead_letters) == []
