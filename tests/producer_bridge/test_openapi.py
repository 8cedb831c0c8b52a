"""The checked-in OpenAPI document states the contract's identifier rules as they are."""

from __future__ import annotations

from producer_bridge.openapi import checked_in_document, openapi_document
from producer_bridge.settings import BridgeSettings
from schemas.identifiers import identifier_json_schema, reference_json_schema


def test_the_identifier_schemas_are_the_contracts() -> None:
    schemas = checked_in_document()["components"]["schemas"]
    assert schemas["Identifier"] == identifier_json_schema()
    assert schemas["ReferenceId"] == reference_json_schema()


def test_with_default_settings_the_served_document_is_the_checked_in_file() -> None:
    assert openapi_document(BridgeSettings(_env_file=None)) == checked_in_document()
