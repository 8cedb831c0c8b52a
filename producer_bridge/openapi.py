"""The OpenAPI 3.1 document of the bridge: the checked-in ``openapi.json``, with the limits and
header names this process is configured with (with default settings: the file unchanged).

The identifier schemas (``Identifier``, ``ReferenceId``) are derived from
:mod:`schemas.identifiers`: "printable" is ``str.isprintable()`` of the running Python's Unicode
database, so the served document states exactly what this process accepts; the checked-in file
holds them as Python 3.11 (Unicode 14.0) derives them.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib import resources
from typing import Any

from producer_bridge.handlers import BATCH_PATH
from producer_bridge.settings import BridgeSettings
from schemas.identifiers import identifier_json_schema, reference_json_schema

OPENAPI_FILE = "openapi.json"


@cache
def checked_in_document() -> dict[str, Any]:
    text = resources.files("producer_bridge").joinpath(OPENAPI_FILE).read_text(encoding="utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


def openapi_document(settings: BridgeSettings) -> dict[str, Any]:
    document = copy.deepcopy(checked_in_document())
    batch = document["paths"][BATCH_PATH]["post"]["requestBody"]["content"]["application/json"]
    batch["schema"]["maxItems"] = settings.max_batch_events
    schemes = document["components"]["securitySchemes"]
    schemes["sharedSecret"]["name"] = settings.shared_secret_header
    document["components"]["schemas"]["Identifier"] = identifier_json_schema()
    document["components"]["schemas"]["ReferenceId"] = reference_json_schema()
    return document
