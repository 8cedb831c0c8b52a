"""Topic and record-header names: the part of the contract that lives outside the payload."""

from typing import Final

INTERACTIONS_TOPIC: Final = "interactions.completed.v1"
DEAD_LETTER_TOPIC: Final = f"{INTERACTIONS_TOPIC}.dlq"
# The dead-letter tool's topics are named after the dead-letter topic they serve, so one setting
# (the dead-letter topic) moves all three.
PARKED_SUFFIX: Final = ".parked"
AUDIT_SUFFIX: Final = ".audit"
# Dead letters an operator decided must never be replayed, or that were replayed too often
# (``segstream-dlq park`` and the replay loop guard put them here).
PARKED_TOPIC: Final = f"{DEAD_LETTER_TOPIC}{PARKED_SUFFIX}"
# ``segstream-dlq replay`` and ``park`` runs (dry runs included): who, when, filters, counts.
DLQ_AUDIT_TOPIC: Final = f"{DEAD_LETTER_TOPIC}{AUDIT_SUFFIX}"

HEADER_EVENT_ID: Final = "event-id"
HEADER_CONTENT_TYPE: Final = "content-type"
HEADER_SOURCE: Final = "source"
HEADER_TRACEPARENT: Final = "traceparent"

# Values of the ``source`` header: which input shape the bridge mapped the event from.
SOURCE_ARCHITECT: Final = "architect-webhook"
SOURCE_PLATFORM_EVENT: Final = "platform-event-bridge"

# The content types a record value can carry; the consumer picks its decoder from the bytes
# themselves, the header is there for people and for tools that do not speak Avro.
CONTENT_TYPE_AVRO_SINGLE_OBJECT: Final = "application/vnd.segstream.interaction-completed.v1+avro"
CONTENT_TYPE_AVRO_CONFLUENT: Final = "application/vnd.confluent.avro"

# Dead-letter context headers, all under one prefix (modelled on Kafka Connect's
# ``__connect.errors.*``) so a single filter finds them and none collides with a sender's header.
DLQ_HEADER_PREFIX: Final = "segstream.dlq."
# Where the failed record was (the record the dead letter copies) ...
HEADER_DLQ_TOPIC: Final = f"{DLQ_HEADER_PREFIX}topic"
HEADER_DLQ_PARTITION: Final = f"{DLQ_HEADER_PREFIX}partition"
HEADER_DLQ_OFFSET: Final = f"{DLQ_HEADER_PREFIX}offset"
HEADER_DLQ_TIMESTAMP: Final = f"{DLQ_HEADER_PREFIX}timestamp"
# ... and what went wrong with it: decode | validate | sink, the exception's class and text,
# attempts, first and last failure (ISO-8601 UTC), and the consumer group that gave up.
HEADER_DLQ_STAGE: Final = f"{DLQ_HEADER_PREFIX}stage"
HEADER_DLQ_ERROR_CLASS: Final = f"{DLQ_HEADER_PREFIX}error.class"
HEADER_DLQ_ERROR_MESSAGE: Final = f"{DLQ_HEADER_PREFIX}error.message"
HEADER_DLQ_ATTEMPTS: Final = f"{DLQ_HEADER_PREFIX}attempts"
HEADER_DLQ_FIRST_FAILURE: Final = f"{DLQ_HEADER_PREFIX}first.failure"
HEADER_DLQ_LAST_FAILURE: Final = f"{DLQ_HEADER_PREFIX}last.failure"
HEADER_DLQ_GROUP: Final = f"{DLQ_HEADER_PREFIX}group"
# Present when the record with its headers was larger than the dead-letter topic takes: the dead
# letter then holds the key and the context only, and this header the size (bytes) of the value
# left out. The record itself is still at topic/partition/offset above (until its retention).
HEADER_DLQ_VALUE_OMITTED: Final = f"{DLQ_HEADER_PREFIX}value.omitted"

# Provenance of a record the dead-letter tool re-published, all under one prefix. A record
# replayed again gets all of them replaced (they describe this replay) and the count raised.
REPLAY_HEADER_PREFIX: Final = "segstream.replay."
# How many times the record has been replayed (1 on the first replay). A replayed record
# bypasses dedupe (it was finished only in the sense of "dead-lettered").
HEADER_REPLAY_COUNT: Final = f"{REPLAY_HEADER_PREFIX}count"
# The record this one is a replay of: the one that failed (its dead letter's ``.topic``,
# ``.partition``, ``.offset``).
HEADER_REPLAY_TOPIC: Final = f"{REPLAY_HEADER_PREFIX}topic"
HEADER_REPLAY_PARTITION: Final = f"{REPLAY_HEADER_PREFIX}partition"
HEADER_REPLAY_OFFSET: Final = f"{REPLAY_HEADER_PREFIX}offset"
# Which ``segstream-dlq`` run re-published it (the audit record's ``run_id``), and when.
HEADER_REPLAY_RUN: Final = f"{REPLAY_HEADER_PREFIX}run"
HEADER_REPLAY_TIME: Final = f"{REPLAY_HEADER_PREFIX}time"

# Added to a dead letter moved to the parked topic (the dead letter's own headers stay): why
# (``operator`` or ``max-replays``), by which run, when, and where it sat in the dead-letter topic.
PARKED_HEADER_PREFIX: Final = "segstream.parked."
HEADER_PARKED_REASON: Final = f"{PARKED_HEADER_PREFIX}reason"
HEADER_PARKED_RUN: Final = f"{PARKED_HEADER_PREFIX}run"
HEADER_PARKED_TIME: Final = f"{PARKED_HEADER_PREFIX}time"
HEADER_PARKED_PARTITION: Final = f"{PARKED_HEADER_PREFIX}partition"
HEADER_PARKED_OFFSET: Final = f"{PARKED_HEADER_PREFIX}offset"
