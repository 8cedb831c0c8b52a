"""The seed's generic REST CRM: ``POST /v1/customers/update``, create on 404."""

from __future__ import annotations

import hashlib
import logging
import math
from typing import Any, Final

import aiohttp

from consumer.errors import SinkRejectedError, SinkUnavailableError, SinkUnusableError
from consumer.sink.base import CustomerUpdate

UPDATE_PATH: Final = "/v1/customers/update"
CREATE_PATH: Final = "/v1/customers"
# Statuses that say "this payload is wrong": retrying the same bytes cannot succeed.
_REJECTED: Final = frozenset({400, 409, 410, 413, 415, 422})
_UNUSABLE: Final = frozenset({401, 403})
MAX_IDEMPOTENCY_KEY_LENGTH: Final = 255
_log = logging.getLogger(__name__)


def update_body(update: CustomerUpdate) -> dict[str, Any]:
    """The seed's payload with only the attributes that move forward (the CRM leaves the others
    as they are, as a PATCH does). ``last_updated`` is a time of the customer's events, not
    "now", so a retried or replayed write sends the same bytes and the CRM's idempotency holds."""
    return {
        "id": update.customer_id,
        "attributes": dict(update.attributes),
        "last_updated": update.last_updated.isoformat(timespec="milliseconds").replace(
            "+00:00", "Z"
        ),
    }


def request_key(base: str, step: str = "") -> str:
    """The Idempotency-Key of one request: ``base`` plus the step (``:create``, ``:update``).

    The IETF Idempotency-Key draft makes the header a Structured Field string (printable ASCII)
    and CRMs commonly cap it at 255 characters (Stripe). An id outside that, which the bridge no
    longer lets in but an old record may hold, is replaced by its SHA-256, deterministically, so
    retries still share the key.
    """
    key = base + step
    if len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH and all(" " <= c <= "~" for c in key):
        return key
    return "sha256-" + hashlib.sha256(base.encode("utf-8", "surrogatepass")).hexdigest() + step


def retry_after_seconds(headers: Any) -> float | None:
    """``Retry-After-Ms`` (precise, when the CRM sends it), else ``Retry-After`` in seconds."""
    for name, scale in (("Retry-After-Ms", 0.001), ("Retry-After", 1.0)):
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            value = float(raw) * scale
        except ValueError:
            continue  # an HTTP-date: rare for APIs; the caller's backoff applies instead
        if math.isfinite(value) and value >= 0:
            return value
    return None


class CrmHttpSink:
    """One keep-alive connection pool, a bearer token, and an idempotency key per event."""

    def __init__(
        self, base_url: str, token: str, *, timeout_s: float = 5.0, max_connections: int = 100
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections),
                timeout=self._timeout,
            )
        return self._session

    async def write(self, update: CustomerUpdate) -> None:
        key = update.idempotency_key
        status = await self._post(UPDATE_PATH, update_body(update), request_key(key))
        if status != 404:
            return
        # The seed's Edge Case 2: the customer is not in the CRM yet. Create it with the
        # attributes instead; a 409 means another writer created it meanwhile: update it then,
        # under a key of its own (a CRM may have stored the 404 under the first one).
        create = {"id": update.customer_id, "attributes": dict(update.attributes)}
        status = await self._post(CREATE_PATH, create, request_key(key, ":create"), tolerate={409})
        if status != 409:
            return
        status = await self._post(UPDATE_PATH, update_body(update), request_key(key, ":update"))
        if status == 404:
            raise SinkUnavailableError(
                "customer still unknown right after the CRM said it exists", status=404
            )

    async def _post(
        self,
        path: str,
        body: dict[str, Any],
        idempotency_key: str,
        *,
        tolerate: frozenset[int] | set[int] = frozenset(),
    ) -> int:
        headers = {"Authorization": f"Bearer {self._token}", "Idempotency-Key": idempotency_key}
        try:
            async with self._client().post(
                self._base_url + path, json=body, headers=headers
            ) as response:
                status = response.status
                # Read the body whatever the status, or the keep-alive connection cannot be
                # reused; decode it only for an error message.
                content = await response.read()
                retry_after = None if status < 300 else retry_after_seconds(response.headers)
        except aiohttp.ClientConnectorDNSError as exc:
            raise SinkUnusableError(f"CRM host name does not resolve: {exc}") from exc
        except TimeoutError as exc:
            raise SinkUnavailableError(f"CRM did not answer within {self._timeout.total}s") from exc
        except aiohttp.ClientError as exc:
            raise SinkUnavailableError(
                f"CRM connection failed: {type(exc).__name__}: {exc}"
            ) from exc
        if 200 <= status < 300 or status == 404 or status in tolerate:
            return status
        detail = content[:500].decode(errors="replace")
        if status in _UNUSABLE:
            raise SinkUnusableError(
                f"CRM refused our credentials ({status}): {detail}", status=status
            )
        if status in _REJECTED:
            raise SinkRejectedError(f"CRM rejected the payload ({status}): {detail}", status=status)
        raise SinkUnavailableError(
            f"CRM answered {status}: {detail}", status=status, retry_after=retry_after
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
