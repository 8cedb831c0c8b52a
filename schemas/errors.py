"""The contract package's exceptions: one root, so callers can catch everything it raises."""


class SchemaError(Exception):
    """Root of every error raised by :mod:`schemas`."""


class EventDecodeError(SchemaError):
    """Bytes this package cannot read as an event: unknown framing, unknown schema, corrupt body."""


class WriterSchemaUnavailableError(SchemaError):
    """Bytes written with a schema this reader cannot get: a fingerprint it does not ship (a newer
    producer), a registry schema id it cannot fetch (the registry does not answer, or is not the
    one the producer used). The bytes may be good: wait for a reader that knows the schema, never
    dead-letter for this."""


class EventEncodeError(SchemaError):
    """An event that cannot be written with the configured schema or registry."""


class EventValidationError(SchemaError):
    """Bytes that decode as Avro but whose values break the event's rules (range, length, blank)."""
