"""Where a partition resumes, and how its offsets are committed.

The commit steps, at-least-once and never past an unfinished record:

1. **Assign.** The partition's committed offset is read (``committed()``, in the rebalance
   callback) and handed to the record handler, which prepares the partition from it; the client
   resumes fetching there. Nothing of the partition is handled before the preparation is done.
2. **Track.** Every fetched record is tracked in fetch order (:class:`PartitionProgress`); it is
   finished when the handler returns (written, skipped or dead-lettered), in any order.
3. **Store.** Each cycle of the consume loop stores, with ``store_offsets``, every partition's
   commit position: its lowest unfinished offset, or the one after the last finished record when
   none is unfinished (Kafka commits "the next offset to read").
   ``enable.auto.offset.store=false``, so nothing else ever stores an offset.
4. **Commit.** librdkafka commits the stored offsets every ``auto.commit.interval.ms`` (1 s).
   A crash re-reads from the last commit: the records finished since are processed again, and the
   customer state and the sink's ``Idempotency-Key`` make that harmless.
5. **Revoke.** The revoked partitions' writes on the wire get the revoke drain to finish; the
   rest is dropped; then their positions are committed *synchronously*, before the callback
   returns and the partitions go to their next owner, which resumes exactly there.
6. **Lost.** Nothing is committed: another member may own the partitions already, and a commit
   now could move its offsets under it.
7. **Shutdown.** After the shutdown drain, one synchronous commit of every position, then
   ``close()`` leaves the group.
8. **After a freeze.** The first poll after a gap longer than the write lease's validity commits
   the positions synchronously before any write goes out (:func:`confirm_membership`): the
   broker takes a commit only from a member of the group's current generation, so a member that
   was replaced learns it there, not from a clock.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from confluent_kafka import Consumer, KafkaException, TopicPartition

from consumer.processing.progress import PartitionProgress

Partition = tuple[str, int]

_log = logging.getLogger(__name__)


def commit_positions(
    partitions: Iterable[tuple[Partition, PartitionProgress]],
) -> list[TopicPartition]:
    """Step 3's offsets: each partition's commit position, where it has one."""
    positions = []
    for (topic, number), progress in partitions:
        position = progress.commit_position
        if position is not None:
            positions.append(TopicPartition(topic, number, position))
    return positions


def store(consumer: Consumer, offsets: list[TopicPartition]) -> None:
    """Step 3. A partition revoked since the list was built is skipped by the client."""
    if not offsets:
        return
    try:
        consumer.store_offsets(offsets=offsets)
    except KafkaException as exc:
        _log.debug("offset store skipped", extra={"reason": str(exc)})


def commit_now(consumer: Consumer, offsets: list[TopicPartition], occasion: str) -> bool:
    """Steps 5 and 7: store, then commit synchronously; a failure is logged (the next owner, or
    the next start, re-reads from the last commit that did succeed).

    Storing first matters: with auto-commit on, librdkafka commits the *stored* offsets once more
    when the consumer closes, and an older stored offset would move the committed one back
    (records re-read by the next owner)."""
    if not offsets:
        return True
    try:
        consumer.store_offsets(offsets=offsets)
        consumer.commit(offsets=offsets, asynchronous=False)
    except KafkaException as exc:
        _log.warning(f"commit on {occasion} failed", extra={"reason": str(exc)})
        return False
    return True


def confirm_membership(consumer: Consumer, offsets: list[TopicPartition]) -> bool | None:
    """Step 8: True when the group took a synchronous commit of ``offsets`` (this member is
    still in its current generation), False when it refused it (``UNKNOWN_MEMBER_ID``,
    ``ILLEGAL_GENERATION``, ``REBALANCE_IN_PROGRESS``, ...: the loss or the rebalance is
    reported next), None when there is nothing to commit (no position known: cannot tell)."""
    if not offsets:
        return None
    return commit_now(consumer, offsets, "confirmation after a pause (writes held)")
