"""Avro encoding of :class:`InteractionCompleted`, in the two framings a record value can have.

* Without a schema registry: Avro single-object encoding, ``C3 01`` + the writer schema's 8-byte
  CRC-64-AVRO fingerprint (little-endian) + the Avro binary body. The reader finds the writer
  schema by fingerprint among the schemas this package ships, so every version we ever wrote
  stays readable.
* With a registry: the Confluent wire format, ``00`` + 4-byte schema id + body, written and read
  through :mod:`confluent_kafka.schema_registry`.

A decoder reads both framings whatever it is configured for, so a topic can move from one to the
other without a flag day.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import resources
from typing import Any, Final

import fastavro
import fastavro.schema
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from pydantic import ValidationError

from schemas.errors import EventDecodeError, EventEncodeError, EventValidationError
from schemas.model import InteractionCompleted
from schemas.topics import CONTENT_TYPE_AVRO_CONFLUENT, CONTENT_TYPE_AVRO_SINGLE_OBJECT

SINGLE_OBJECT_MAGIC: Final = b"\xc3\x01"
CONFLUENT_MAGIC: Final = b"\x00"
_FINGERPRINT_LENGTH: Final = 8
_SCHEMA_FILE: Final = "interaction_completed.v1.avsc"

AvroSchema = dict[str, Any]


@cache
def load_schema_text(name: str = _SCHEMA_FILE) -> str:
    """The text of one of the ``.avsc`` files shipped in this package."""
    return resources.files("schemas").joinpath(name).read_text(encoding="utf-8")


def interaction_completed_schema() -> AvroSchema:
    """The current (writer and reader) schema of ``InteractionCompleted``."""
    schema: AvroSchema = json.loads(load_schema_text())
    return schema


def fingerprint(schema: AvroSchema) -> bytes:
    """CRC-64-AVRO of the schema's Parsing Canonical Form, in single-object byte order."""
    canonical = fastavro.schema.to_parsing_canonical_form(schema)
    return bytes.fromhex(fastavro.schema.fingerprint(canonical, "CRC-64-AVRO"))


class SingleObjectCodec:
    """Avro single-object encoding, no registry needed.

    ``writer_schemas`` are every schema a record on the topic may have been written with; the
    current one is always among them. ``reader_schema`` is the shape the caller wants back (schema
    resolution fills defaults for fields the writer did not have).
    """

    def __init__(
        self,
        writer_schema: AvroSchema | None = None,
        reader_schema: AvroSchema | None = None,
        known_writer_schemas: Iterable[AvroSchema] = (),
    ) -> None:
        current = writer_schema or interaction_completed_schema()
        self._writer = fastavro.parse_schema(current)
        self._header = SINGLE_OBJECT_MAGIC + fingerprint(current)
        self._reader = fastavro.parse_schema(reader_schema or interaction_completed_schema())
        self._writers_by_fingerprint: dict[bytes, Any] = {}
        for schema in (current, interaction_completed_schema(), *known_writer_schemas):
            self._writers_by_fingerprint[fingerprint(schema)] = fastavro.parse_schema(schema)

    def encode(self, record: Mapping[str, Any]) -> bytes:
        buffer = io.BytesIO()
        buffer.write(self._header)
        try:
            fastavro.schemaless_writer(buffer, self._writer, dict(record))
        except (ValueError, TypeError, AttributeError) as exc:
            raise EventEncodeError(f"record does not fit the writer schema: {exc}") from exc
        return buffer.getvalue()

    def decode(self, data: bytes) -> dict[str, Any]:
        header_length = len(SINGLE_OBJECT_MAGIC) + _FINGERPRINT_LENGTH
        if len(data) < header_length or not data.startswith(SINGLE_OBJECT_MAGIC):
            raise EventDecodeError("not Avro single-object encoded (no C3 01 marker)")
        writer = self._writers_by_fingerprint.get(data[len(SINGLE_OBJECT_MAGIC) : header_length])
        if writer is None:
            raise EventDecodeError(
                f"unknown writer schema fingerprint {data[2:header_length].hex()}"
            )
        body = io.BytesIO(data[header_length:])
        # fastavro raises many kinds of exception on corrupt input; all of them mean "bad bytes".
        try:
            record = fastavro.schemaless_reader(body, writer, self._reader)
        except Exception as exc:
            raise EventDecodeError(f"corrupt Avro body: {type(exc).__name__}: {exc}") from exc
        if not isinstance(record, dict):
            raise EventDecodeError("Avro body is not a record")
        if body.tell() != len(data) - header_length:
            raise EventDecodeError("trailing bytes after the Avro body")
        return record


class ConfluentCodec:
    """The Confluent wire format through ``confluent_kafka.schema_registry``."""

    def __init__(
        self,
        registry_conf: Mapping[str, Any],
        topic: str,
        *,
        auto_register: bool = True,
        reader_schema: AvroSchema | None = None,
    ) -> None:
        client = SchemaRegistryClient.new_client(dict(registry_conf))
        self._context = SerializationContext(topic, MessageField.VALUE)
        self._serializer = AvroSerializer(
            client,
            load_schema_text(),
            conf={"auto.register.schemas": auto_register},
        )
        reader = json.dumps(reader_schema) if reader_schema is not None else load_schema_text()
        self._deserializer = AvroDeserializer(client, reader)

    def encode(self, record: Mapping[str, Any]) -> bytes:
        try:
            data: bytes = self._serializer(dict(record), self._context)
        except Exception as exc:  # registry down, incompatible schema, value not fitting the schema
            raise EventEncodeError(f"Confluent Avro serialization failed: {exc}") from exc
        return data

    def decode(self, data: bytes) -> dict[str, Any]:
        if not data.startswith(CONFLUENT_MAGIC):
            raise EventDecodeError("not in the Confluent wire format (no 00 magic byte)")
        try:
            record: dict[str, Any] = self._deserializer(data, self._context)
        except Exception as exc:  # unknown schema id, corrupt body, registry unreachable
            raise EventDecodeError(f"Confluent Avro deserialization failed: {exc}") from exc
        return record


class EventCodec:
    """What producers and consumers use: encode with one framing, decode either.

    Without ``registry_conf`` a Confluent-framed record cannot be read (there is nowhere to look up
    its schema id) and decoding it raises :class:`EventDecodeError` saying so.
    """

    def __init__(
        self,
        topic: str,
        registry_conf: Mapping[str, Any] | None = None,
        *,
        reader_schema: AvroSchema | None = None,
        known_writer_schemas: Iterable[AvroSchema] = (),
    ) -> None:
        self._single = SingleObjectCodec(
            reader_schema=reader_schema, known_writer_schemas=known_writer_schemas
        )
        self._confluent = (
            ConfluentCodec(registry_conf, topic, reader_schema=reader_schema)
            if registry_conf
            else None
        )

    @property
    def content_type(self) -> str:
        if self._confluent is not None:
            return CONTENT_TYPE_AVRO_CONFLUENT
        return CONTENT_TYPE_AVRO_SINGLE_OBJECT

    def encode(self, event: InteractionCompleted) -> bytes:
        record = event.to_avro()
        if self._confluent is not None:
            return self._confluent.encode(record)
        return self._single.encode(record)

    def decode_record(self, data: bytes) -> dict[str, Any]:
        """The Avro record as a dict, resolved to the reader schema; no value checks."""
        if data.startswith(SINGLE_OBJECT_MAGIC):
            return self._single.decode(data)
        if data.startswith(CONFLUENT_MAGIC):
            if self._confluent is None:
                raise EventDecodeError(
                    "record is in the Confluent wire format but no schema registry is configured"
                )
            return self._confluent.decode(data)
        raise EventDecodeError(
            f"unknown framing: first byte 0x{data[:1].hex() or 'none'} is neither C3 nor 00"
        )

    def decode(self, data: bytes) -> InteractionCompleted:
        record = self.decode_record(data)
        try:
            return InteractionCompleted.model_validate(record)
        except ValidationError as exc:
            raise EventValidationError(str(exc)) from exc
