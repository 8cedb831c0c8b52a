"""The contract package's exceptions: one root, so callers can catch everything it raises."""


class SchemaError(Exception):
    """Root of every error raised by :mod:`schemas`."""


class EventDecodeError(SchemaError):
    """Bytes this package cannot read as an event: unknown framing, unknown schema, corrupt body."""


class EventEncodeError(SchemaError):
    """An event that cannot be written with the configured schema or registry."""


class EventValidationError(SchemaError):
    """Bytes that decode as Avro but whose values break the event's rules (range, length, blank)."""
