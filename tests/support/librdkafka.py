"""librdkafka's own test hook, reached through ctypes: a real fatal error in a real producer.

confluent-kafka does not expose ``rd_kafka_test_fatal_error()`` ("Trigger a fatal error for
testing purposes", rdkafka.h): it raises a fatal error inside the client exactly as a broker's
answer would (the error callback, failed produce calls, the instance unusable for ever). The
``rd_kafka_t`` handle is the first field after ``PyObject_HEAD`` of confluent-kafka's ``Handle``
struct (confluent_kafka.h); ``rd_kafka_name()`` is asked first, so a layout that ever changed
would fail the test loudly instead of poking at the wrong memory.
"""

from __future__ import annotations

import ctypes
import functools
from pathlib import Path

import confluent_kafka
from confluent_kafka import Producer

# rdkafka.h: RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER, the broker's answer that makes an
# idempotent producer's state unrecoverable.
OUT_OF_ORDER_SEQUENCE_NUMBER = 45
_PY_OBJECT_HEAD_BYTES = 2 * ctypes.sizeof(ctypes.c_void_p)


@functools.cache
def _librdkafka() -> ctypes.CDLL:
    libs = Path(confluent_kafka.__file__).parent.parent / "confluent_kafka.libs"
    [path] = libs.glob("librdkafka*")  # the very library the extension module loaded
    lib = ctypes.CDLL(str(path))
    lib.rd_kafka_name.restype = ctypes.c_char_p
    lib.rd_kafka_name.argtypes = [ctypes.c_void_p]
    lib.rd_kafka_test_fatal_error.restype = ctypes.c_int
    lib.rd_kafka_test_fatal_error.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p]
    return lib


def inject_fatal_error(producer: Producer, client_id: str) -> None:
    """Make ``producer`` (whose ``client.id`` is ``client_id``) hit a fatal error now."""
    lib = _librdkafka()
    handle = ctypes.c_void_p.from_address(id(producer) + _PY_OBJECT_HEAD_BYTES).value
    name = lib.rd_kafka_name(handle).decode()
    assert name.startswith(f"{client_id}#producer-"), f"not a librdkafka handle: {name!r}"
    error = lib.rd_kafka_test_fatal_error(
        handle, OUT_OF_ORDER_SEQUENCE_NUMBER, b"injected by the test suite"
    )
    assert error == 0, f"rd_kafka_test_fatal_error returned {error}"
