"""Both services against the local broker's secured listeners: mutual TLS, SCRAM over TLS, and
OAUTHBEARER over TLS with tokens from a local OIDC provider (sandbox/kafka/oidc.py).

The services are given only the secured listener's address, so any Kafka client one of them made
without the security settings could not connect, and the flow below uses every client: the
consumer's admin client (``create-topics``, the state topic check at start), the group consumer,
the dead-letter producer (a poison record), the state-changelog producer (a write) and its restore
reader and the dedupe-history reader (a restart followed by a duplicate, which dedupe, not the
customer state, must catch), and the bridge's producer (202s and ``/readyz``). The test itself
sets up and reads back over the PLAINTEXT listener.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from consumer.clients import KafkaClients
from consumer.settings import ConsumerSettings
from sandbox.kafka.broker import LocalKafka
from sandbox.kafka.oidc import OidcProvider
from sandbox.records import produce_raw
from schemas.topics import HEADER_EVENT_ID
from support.bridge import EVENTS, serve_bridge
from support.commands import run_create_topics
from support.consumers import ConsumerGroup
from support.crm import CrmSimulator, event_id_of
from support.kafka import read_all
from support.metrics import metric
from support.waiting import eventually_sync

pytestmark = pytest.mark.kafka

OIDC_CLIENT_ID = "segstream"  # the client the test session's OIDC provider knows (conftest)

USER = "segstream"


def security_settings(
    cluster: LocalKafka, mode: str, secrets_dir: Path, oidc: OidcProvider | None = None
) -> dict[str, str]:
    """The settings (without prefix) for ``mode``, and ``bootstrap``; passwords go in files."""
    security = cluster.security
    assert security is not None
    if mode == "oauthbearer":
        assert oidc is not None
        secret_file = secrets_dir / "oidc-client-secret"
        secret_file.write_text(oidc.clients[OIDC_CLIENT_ID])
        return {
            "bootstrap": cluster.sasl_ssl_bootstrap_servers,
            "kafka_security_protocol": "SASL_SSL",
            "kafka_ssl_ca_file": str(security.ca_file),
            "kafka_sasl_mechanism": "OAUTHBEARER",
            "kafka_sasl_oauthbearer_token_endpoint_url": oidc.token_endpoint_url,
            "kafka_sasl_oauthbearer_client_id": OIDC_CLIENT_ID,
            "kafka_sasl_oauthbearer_client_secret_file": str(secret_file),
            "kafka_sasl_oauthbearer_scope": "kafka",
        }
    if mode == "ssl":
        return {
            "bootstrap": cluster.ssl_bootstrap_servers,
            "kafka_security_protocol": "SSL",
            "kafka_ssl_ca_file": str(security.ca_file),
            "kafka_ssl_certificate_file": str(security.client_certificate_file),
            "kafka_ssl_key_file": str(security.client_key_file),
        }
    mechanism = mode.upper()
    users = security.plain_users if mechanism == "PLAIN" else security.scram_users
    [(user, password)] = users.items()
    password_file = secrets_dir / f"kafka-password-{mode}"
    password_file.write_text(password + "\n")
    return {
        "bootstrap": cluster.sasl_ssl_bootstrap_servers,
        "kafka_security_protocol": "SASL_SSL",
        "kafka_ssl_ca_file": str(security.ca_file),
        "kafka_sasl_mechanism": mechanism,
        "kafka_sasl_username": user,
        "kafka_sasl_password_file": str(password_file),
    }


def consumer_clients(**settings: str) -> KafkaClients:
    bootstrap = settings.pop("bootstrap")
    return KafkaClients.from_settings(
        ConsumerSettings(kafka_bootstrap_servers=bootstrap, **settings)  # type: ignore[arg-type]
    )


def create_topics(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``segstream-consumer create-topics`` as an operator runs it."""
    return run_create_topics({**os.environ, **env})


def passwords(settings: dict[str, str]) -> list[str]:
    return [
        Path(value).read_text().strip()
        for name, value in settings.items()
        if name.endswith(("password_file", "secret_file"))
    ]


def refuse_password(settings: dict[str, str]) -> None:
    Path(settings["kafka_sasl_password_file"]).write_text("not-the-password")


def architect_event(customer: str, contact: str, summary: str) -> dict[str, Any]:
    return {
        "customerId": customer,
        "contactId": contact,
        "channel": "chat",
        "startTime": "2026-11-28T10:15:00Z",
        "interactionSummary": summary,
        "tags": ["secure"],
    }


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["ssl", "scram-sha-512", "oauthbearer"])
async def test_one_event_end_to_end_through_every_client(
    mode: str,
    secure_kafka: LocalKafka,
    secure_kafka_oidc: OidcProvider,
    run_dir: Path,
    group_id: str,
) -> None:
    settings = security_settings(secure_kafka, mode, run_dir, secure_kafka_oidc)
    bootstrap = settings.pop("bootstrap")
    names = uuid.uuid4().hex[:8]
    topic, dlq = f"secure-{names}", f"secure-{names}.dlq"
    env = {f"SEGSTREAM_CONSUMER_{name.upper()}": value for name, value in settings.items()}
    env |= {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "SEGSTREAM_CONSUMER_TOPIC": topic,
        "SEGSTREAM_CONSUMER_DEAD_LETTER_TOPIC": dlq,
        "SEGSTREAM_CONSUMER_GROUP_ID": group_id,
        "SEGSTREAM_CONSUMER_TOPIC_PARTITIONS": "3",
        "SEGSTREAM_CONSUMER_TOPIC_REPLICATION_FACTOR": "1",
        "SEGSTREAM_CONSUMER_TOPIC_MIN_INSYNC_REPLICAS": "1",
    }
    created = await asyncio.to_thread(create_topics, env)
    assert created.returncode == 0, created.stderr
    plaintext = AdminClient({"bootstrap.servers": secure_kafka.bootstrap_servers})
    listed = plaintext.list_topics(timeout=10).topics
    assert {topic, dlq, f"{group_id}-customer-state-changelog"} <= set(listed)

    crm = CrmSimulator(run_dir)
    group = ConsumerGroup(
        bootstrap=bootstrap, topic=topic, dlq=dlq, group_id=group_id, crm=crm, run_dir=run_dir,
        **settings,
    )  # fmt: skip
    first = architect_event("C-secure", "contact-1", "first")
    later = architect_event("C-secure", "contact-2", "later")
    later["startTime"] = "2026-11-28T11:00:00Z"
    try:
        async with serve_bridge(bootstrap, topic, **settings) as bridge:
            ready = await bridge.request("GET", "/readyz")
            assert ready.status == 200, ready.body
            accepted = await bridge.post(EVENTS, first)
            assert accepted.status == 202, accepted.body
            first_id = accepted.body["event_id"]
            produce_raw(
                secure_kafka.bootstrap_servers, topic, b"C-poison", b"{not avro}",
                [(HEADER_EVENT_ID, b"poison-1")],
            )  # fmt: skip

            instance = group.start()
            eventually_sync(
                lambda: (
                    (crm.customer("C-secure") or {})
                    .get("attributes", {})
                    .get("last_interaction_summary")
                    == "first"
                ),
                timeout=60,
            )
            [dead_letter] = eventually_sync(
                lambda: read_all(secure_kafka.bootstrap_servers, dlq), timeout=30
            )
            assert dict(dead_letter.headers() or [])[HEADER_EVENT_ID] == b"poison-1"
            assert instance.stop() == 0
            sent_first = [
                r for r in crm.requests() if event_id_of(r["idempotency_key"] or "") == first_id
            ]

            # The same event again, then a later one of the same customer (same partition,
            # strictly after it): a restarted instance restores the customer's state and
            # rebuilds dedupe history over the secured listener before it handles either.
            assert (await bridge.post(EVENTS, first)).status == 202
            assert (await bridge.post(EVENTS, later)).status == 202

        restarted = group.start()
        eventually_sync(
            lambda: (
                (crm.customer("C-secure") or {})
                .get("attributes", {})
                .get("last_interaction_summary")
                == "later"
            ),
            timeout=60,
        )
        # Dedupe (rebuilt from the partition) caught the copy, before the customer state would.
        assert metric(group.metrics_urls[-1], "segstream_consumer_dedupe_hits_total") == 1
        again = [r for r in crm.requests() if event_id_of(r["idempotency_key"] or "") == first_id]
        assert again == sent_first
        assert restarted.stop() == 0
        logs = restarted.log_text() + instance.log_text()
        assert not any(password in logs for password in passwords(settings))
    finally:
        group.stop_all()
        assert crm.stop() == 0


@pytest.mark.parametrize("mode", ["ssl", "scram-sha-256", "scram-sha-512", "plain", "oauthbearer"])
def test_each_listener_and_mechanism_answers_the_consumers_clients(
    mode: str, secure_kafka: LocalKafka, secure_kafka_oidc: OidcProvider, run_dir: Path
) -> None:
    clients = consumer_clients(**security_settings(secure_kafka, mode, run_dir, secure_kafka_oidc))
    tokens_before = secure_kafka_oidc.issued
    metadata = clients.admin().list_topics(timeout=15)
    assert set(metadata.brokers) == {1}
    if mode == "oauthbearer":  # librdkafka fetched its token from the provider itself
        assert secure_kafka_oidc.issued > tokens_before


@pytest.mark.parametrize(
    ("mode", "change"),
    [
        ("scram-sha-256", {"wrong_password": "yes"}),
        ("scram-sha-512", {"kafka_sasl_username": "nobody"}),
        ("ssl", {"kafka_ssl_ca_file": "other"}),  # a CA that did not sign the broker's cert
        ("ssl", {"kafka_ssl_certificate_file": None, "kafka_ssl_key_file": None}),
        ("ssl", {"bootstrap": "localhost"}),  # the certificate names 127.0.0.1, not localhost
        ("oauthbearer", {"wrong_client_secret": "yes"}),  # the provider refuses the token
    ],
)
def test_a_client_the_broker_or_its_certificate_should_refuse_gets_nowhere(
    mode: str,
    change: dict[str, str | None],
    secure_kafka: LocalKafka,
    secure_kafka_oidc: OidcProvider,
    run_dir: Path,
) -> None:
    settings = security_settings(secure_kafka, mode, run_dir, secure_kafka_oidc)
    assert secure_kafka.security is not None
    for name, value in change.items():
        if name == "wrong_password":
            refuse_password(settings)
        elif name == "wrong_client_secret":
            Path(settings["kafka_sasl_oauthbearer_client_secret_file"]).write_text("not-it")
        elif value == "other":
            settings[name] = str(secure_kafka.security.other_ca_file)
        elif value == "localhost":
            settings[name] = settings[name].replace("127.0.0.1", "localhost")
        elif value is None:
            del settings[name]
        else:
            settings[name] = value
    with pytest.raises(KafkaException):
        consumer_clients(**settings).admin().list_topics(timeout=8)


def test_hostname_verification_off_accepts_a_certificate_for_another_name(
    secure_kafka: LocalKafka, run_dir: Path
) -> None:
    """The setting is honoured both ways; the refusal with it on is the case just above."""
    settings = security_settings(secure_kafka, "ssl", run_dir)
    settings["bootstrap"] = settings["bootstrap"].replace("127.0.0.1", "localhost")
    settings["kafka_ssl_endpoint_identification"] = "false"
    assert set(consumer_clients(**settings).admin().list_topics(timeout=15).brokers) == {1}


async def test_the_bridge_is_not_ready_with_credentials_the_broker_refuses(
    secure_kafka: LocalKafka, run_dir: Path
) -> None:
    settings = security_settings(secure_kafka, "scram-sha-256", run_dir)
    refuse_password(settings)
    bootstrap = settings.pop("bootstrap")
    async with serve_bridge(bootstrap, "any-topic", **settings) as bridge:
        assert (await bridge.request("GET", "/readyz")).status == 503
