"""The consumer's exceptions: one root, and the sink errors sorted by whom they are about.

Who an error is about decides what happens to the record:

* :class:`SinkRejectedError` - about *this message* (the CRM answered 400/422 to this payload):
  dead-letter it at once and keep the partition flowing.
* :class:`SinkUnavailableError` - about the sink *being unwell* (timeout, connection reset, 5xx,
  429): retry with backoff, blocking only this customer's key.
* :class:`SinkUnusableError` - about the sink *being unusable* (401/403, DNS failure): no message
  can succeed, so pause everything and probe; never dead-letter a healthy message for it.
"""


class ConsumerError(Exception):
    """Root of every error raised by :mod:`consumer`."""


class ConfigurationError(ConsumerError):
    """Settings that cannot work (no CRM token, unreadable secret file, ...)."""


class SinkError(ConsumerError):
    """A write to the sink did not succeed."""


class SinkRejectedError(SinkError):
    """The sink refused this payload; retrying the same bytes cannot help."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class SinkUnavailableError(SinkError):
    """A transient failure; ``retry_after`` is the sink's own hint in seconds, when it gave one."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class SinkUnusableError(SinkError):
    """The sink cannot take any write until someone fixes it (credentials, address)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class EventTimeError(ConsumerError):
    """An event dated further in the future of its record than the contract allows
    (:data:`schemas.model.MAX_CLOCK_SKEW_S`): it would win every newest-wins comparison."""


class DeadLetterError(ConsumerError):
    """The dead-letter topic did not acknowledge a record; the consumer must stop, not skip it."""


class DeadLetterTooLargeError(DeadLetterError):
    """The dead letter is larger than the producer or the dead-letter topic takes
    (``message.max.bytes``, the topic's ``max.message.bytes``): it can be sent again smaller."""


class StateError(ConsumerError):
    """The customer state cannot be kept: its changelog topic is unusable or did not acknowledge.
    The consumer stops rather than commit an offset whose state change is not durable."""


class FatalClientError(ConsumerError):
    """The Kafka client reported a fatal error: it cannot consume any more (librdkafka's
    ``ERR__FATAL``). The process stops; a restart gets a new client."""


class FencedInstanceError(FatalClientError):
    """Another instance joined the group with this one's ``group.instance.id`` (KIP-345 static
    membership): the broker fenced this one off, and it owns nothing from now on."""


FATAL_ERRORS: tuple[type[ConsumerError], ...] = (
    ConfigurationError,
    DeadLetterError,
    StateError,
    FatalClientError,
)
"""What stops a consumer (README, "Fatal conditions"). Any other exception while handling one
record is that record's problem: it is dead-lettered."""
