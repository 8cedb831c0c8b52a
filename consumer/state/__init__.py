"""Customer state that converges: per attribute, the value of the newest event that carried it.

* :mod:`~consumer.state.attributes` - the CRM attributes and which event field carries each;
* :mod:`~consumer.state.versions` - "newest": completion time, then event id;
* :mod:`~consumer.state.fold` - which of an event's attributes move the customer forward;
* :mod:`~consumer.state.store` - one partition's versions in memory, retention and horizon;
* :mod:`~consumer.state.changelog` - the compacted changelog topic that makes them durable;
* :mod:`~consumer.state.partitions` - all of it for the partitions this instance owns.
"""

from consumer.state.attributes import ATTRIBUTE_NAMES, ATTRIBUTES, carried
from consumer.state.changelog import (
    Changelog,
    KafkaChangelog,
    changelog_topic_name,
    ensure_changelog_topic,
    read_changelog,
)
from consumer.state.fold import Decision, decide
from consumer.state.partitions import CustomerStates, restore_store
from consumer.state.store import PartitionStore
from consumer.state.versions import CustomerVersions, Version

__all__ = [
    "ATTRIBUTES",
    "ATTRIBUTE_NAMES",
    "Changelog",
    "CustomerStates",
    "CustomerVersions",
    "Decision",
    "KafkaChangelog",
    "PartitionStore",
    "Version",
    "carried",
    "changelog_topic_name",
    "decide",
    "ensure_changelog_topic",
    "read_changelog",
    "restore_store",
]
