"""``segstream-dlq`` on its own (the dead letters come from the real consumer, which is then
stopped): filtered runs lose nothing and handle nothing twice, park, and safety at 3 a.m.: a dry
run changes nothing (Kafka's Admin API says so), a replay killed half-way and run again
re-publishes each record exactly once, an interrupted run resumes, a second run fences the
first, and usage errors change nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource

from sandbox.records import make_event, produce, produce_raw
from schemas.codec import SingleObjectCodec
from schemas.topics import HEADER_PARKED_REASON
from support.commands import run_create_topics
from support.consumers import ConsumerGroup
from support.crm import CrmSimulator
from support.dlq import DlqTool, header, origin, provenance, replays
from support.kafka import committed_offsets, end_offsets, read_all, settled_end_offsets
from support.traffic import steady_traffic
from support.waiting import eventually_sync

pytestmark = pytest.mark.kafka

REJECTED = 200


@pytest.fixture
def dead_letters(
    kafka_bootstrap: str, pipeline_topics: Any, crm: CrmSimulator, group: ConsumerGroup
) -> list[Any]:
    """REJECTED events the CRM refused, dead-lettered by the real consumer among healthy
    traffic, which then stops (so only the tool touches Kafka afterwards)."""
    crm.set_faults(reject_customer_prefix="REJ-")
    events = [make_event(f"REJ-{n % 10:02d}", n // 10 + 1) for n in range(REJECTED)]
    with steady_traffic(kafka_bootstrap, pipeline_topics.events, interval_s=0.05):
        produce(kafka_bootstrap, pipeline_topics.events, events)
        group.start()
        dead = eventually_sync(
            lambda: (
                (r := read_all(kafka_bootstrap, pipeline_topics.dead_letters))
                and len(r) >= REJECTED
                and r
            ),
            timeout=90,
        )
    assert group.stop_all() == {"consumer-1": 0}
    assert len(dead) == REJECTED
    return list(dead)


def test_runs_with_different_filters_lose_nothing_and_handle_nothing_twice(
    kafka_bootstrap: str, pipeline_topics: Any, dead_letters: list[Any], dlq: DlqTool
) -> None:
    group_id = f"{pipeline_topics.dead_letters}-replay"
    parked_key = "REJ-07"
    partition = origin(dead_letters[0])[1]
    want_parked = {origin(m) for m in dead_letters if m.key() == parked_key.encode()}
    in_partition = {origin(m) for m in dead_letters if origin(m)[1] == partition}

    parked = dlq.run_json("park", "--key", parked_key)
    assert parked["counts"]["parked"] == len(want_parked)
    # Records after the first one left alone are listed in the group's commit metadata.
    commits = committed_offsets(kafka_bootstrap)[group_id]
    assert any((metadata or "").startswith("v1:") for _, metadata in commits.values())

    first = dlq.run_json("replay", "--partition", str(partition))
    assert first["counts"]["replayed"] == len(in_partition - want_parked)
    capped = dlq.run_json("replay", "--all", "--max", "7")
    assert capped["counts"]["replayed"] == 7
    rest = dlq.run_json("replay", "--all")
    assert rest["counts"]["replayed"] == REJECTED - len(want_parked | in_partition) - 7
    assert dlq.run_json("replay", "--all")["counts"]["selected"] == 0

    committed = replays(read_all(kafka_bootstrap, pipeline_topics.events))
    assert Counter(provenance(m) for m in committed) == Counter(
        origin(m) for m in dead_letters if origin(m) not in want_parked
    )
    parked_records = read_all(kafka_bootstrap, dlq.parked_topic)
    assert {origin(m) for m in parked_records} == want_parked
    assert len(parked_records) == len(want_parked)
    assert {header(m, HEADER_PARKED_REASON) for m in parked_records} == {"operator"}
    inspected = dlq.run_json("inspect", "--include-handled")
    assert (inspected["matched"], inspected["already_handled"]) == (REJECTED, REJECTED)


def test_a_dry_run_changes_no_topic_and_no_group_only_the_audit_topic(
    kafka_bootstrap: str, pipeline_topics: Any, dead_letters: list[Any], dlq: DlqTool
) -> None:
    # A real run first, so there is a replay group with offsets and metadata, and a parked topic.
    some = sorted({m.key().decode() for m in dead_letters})[:3]
    first = dlq.run_json("replay", *(a for key in some for a in ("--key", key)))
    assert first["counts"]["replayed"] == sum(m.key().decode() in some for m in dead_letters)
    # The first run's commit markers land after it returned; count from when they have.
    topics_before = settled_end_offsets(kafka_bootstrap)
    groups_before = committed_offsets(kafka_bootstrap)
    assert groups_before[f"{pipeline_topics.dead_letters}-replay"]  # it committed

    plan = dlq.run_json("replay", "--all", "--dry-run")
    park_plan = dlq.run_json("park", "--error-class", "SinkRejectedError", "--dry-run")
    inspected = dlq.run_json("inspect", "--show", "2")

    pending = REJECTED - first["counts"]["replayed"]
    assert plan["dry_run"] is True
    assert plan["counts"]["replayed"] == pending
    assert plan["reasons"] == [
        {"stage": "sink", "error_class": "SinkRejectedError", "count": pending}
    ]
    assert plan["counts"]["superseded"] == 0  # no state for customers never applied
    assert park_plan["counts"]["parked"] == pending
    assert inspected["matched"] == pending
    assert inspected["by_error_class"] == {"SinkRejectedError": pending}
    assert inspected["by_stage"] == {"sink": pending}
    assert inspected["by_replay_count"] == {"0": pending}
    left = [m for m in dead_letters if m.key().decode() not in some]
    assert inspected["by_original_partition"] == dict(
        sorted(Counter(f"{origin(m)[0]}[{origin(m)[1]}]" for m in left).items())
    )
    assert sum(inspected["by_hour"].values()) == pending
    assert all(hour.endswith(":00Z") for hour in inspected["by_hour"])
    assert len(inspected["records"]) == 2

    topics_after = settled_end_offsets(kafka_bootstrap)
    audit = (dlq.audit_topic, 0)
    assert topics_after[audit] == topics_before[audit] + 4  # two runs: started and finished

    # Kafka's internal topics are the coordinators' logs of every group and transactional id
    # on the broker, written for reasons of their own (a member of an earlier test's group
    # expiring moved __consumer_offsets by one record in a CI run); what a run could change
    # there, committed offsets, is compared whole below.
    def ours(offsets: dict[tuple[str, int], int]) -> dict[tuple[str, int], int]:
        return {k: v for k, v in offsets.items() if k != audit and not k[0].startswith("__")}

    assert ours(topics_after) == ours(topics_before)
    assert committed_offsets(kafka_bootstrap) == groups_before


def test_a_replay_killed_half_way_and_run_again_publishes_each_record_exactly_once(
    kafka_bootstrap: str, pipeline_topics: Any, dead_letters: list[Any], dlq: DlqTool
) -> None:
    events = pipeline_topics.events

    def replayed(isolation_level: str) -> list[Any]:
        return replays(read_all(kafka_bootstrap, events, isolation_level=isolation_level))

    process = dlq.start("replay", "--all", "--rate", "40")
    try:
        eventually_sync(lambda: len(replayed("read_committed")) >= 60, timeout=60)

        # Kill it while a transaction holds records: freeze it, look, and kill it frozen (what
        # is seen while it is stopped is what it leaves behind), or let it go on and look again.
        def frozen_with_an_open_transaction() -> bool:
            process.send_signal(signal.SIGSTOP)
            if len(replayed("read_uncommitted")) > len(replayed("read_committed")):
                return True
            process.send_signal(signal.SIGCONT)
            return False

        eventually_sync(frozen_with_an_open_transaction, timeout=60)
        process.kill()
    finally:
        process.kill()
        process.wait()
    committed_before_restart = len(replayed("read_committed"))
    assert 0 < committed_before_restart < REJECTED, "the kill did not land half-way"

    result = dlq.run_json("replay", "--all")
    assert result["outcome"] == "ok"
    assert result["counts"]["replayed"] == REJECTED - committed_before_restart

    committed = replayed("read_committed")
    per_record = Counter(provenance(m) for m in committed)
    assert per_record == Counter(origin(m) for m in dead_letters)  # each once, all of them
    # The killed run's open transaction did write records; none of them counts.
    assert len(replayed("read_uncommitted")) > len(committed)
    by_origin = {origin(m): m for m in dead_letters}
    for message in committed:
        original = by_origin[provenance(message)]
        assert (message.key(), message.value()) == (original.key(), original.value())
    # The group's offsets are at the end of every dead-letter partition, nothing left to list.
    topic = pipeline_topics.dead_letters
    ends = end_offsets(kafka_bootstrap)
    group = committed_offsets(kafka_bootstrap)[f"{topic}-replay"]
    assert {tp: (o, m or "") for tp, (o, m) in group.items()} == {
        (topic, p): (ends[(topic, p)], "") for p in range(3)
    }
    audit = dlq.audit_records()
    # The killed run left "started" without "finished"; the second run both.
    assert [a["event"] for a in audit] == ["started", "started", "finished"]


def test_ctrl_c_commits_what_was_done_and_the_next_run_goes_on(
    kafka_bootstrap: str, pipeline_topics: Any, dead_letters: list[Any], dlq: DlqTool
) -> None:
    process = dlq.start("replay", "--all", "--rate", "40")
    eventually_sync(
        lambda: len(replays(read_all(kafka_bootstrap, pipeline_topics.events))) >= 20, timeout=60
    )
    process.send_signal(signal.SIGINT)
    assert process.wait(60) == 130
    done = len(replays(read_all(kafka_bootstrap, pipeline_topics.events)))
    [_started, finished] = dlq.audit_records()
    assert finished["outcome"] == "interrupted"
    assert finished["stopped"] == "signal"
    assert finished["counts"]["replayed"] == done < REJECTED  # all it counted, it committed

    again = dlq.run_json("replay", "--all")
    assert again["counts"]["replayed"] == REJECTED - done
    committed = replays(read_all(kafka_bootstrap, pipeline_topics.events))
    assert Counter(provenance(m) for m in committed) == Counter(origin(m) for m in dead_letters)


def test_a_second_run_of_the_same_group_fences_the_first(
    kafka_bootstrap: str, pipeline_topics: Any, dead_letters: list[Any], dlq: DlqTool
) -> None:
    first = dlq.start("replay", "--all", "--rate", "20")
    eventually_sync(
        lambda: len(replays(read_all(kafka_bootstrap, pipeline_topics.events))) >= 10, timeout=60
    )
    second = dlq.run_json("replay", "--all")
    assert first.wait(60) == 3  # fenced
    assert second["outcome"] == "ok"
    committed = replays(read_all(kafka_bootstrap, pipeline_topics.events))
    assert Counter(provenance(m) for m in committed) == Counter(origin(m) for m in dead_letters)


def test_usage_errors_exit_2_and_change_nothing(
    kafka_bootstrap: str, pipeline_topics: Any, dlq: DlqTool, run_dir: Path
) -> None:
    assert dlq.run("replay").returncode == 2  # no filter and no --all
    assert dlq.run("replay", "--all", "--key", "C-1").returncode == 2
    assert dlq.run("replay", "--since", "yesterday", "--dry-run").returncode == 2
    assert dlq.run("park", "--partition", "3:9-1").returncode == 2
    missing = DlqTool(
        bootstrap=kafka_bootstrap,
        dead_letter_topic=f"{pipeline_topics.dead_letters}-missing",
        group_id="g",
        run_dir=run_dir,
    )
    result = missing.run("inspect")
    assert result.returncode == 2
    assert "does not exist" in result.stderr
    bad_setting = subprocess.run(
        missing.command("inspect"),
        env={**os.environ, **missing.env, "SEGSTREAM_DLQ_MAX_REPLAYS": "-1"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad_setting.returncode == 2
    assert "max_replays" in bad_setting.stderr


def test_consumer_create_topics_creates_the_tools_topics_too(
    kafka_bootstrap: str, group_id: str
) -> None:
    topic = f"interactions-{uuid.uuid4().hex[:10]}"
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "SEGSTREAM_CONSUMER_TOPIC": topic,
        "SEGSTREAM_CONSUMER_DEAD_LETTER_TOPIC": f"{topic}.dlq",
        "SEGSTREAM_CONSUMER_GROUP_ID": group_id,
        "SEGSTREAM_CONSUMER_TOPIC_PARTITIONS": "4",
        "SEGSTREAM_CONSUMER_TOPIC_REPLICATION_FACTOR": "1",  # the test session's one broker
        "SEGSTREAM_CONSUMER_TOPIC_MIN_INSYNC_REPLICAS": "1",
    }
    for _ in range(2):  # idempotent
        result = run_create_topics({**os.environ, **env})
        assert result.returncode == 0, result.stderr
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    topics = admin.list_topics(timeout=30).topics
    assert len(topics[f"{topic}.dlq.parked"].partitions) == 4
    assert len(topics[f"{topic}.dlq.audit"].partitions) == 1
    for name in (f"{topic}.dlq.parked", f"{topic}.dlq.audit"):
        resource = ConfigResource(ConfigResource.Type.TOPIC, name)
        config = admin.describe_configs([resource])[resource].result(30)
        assert config["retention.ms"].value == "-1"


def test_on_one_broker_the_defaults_work_once_its_topics_exist_and_the_error_names_its_settings(
    kafka_bootstrap: str, pipeline_topics: Any, dlq: DlqTool
) -> None:
    """`make run` creates the parked and audit topics; the README's runbook then runs the tool
    with its production defaults (replication 3) against the sandbox's one broker."""
    production = {
        "SEGSTREAM_DLQ_TOPIC_REPLICATION_FACTOR": "3",
        "SEGSTREAM_DLQ_TOPIC_MIN_INSYNC_REPLICAS": "2",
    }
    sandbox = dict(dlq.env)
    dlq.env |= production
    refused = dlq.run("replay", "--all", "--dry-run", "--json")
    assert refused.returncode == 2, refused.stderr  # a setting to change, nothing changed
    assert "SEGSTREAM_DLQ_TOPIC_REPLICATION_FACTOR=1" in refused.stderr
    assert "SEGSTREAM_CONSUMER_" not in refused.stderr
    assert not {dlq.parked_topic, dlq.audit_topic} & set(end_offsets_topics(kafka_bootstrap))

    dlq.env = sandbox
    assert dlq.run_json("replay", "--all", "--dry-run")["counts"]["selected"] == 0  # creates them
    dlq.env |= production
    assert dlq.run_json("replay", "--all", "--dry-run")["counts"]["selected"] == 0


def end_offsets_topics(bootstrap: str) -> set[str]:
    return {topic for topic, _ in end_offsets(bootstrap)}


def test_dead_letters_that_cannot_be_replayed_are_left_in_place_and_the_run_exits_1(
    kafka_bootstrap: str, pipeline_topics: Any, dlq: DlqTool
) -> None:
    # Two records another tool wrote (no context), one the consumer wrote without its value
    # (too large for the dead-letter topic), five whose context names a topic a replay may not
    # write to, and three ordinary dead letters.
    events_topic, dead_letter_topic = pipeline_topics.events, pipeline_topics.dead_letters
    context = [
        ("segstream.dlq.topic", events_topic.encode()),
        ("segstream.dlq.partition", b"0"),
        ("segstream.dlq.stage", b"validate"),
        ("segstream.dlq.error.class", b"EventValidationError"),
    ]
    ordinary = [
        (f"C-{n}".encode(), SingleObjectCodec().encode(make_event(f"C-{n}", 1).to_avro()), n)
        for n in range(3)
    ]
    for key, value, offset in ordinary:
        produce_raw(
            kafka_bootstrap,
            dead_letter_topic,
            key,
            value,
            [*context, ("segstream.dlq.offset", str(offset).encode())],
        )
    produce_raw(kafka_bootstrap, dead_letter_topic, b"C-x", b"foreign", [])
    produce_raw(kafka_bootstrap, dead_letter_topic, b"C-y", b"foreign too", [("a", b"b")])
    produce_raw(
        kafka_bootstrap,
        dead_letter_topic,
        b"C-large",
        b"",
        [*context, ("segstream.dlq.offset", b"7"), ("segstream.dlq.value.omitted", b"2000000")],
    )

    refused = [
        "no-such-topic-for-replays",  # every run's transaction would abort at its commit
        dead_letter_topic,
        dlq.audit_topic,
        "segstream-crm-customer-state-changelog",  # the consumer group's state (the default)
        "__consumer_offsets",
    ]
    for n, topic in enumerate(refused):
        produce_raw(
            kafka_bootstrap,
            dead_letter_topic,
            f"C-r{n}".encode(),
            SingleObjectCodec().encode(make_event(f"C-r{n}", 1).to_avro()),
            [
                ("segstream.dlq.topic", topic.encode()),
                ("segstream.dlq.partition", b"0"),
                ("segstream.dlq.offset", str(n).encode()),
            ],
        )
    audit_before = len(dlq.audit_records())

    first = dlq.run("replay", "--all")
    again = dlq.run("replay", "--all")

    assert (first.returncode, again.returncode) == (1, 1), first.stderr
    # Nothing went to a refused topic (the audit topic got only the two runs' records).
    assert replays(read_all(kafka_bootstrap, dead_letter_topic)) == []
    assert len(dlq.audit_records()) == audit_before + 4
    assert "left in place" in first.stdout
    replayed = replays(read_all(kafka_bootstrap, events_topic))
    assert sorted(m.key() for m in replayed) == [b"C-0", b"C-1", b"C-2"]  # once each
    assert len(read_all(kafka_bootstrap, dead_letter_topic)) == 11  # nothing taken away
