"""Identifiers that become Kafka keys and HTTP headers: printable, bounded, never a placeholder.

An event's ids travel further than its other fields: the customer id is the Kafka key, the event
id is the ``event-id`` record header and the CRM's ``Idempotency-Key``, and CRMs commonly allow
255 characters for such a key. The consumer derives keys from the event id (``{event_id}``,
``{event_id}:create``, ``{event_id}:update``, and ``{event_id}~r{n}...`` for replays), so the
bounds here leave room for every derived key:

* event id: 200 characters (55 to spare for suffixes);
* contact id: 128, so the default event id ``{contactId}-{ISO time}`` is at most 153;
* the platform's conversation and participant ids: 64 each (UUIDs are 36), so the platform event
  id ``{conversationId}-{participantId}-customer.end`` is at most 142;
* customer id: 256 (a Kafka key, not a header; may be an e-mail address);
* queue and agent ids: 256 (printable; they may be blank, they are optional metadata).

Every id holds only printable characters (``str.isprintable()``: no control, format, separator,
surrogate, private-use or unassigned code point, so no CR, LF, NUL, tab or U+2028; the ASCII
space is the one separator allowed). A CR/LF in a header value is refused by the HTTP client
(or worse, splits the header); such an id would stop the consumer on every retry. An id must not
begin or end with a space either: HTTP strips it from a header value (RFC 9110 §5.5), so two ids
would reach the CRM as one key.

**Unresolved template placeholders.** The platform's data actions build request bodies and
headers from Velocity templates, and Velocity renders a reference whose value is null as its own
text: ``${input.customerId}`` arrives as the customer id ("Formal notation: ${variable}. If the
variable is null, formal notation outputs the variable name", Genesys Cloud, *Velocity macros
for data actions*, help.mypurecloud.com/articles/velocity-macros-data-actions/). Since March 2024
the data-action service drops null inputs before rendering (developer.genesys.cloud forum,
*Data Actions will ignore null input values*), so a flow variable that is NOT_SET now always ends
as such a literal. The forms that leave text behind:

* formal ``${input.x}`` and shorthand ``$input.x`` references (Apache Velocity User Guide,
  "References"; an unbound reference "renders as $a in the output");
* the quiet forms ``$!{input.x}`` / ``$!input.x`` render empty when printed directly, but not as
  a method argument: ``$esc.jsonString($!input.x)`` renders literally (the method returns null,
  so the whole call is printed), and so do ``${esc.jsonString($input.x)}``, ``$esc.url(...)``,
  ``$encoding.base64(...)``, ``$math...`` (the macro roots the data-action docs list);
* an escaped reference ``\\${input.x}`` renders as ``\\${input.x}`` when unbound;
* Mustache/Handlebars ``{{x}}`` (templates that were never rendered, or a tool that keeps
  unknown tags);
* an EventBridge input-transformer placeholder ``<x>`` as the whole value (the documented
  ``InputTemplate`` syntax, Amazon EventBridge User Guide, *Input transformation*);
* Architect's ``NOT_SET`` (the value of an Architect variable with no value, Genesys Cloud,
  *Use NOT_SET in expressions*) as the whole value.

Each is answered with a 422 by the bridge and dead-lettered at stage ``validate`` by the
consumer: an id that is a template's text would create a CRM customer named after it.
"""

from __future__ import annotations

import functools
import re
from typing import Annotated, Any, Final

from pydantic import AfterValidator, StringConstraints

EVENT_ID_MAX_LENGTH: Final = 200
CONTACT_ID_MAX_LENGTH: Final = 128
PLATFORM_ID_MAX_LENGTH: Final = 64
CUSTOMER_ID_MAX_LENGTH: Final = 256
REFERENCE_ID_MAX_LENGTH: Final = 256

# Search patterns (ECMA-262 and Python ``re`` alike, as JSON Schema's ``pattern``), one per form
# of unresolved placeholder; a value matching any of them is refused. The Velocity roots are the
# data-action context (``$input``) and the macro tools the platform documents.
_VELOCITY_ROOTS: Final = "input|esc|math|encoding|urlTool|successTemplateUtils"
PLACEHOLDER_PATTERNS: Final[dict[str, str]] = {
    "a Velocity reference (${...})": r"\$!?\{",
    "a Velocity reference ($input.x, $esc.jsonString(...))": rf"\$!?({_VELOCITY_ROOTS})\.",
    "a Mustache tag ({{x}})": r"\{\{[^{}]*\}\}",
    "an EventBridge input-transformer placeholder (<x>)": r"^<[A-Za-z0-9_.-]+>$",
    "Architect's NOT_SET": r"^NOT_SET$",
}
_PLACEHOLDERS: Final = [
    (kind, re.compile(pattern)) for kind, pattern in PLACEHOLDER_PATTERNS.items()
]


def unresolved_placeholder(value: str) -> str | None:
    """Which kind of unresolved template placeholder ``value`` holds, or ``None``."""
    for kind, pattern in _PLACEHOLDERS:
        if pattern.search(value):
            return kind
    return None


def identifier_problem(value: str) -> str | None:
    """Why ``value`` cannot be an identifier (a reason that never quotes it), or ``None``.

    The checks, in order: blank, a character that is not printable (named by code point and
    index), a space at either end, an unresolved template placeholder. Lengths are the caller's
    (each id has its own bound, see the module docstring).
    """
    if not value.strip():
        return "must not be blank"
    if value.isprintable() and (value[0] == " " or value[-1] == " "):
        return (
            "must not begin or end with a space (HTTP strips it from a header value, so two "
            "ids would reach the CRM as one key)"
        )
    return reference_problem(value)


def reference_problem(value: str) -> str | None:
    """Why ``value`` cannot be a queue or agent id (optional metadata: blank is allowed), or
    ``None``: a character that is not printable, or an unresolved template placeholder."""
    if not value.isprintable():
        index, char = next((i, c) for i, c in enumerate(value) if not c.isprintable())
        return (
            f"holds a character that is not printable (U+{ord(char):04X} at index {index}): "
            "control, format, separator and unassigned code points cannot be part of a Kafka "
            "key or an HTTP header"
        )
    kind = unresolved_placeholder(value)
    if kind is not None:
        return (
            f"holds an unresolved template placeholder, {kind}: the sending flow or template "
            "had no value for it"
        )
    return None


def _identifier(value: str) -> str:
    problem = identifier_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _reference(value: str) -> str:
    problem = reference_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


EventId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=EVENT_ID_MAX_LENGTH),
    AfterValidator(_identifier),
]
"""The event id (idempotency key): 1..200 printable characters, not blank, no placeholder."""

CustomerId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=CUSTOMER_ID_MAX_LENGTH),
    AfterValidator(_identifier),
]
"""The customer id, the Kafka key: 1..256 printable characters, not blank, no placeholder."""

ContactId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=CONTACT_ID_MAX_LENGTH),
    AfterValidator(_identifier),
]
"""The contact (interaction) id: 1..128 printable characters, not blank, no placeholder."""

PlatformId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=PLATFORM_ID_MAX_LENGTH),
    AfterValidator(_identifier),
]
"""The platform's conversation and participant ids: 1..64 printable characters."""

ReferenceId = Annotated[
    str, StringConstraints(max_length=REFERENCE_ID_MAX_LENGTH), AfterValidator(_reference)
]
"""Queue and agent ids: 0..256 printable characters (blank allowed), no placeholder."""


@functools.cache
def printable_class() -> str:
    """The body of a regular-expression character class matching exactly the characters
    ``str.isprintable()`` accepts (this Python's Unicode database), written so that ECMA-262
    (JSON Schema's dialect, with the ``u`` flag) and Python's ``re`` read it the same way:
    ``\\uXXXX`` escapes in the BMP, literal characters beyond it."""
    ranges: list[tuple[int, int]] = []
    start: int | None = None
    for code in range(0x110000):
        if chr(code).isprintable():
            if start is None:
                start = code
        elif start is not None:
            ranges.append((start, code - 1))
            start = None
    if start is not None:
        ranges.append((start, 0x10FFFF))

    def char(code: int) -> str:
        return f"\\u{code:04x}" if code <= 0xFFFF else chr(code)

    return "".join(
        char(first) if first == last else f"{char(first)}-{char(last)}" for first, last in ranges
    )


def identifier_json_schema() -> dict[str, Any]:
    """The JSON Schema of :func:`identifier_problem`'s rules without the length (each field adds
    its own ``maxLength``): what the bridge's OpenAPI document states for every id field."""
    return {
        "type": "string",
        "minLength": 1,
        "pattern": f"^[{printable_class()}]+$",
        "not": {"anyOf": [{"pattern": "^ "}, {"pattern": " $"}, *_placeholder_schemas()]},
        "description": (
            "Printable characters only (no control, format, separator or unassigned code "
            "point; the ASCII space only inside), and no unresolved template placeholder "
            "(`${...}`, `$input.x`, `$esc.jsonString(...)`, `{{x}}`, a whole `<x>`, `NOT_SET`)."
        ),
    }


def reference_json_schema() -> dict[str, Any]:
    """The JSON Schema of :func:`reference_problem`'s rules, without the length."""
    return {
        "type": "string",
        "pattern": f"^[{printable_class()}]*$",
        "not": {"anyOf": _placeholder_schemas()},
        "description": (
            "Printable characters only, and no unresolved template placeholder; may be empty."
        ),
    }


def _placeholder_schemas() -> list[dict[str, str]]:
    return [{"pattern": pattern} for pattern in PLACEHOLDER_PATTERNS.values()]
