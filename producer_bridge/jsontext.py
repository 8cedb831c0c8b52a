"""Strict JSON reading: UTF-8 only, no NaN/Infinity, Unicode text only, bounded nesting, and no
object with the same name twice.

Python's ``json`` accepts more than RFC 8259 (``NaN``, UTF-16 bodies, lone surrogate escapes) and
raises more than ``JSONDecodeError`` (``RecursionError``, ``ValueError`` for huge integers). Every
one of those becomes :class:`MalformedJsonError` here, so a sender gets a 400, never a 500.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final, NoReturn

from producer_bridge.errors import MalformedJsonError

_WHITESPACE: Final = " \t\n\r"


def _refuse_constant(name: str) -> NoReturn:
    raise MalformedJsonError(f"{name} is not a JSON value")


def _unique_names(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """I-JSON (RFC 7493 §2.3): "Objects in I-JSON messages MUST NOT have members with duplicate
    names". RFC 8259 §4 leaves the result of a duplicate to the parser (Python keeps the last,
    others the first), so a signed body could mean one thing to the sender and another here."""
    document = dict(pairs)
    if len(document) != len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise MalformedJsonError(f"an object has the member {name[:64]!r} twice")
            seen.add(name)
    return document


_DECODER: Final = json.JSONDecoder(parse_constant=_refuse_constant, object_pairs_hook=_unique_names)


@dataclass(frozen=True)
class ArrayItem:
    value: Any
    size_bytes: int
    """The item's own bytes as sent, without the separating commas and whitespace."""


def parse_document(body: bytes) -> Any:
    """The one JSON value in ``body``."""
    text = _utf8(body)
    start = _skip_whitespace(text, 0)
    value, end = _decode_at(text, start)
    if _skip_whitespace(text, end) != len(text):
        raise MalformedJsonError(f"extra data after the JSON value at character {end}")
    _require_unicode(value, "")
    return value


def parse_array(body: bytes) -> list[ArrayItem] | None:
    """The items of a top-level JSON array with their sizes; ``None`` when the body is valid
    JSON but not an array (the caller answers 422, not 400)."""
    text = _utf8(body)
    index = _skip_whitespace(text, 0)
    if not text.startswith("[", index):
        parse_document(body)  # 400 when it is not JSON at all
        return None
    items: list[ArrayItem] = []
    index = _skip_whitespace(text, index + 1)
    if text.startswith("]", index):
        index += 1
    else:
        while True:
            value, end = _decode_at(text, index)
            _require_unicode(value, f"[{len(items)}]")
            items.append(ArrayItem(value, len(text[index:end].encode("utf-8"))))
            index = _skip_whitespace(text, end)
            if text.startswith(",", index):
                index = _skip_whitespace(text, index + 1)
            elif text.startswith("]", index):
                index += 1
                break
            else:
                raise MalformedJsonError(f"expected ',' or ']' at character {index}")
    if _skip_whitespace(text, index) != len(text):
        raise MalformedJsonError(f"extra data after the JSON array at character {index}")
    return items


def _utf8(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedJsonError(f"body is not UTF-8 (byte {exc.start})") from exc


def _skip_whitespace(text: str, index: int) -> int:
    while index < len(text) and text[index] in _WHITESPACE:
        index += 1
    return index


def _decode_at(text: str, index: int) -> tuple[Any, int]:
    try:
        value, end = _DECODER.raw_decode(text, index)
    except json.JSONDecodeError as exc:
        raise MalformedJsonError(f"not JSON: {exc.msg} at character {exc.pos}") from exc
    except RecursionError as exc:
        raise MalformedJsonError("JSON nested too deeply") from exc
    except ValueError as exc:  # an integer literal longer than Python's digit limit
        raise MalformedJsonError(f"not acceptable JSON: {exc}") from exc
    return value, end


def _require_unicode(value: Any, path: str) -> None:
    """Refuse ``"\\ud800"``-style lone surrogates: I-JSON (RFC 7493) forbids them, and they
    cannot be written as UTF-8 to Avro or to a Kafka key."""
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            _check_text(item, where)
        elif isinstance(item, dict):
            for key, child in item.items():
                _check_text(key, f"a key of {where or 'the object'}")
                stack.append((child, f"{where}.{key}" if where else key))
        elif isinstance(item, list):
            stack.extend((child, f"{where}[{i}]") for i, child in enumerate(item))


def _check_text(text: str, where: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise MalformedJsonError(
            f"{where or 'the value'}: a lone surrogate escape (\\uD800-\\uDFFF) is not Unicode text"
        ) from exc
