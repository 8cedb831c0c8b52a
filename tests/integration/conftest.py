"""A CRM simulator, a topic pair and a consumer group per test, all real processes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from support.consumers import ConsumerGroup
from support.crm import CrmSimulator
from support.dlq import DlqTool
from support.kafka import TopicFactory


@dataclass(frozen=True)
class Topics:
    events: str
    dead_letters: str


@pytest.fixture
def crm_settings() -> dict[str, Any]:
    """``SEGSTREAM_CRM_SIM_*`` settings for the simulator; a test module overrides this."""
    return {}


@pytest.fixture
def crm(run_dir: Path, crm_settings: dict[str, Any]) -> Iterator[CrmSimulator]:
    simulator = CrmSimulator(run_dir, **crm_settings)
    yield simulator
    assert simulator.stop() == 0


@pytest.fixture
def pipeline_topics(topics: TopicFactory) -> Topics:
    return Topics(topics.create("interactions", partitions=12), topics.create("dlq", partitions=3))


@pytest.fixture
def group(
    kafka_bootstrap: str,
    pipeline_topics: Topics,
    group_id: str,
    crm: CrmSimulator,
    run_dir: Path,
) -> Iterator[ConsumerGroup]:
    consumers = ConsumerGroup(
        bootstrap=kafka_bootstrap,
        topic=pipeline_topics.events,
        dlq=pipeline_topics.dead_letters,
        group_id=group_id,
        crm=crm,
        run_dir=run_dir,
    )
    yield consumers
    codes = consumers.stop_all()
    assert codes == dict.fromkeys(codes, 0), f"a consumer did not stop cleanly: {codes}"


@pytest.fixture
def dlq(kafka_bootstrap: str, pipeline_topics: Topics, group_id: str, run_dir: Path) -> DlqTool:
    """``segstream-dlq`` on the test's dead-letter topic, with a replay group of its own; a dry
    run reads the customer state of the test's consumer group."""
    return DlqTool(
        bootstrap=kafka_bootstrap,
        dead_letter_topic=pipeline_topics.dead_letters,
        group_id=f"{pipeline_topics.dead_letters}-replay",
        run_dir=run_dir,
        consumer_group_id=group_id,
    )
