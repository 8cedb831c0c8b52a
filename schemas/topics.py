"""Topic and record-header names: the part of the contract that lives outside the payload."""

from typing import Final

INTERACTIONS_TOPIC: Final = "interactions.completed.v1"
DEAD_LETTER_TOPIC: Final = f"{INTERACTIONS_TOPIC}.dlq"
# Dead letters an operator decided must never be replayed, or that were replayed too often
# (``segstream-dlq park`` and the replay loop guard put them here).
PARKED_TOPIC: Final = f"{DEAD_LETTER_TOPIC}.parked"
# One record per ``segstream-dlq`` run (dry runs included): who, when, filters, counts.
DLQ_AUDIT_TOPIC: Final = f"{DEAD_LETTER_TOPIC}.audit"

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

# Set by the dead-letter replay tool on every record it re-publishes; its value counts replays.
# A replayed record bypasses dedupe (it was finished only in the sense of "dead-lettered").
HEADER_REPLAY_COUNT: Final = "segstream.replay.count"
