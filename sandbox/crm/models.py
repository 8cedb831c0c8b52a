"""The request bodies the simulated CRM accepts, validated as strictly as a real API would.

Strict means: no type coercion (``"0.4"`` is not a number, ``true`` is not a number), no unknown
fields (a typo in a field name is an error, not a silently dropped value), every attribute present.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from sandbox.crm.store import JsonObject

# Real CRMs cap identifier lengths; 256 is generous and keeps a runaway id from being stored.
_MAX_ID_LENGTH = 256


def _not_blank(value: str) -> str:
    if not value.strip():
        msg = "must not be blank"
        raise ValueError(msg)
    return value


def _iso_8601_with_offset(value: str) -> str:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        msg = "must be an ISO-8601 date-time such as 2026-11-28T10:15:00Z"
        raise ValueError(msg) from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        msg = "must carry a UTC offset or Z (a local time is ambiguous)"
        raise ValueError(msg)
    return value


CustomerId = Annotated[
    str, Field(min_length=1, max_length=_MAX_ID_LENGTH), AfterValidator(_not_blank)
]
Sentiment = Annotated[float, Field(ge=-1.0, le=1.0)]
Timestamp = Annotated[str, AfterValidator(_iso_8601_with_offset)]

_STRICT = ConfigDict(extra="forbid", strict=True)


class Attributes(BaseModel):
    """A customer's segmentation attributes. An update sets the ones it names and leaves the
    others as they are, as the update (PATCH) endpoints of real CRMs do (HubSpot's
    ``PATCH /crm/v3/objects/contacts/{id}``, Salesforce's sObject PATCH): a client that knows one
    attribute must not have to resend, or erase, the others. Naming none is an error."""

    model_config = _STRICT

    last_interaction_summary: str | None = None
    sentiment: Sentiment | None = None
    segmentation_tags: list[str] | None = None

    @model_validator(mode="after")
    def _names_one(self) -> Self:
        if not self.model_fields_set:
            msg = "must name at least one attribute"
            raise ValueError(msg)
        if "segmentation_tags" in self.model_fields_set and self.segmentation_tags is None:
            msg = "segmentation_tags must be a list ([] clears the tags), not null"
            raise ValueError(msg)
        return self

    def given(self) -> JsonObject:
        """The attributes the request names, with their values."""
        return self.model_dump(include=self.model_fields_set)


# What a customer created without attributes holds.
EMPTY_ATTRIBUTES: JsonObject = {
    "last_interaction_summary": None,
    "sentiment": None,
    "segmentation_tags": [],
}


class UpdateRequest(BaseModel):
    """``POST /v1/customers/update``."""

    model_config = _STRICT

    id: CustomerId
    attributes: Attributes
    last_updated: Timestamp


class CreateRequest(BaseModel):
    """``POST /v1/customers``: the attributes are optional, and checked exactly as an update's
    when given (a client creating a customer with its attributes instead of create + update,
    the seed's Edge Case 2, must get the same 422s)."""

    model_config = _STRICT

    id: CustomerId
    attributes: Attributes | None = None

    @field_validator("attributes")
    @classmethod
    def _not_null(cls, value: Attributes | None) -> Attributes:
        # Runs only for a value the client sent (defaults are not validated): null is refused,
        # as the update refuses it; leaving the field out creates the customer without any.
        if value is None:
            msg = "must be an object naming at least one attribute, or be left out"
            raise ValueError(msg)
        return value


def field_errors(error: ValidationError) -> list[dict[str, str]]:
    """``[{"field": "attributes.sentiment", "reason": "..."}]``; input values are not echoed."""
    problems: list[dict[str, str]] = []
    for item in error.errors(include_url=False, include_input=False):
        location = ".".join(str(part) for part in item["loc"]) or "body"
        problems.append({"field": location, "reason": _reason(item)})
    return problems


def _reason(item: ErrorDetails) -> str:
    if item["type"] == "missing":
        return "is required"
    if item["type"] == "extra_forbidden":
        return "is not a known field"
    message = str(item["msg"])
    # AfterValidator failures read "Value error, must ..."; the prefix helps no one.
    return message.removeprefix("Value error, ")
