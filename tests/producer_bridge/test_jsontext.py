"""What counts as JSON at the door: RFC 8259 in UTF-8, Unicode text only, every failure a 400."""

from __future__ import annotations

import json

import pytest

from producer_bridge.errors import MalformedJsonError
from producer_bridge.jsontext import parse_array, parse_document


def test_a_json_object_is_read_as_is() -> None:
    assert parse_document(b' {"a": [1, "\\u00e9"]}\n') == {"a": [1, "é"]}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"a": 1', "not JSON"),
        (b'{"a": 1} {"b": 2}', "extra data"),
        (b'{"a": NaN}', "NaN is not a JSON value"),
        (b'{"a": -Infinity}', "-Infinity is not a JSON value"),
        ('{"a": 1}'.encode("utf-16"), "not UTF-8"),
        (b'{"a": "\\ud800"}', "lone surrogate"),
        (b'{"\\udfff": 1}', "lone surrogate"),
        (b"[" * 50_000 + b"]" * 50_000, "nested too deeply"),
        (b'{"a": ' + b"9" * 5000 + b"}", "not acceptable JSON"),
        (b"", "not JSON"),
    ],
    ids=[
        "truncated",
        "two-documents",
        "nan",
        "infinity",
        "utf-16",
        "lone-surrogate-value",
        "lone-surrogate-key",
        "deep-nesting",
        "huge-integer",
        "empty",
    ],
)
def test_what_python_would_accept_or_crash_on_is_a_malformed_json_error(
    body: bytes, reason: str
) -> None:
    with pytest.raises(MalformedJsonError, match=reason):
        parse_document(body)


def test_array_items_carry_their_own_byte_size_without_separators() -> None:
    first, second = {"a": "é"}, [1, 2]
    body = "[ " + json.dumps(first, ensure_ascii=False) + " ,\n\t" + json.dumps(second) + " ]"
    items = parse_array(body.encode())
    assert items is not None
    assert [item.value for item in items] == [first, second]
    assert [item.size_bytes for item in items] == [
        len(json.dumps(first, ensure_ascii=False).encode()),
        len(json.dumps(second).encode()),
    ]


def test_an_empty_array_has_no_items_and_a_non_array_is_none() -> None:
    assert parse_array(b" [ ] ") == []
    assert parse_array(b'{"a": 1}') is None


@pytest.mark.parametrize(
    "body", [b"[1, 2", b"[1 2]", b"[1,]", b"[1] x", b'{"a": 1', b'[{"a": "\\ud800"}]']
)
def test_a_broken_array_is_a_malformed_json_error(body: bytes) -> None:
    with pytest.raises(MalformedJsonError):
        parse_array(body)


@pytest.mark.parametrize(
    "body",
    [
        b'{"customerId": "C-1", "customerId": "C-2"}',
        b'{"attributes": {"seq": "1", "seq": "2"}}',
        b'{"a": [{"x": 1, "x": 1}]}',
        b'{"a": 1, "\\u0061": 2}',
    ],
    ids=["top-level", "nested", "in-an-array", "escaped-spelling"],
)
def test_an_object_with_a_name_twice_is_refused(body: bytes) -> None:
    # I-JSON (RFC 7493 §2.3): the sender may have meant the first value, Python keeps the last.
    with pytest.raises(MalformedJsonError, match="twice"):
        parse_document(body)
    with pytest.raises(MalformedJsonError, match="twice"):
        parse_array(b"[" + body + b"]")


def test_the_same_name_in_sibling_objects_is_fine() -> None:
    assert parse_document(b'[{"a": 1}, {"a": 2}]') == [{"a": 1}, {"a": 2}]
