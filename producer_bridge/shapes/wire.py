"""Field types of the wire format: exactly what the OpenAPI document promises, no more.

pydantic's lax parsing would also take ``"0.5"`` for a number or ``"1700000000.5"`` (seconds!) for
a timestamp; a sender relying on that would depend on an accident. These types accept what the
document describes, and the document describes what they accept (the fuzz test holds both to it).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated, Any, Final

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints

from producer_bridge.errors import FieldError, InvalidEventError
from schemas.identifiers import CUSTOMER_ID_MAX_LENGTH, identifier_problem
from schemas.model import MAX_CLOCK_SKEW_S, Instant

# RFC 3339 date-time, seconds 00-59 (no leap second: Python's datetime has none), years 0002-9998
# so that any offset still lands inside datetime's range once converted to UTC.
RFC3339_PATTERN: Final = (
    r"^(000[2-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])"
    r"-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-5][0-9](\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
EPOCH_MILLIS_TEXT_PATTERN: Final = r"^[0-9]{1,14}$"
EPOCH_MILLIS_MIN: Final = -62_135_596_800_000  # 0001-01-01T00:00:00Z
EPOCH_MILLIS_MAX: Final = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
_RFC3339 = re.compile(RFC3339_PATTERN)
_EPOCH_MILLIS_TEXT = re.compile(EPOCH_MILLIS_TEXT_PATTERN)

# What str.strip() removes: the event model calls an id made only of these blank. The OpenAPI
# document spells the same set out as a character class.
PYTHON_WHITESPACE: Final = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


def _wire_instant(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("a timestamp is RFC 3339 text or epoch milliseconds, not a boolean")
    if isinstance(value, int | float):
        if not EPOCH_MILLIS_MIN <= value <= EPOCH_MILLIS_MAX:
            raise ValueError("epoch milliseconds out of range (years 1..9999)")
        return value
    if isinstance(value, str) and (
        _EPOCH_MILLIS_TEXT.fullmatch(value) or _RFC3339.fullmatch(value)
    ):
        return value
    raise ValueError(
        "a timestamp is RFC 3339 date-time text with a zone (2026-11-28T10:15:00Z, years "
        "0002-9998) or epoch milliseconds (a number, or up to 14 digits as text)"
    )


def _blank_or_customer_id(value: str) -> str:
    problem = None if not value.strip() else identifier_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


WireInstant = Annotated[Instant, BeforeValidator(_wire_instant)]
"""A timestamp as the document allows it, then the event model's own parsing and checks."""

WireNumber = Annotated[float, Field(strict=True, allow_inf_nan=False)]
"""A JSON number (integer or not); never a string or a boolean."""


CustomerKeyEntry = Annotated[
    str,
    StringConstraints(max_length=CUSTOMER_ID_MAX_LENGTH),
    AfterValidator(_blank_or_customer_id),
]
"""An entry of a list of customer keys (``conversationExternalContactIds``): blank (skipped when
the key is chosen) or a valid customer id."""


def not_in_the_future(instant: datetime, received_at: datetime, field: str) -> None:
    """Refuse (422 naming ``field``) a completion time more than ``MAX_CLOCK_SKEW_S`` after the
    bridge's clock: it would win every newest-wins comparison until that time came, freezing the
    customer's attributes (see :data:`schemas.model.MAX_CLOCK_SKEW_S`)."""
    if instant > received_at + timedelta(seconds=MAX_CLOCK_SKEW_S):
        raise InvalidEventError(
            [
                FieldError(
                    field=field,
                    reason=f"lies more than {MAX_CLOCK_SKEW_S} s after the bridge's clock "
                    "(a completion time cannot be in the future; check the sender's clock "
                    "and time zone)",
                )
            ]
        )
