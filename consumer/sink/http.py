"""The seed's generic REST CRM: ``POST /v1/customers/update``, create on 404.

How each answer is read (README "Errors, by whom they are about" is the same table):

========================  =================================================================
2xx                       written
3xx                       unusable: a write is never redirected (aiohttp would turn the POST
                          into a GET that a landing page answers 200); the endpoint moved or
                          the base URL is wrong
401, 403                  unusable: the credentials
404 on the update         the customer is not there: create it with the same attributes
                          instead (``{key}:create``), the seed's Edge Case 2
404 on the create         unusable: the create endpoint is not where it should be
409 on an update          unavailable: another request with this key is still executing
                          (IETF Idempotency-Key draft §2.7, Stripe's idempotency_key_in_use);
                          retry it later with the same key
409 on the create         the key in use (body says ``idempotency_key_in_use``, see
                          :func:`says_key_in_use`): unavailable as above; otherwise "customer
                          exists": another writer created it, so update it (``{key}:update``)
400, 410, 413, 415, 422   rejected: this payload is wrong (dead-letter)
429                       unavailable, throttled: Retry-After (either form) pauses every call
anything else             unavailable: retry with backoff (5xx, 408, 1xx, unknown codes)
========================  =================================================================

Every answer's rate-limit headers go to the limiter (:meth:`GroupRateLimiter.observe_quota`),
and the create or second update of one write waits for a limiter token like the first request
(the writer takes the first one): the CRM counts requests, not events. Right before a request
goes out the sink also waits out any 429 pause that began after its token was taken.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import replace
from typing import Any, Final, Protocol

import aiohttp

from consumer.errors import SinkRejectedError, SinkUnavailableError, SinkUnusableError
from consumer.processing.lease import WriteLease
from consumer.ratelimit import QuotaHint
from consumer.sink.base import CustomerUpdate
from consumer.sink.hints import quota_hint, retry_after_seconds
from consumer.sink.redact import describe_answer
from consumer.sink.token import BearerToken

UPDATE_PATH: Final = "/v1/customers/update"
CREATE_PATH: Final = "/v1/customers"
# The most requests one write() makes: the update, the create after a 404, the update after the
# create's 409. Each has the whole CRM timeout, so a write lasts at most this many timeouts; the
# consumer's drains are checked against that (consumer.settings).
REQUESTS_PER_WRITE: Final = 3
# Statuses that say "this payload is wrong": retrying the same bytes cannot succeed.
_REJECTED: Final = frozenset({400, 410, 413, 415, 422})
_UNUSABLE: Final = frozenset({401, 403})
MAX_IDEMPOTENCY_KEY_LENGTH: Final = 255
_log = logging.getLogger(__name__)


class RequestPacer(Protocol):
    """The limiter as the sink sees it (:class:`consumer.ratelimit.GroupRateLimiter`)."""

    async def acquire(self) -> float: ...

    async def wait_while_paused(self) -> None: ...

    def observe_quota(self, hint: QuotaHint) -> None: ...


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


def says_key_in_use(content: bytes) -> bool:
    """True when a 409's body says "another request with this Idempotency-Key is executing".

    Recognised: the code ``idempotency_key_in_use`` (Stripe's, and this project's simulator's)
    as ``error``, ``code`` or ``error.code``; and an ``application/problem+json`` ``title`` or
    ``detail`` naming the Idempotency-Key as outstanding or in progress (the IETF draft's example
    is "A request is outstanding for this Idempotency-Key"). Anything else is a conflict about
    the resource.
    """
    try:
        body = json.loads(content)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return False
    if not isinstance(body, dict):
        return False
    nested = body.get("error")
    texts = [body.get(name) for name in ("error", "code", "type", "title", "detail")]
    if isinstance(nested, dict):
        texts += [nested.get("code"), nested.get("type")]
    for text in texts:
        if not isinstance(text, str):
            continue
        lowered = text.lower()
        if "idempotency_key_in_use" in lowered:
            return True
        if "idempotency" in lowered and any(
            word in lowered for word in ("outstanding", "in progress", "in use", "processed")
        ):
            return True
    return False


class CrmHttpSink:
    """One keep-alive connection pool, a bearer token, and an idempotency key per event."""

    def __init__(
        self,
        base_url: str,
        token: str | BearerToken,
        *,
        timeout_s: float = 5.0,
        max_connections: int = 100,
        pacer: RequestPacer | None = None,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._token = token if isinstance(token, BearerToken) else BearerToken(token)
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._pacer = pacer
        self._in_flight = 0
        # The write lease (consumer.processing.lease), looked at right before every request:
        # the create or second update of a write may wait for a limiter token or a 429 pause,
        # and a process frozen in that wait must not send it on waking.
        self.lease: WriteLease | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections),
                timeout=self._timeout,
            )
        return self._session

    async def write(self, update: CustomerUpdate) -> None:
        key = update.idempotency_key
        status, _ = await self._post(UPDATE_PATH, update_body(update), request_key(key))
        if status != 404:
            return
        # The seed's Edge Case 2: the customer is not in the CRM yet. Create it with the
        # attributes instead. A 409 whose body does not say "key in use" means another writer
        # created it meanwhile: update it then, under a key of its own (the CRM may have stored
        # the 404 under the first one, as Stripe does).
        create = {"id": update.customer_id, "attributes": dict(update.attributes)}
        status, content = await self._post(
            CREATE_PATH, create, request_key(key, ":create"), follow_up=True
        )
        if status != 409:
            return
        if says_key_in_use(content):
            raise SinkUnavailableError(
                "an earlier create with this Idempotency-Key is still executing", status=409
            )
        status, _ = await self._post(
            UPDATE_PATH, update_body(update), request_key(key, ":update"), follow_up=True
        )
        if status == 404:
            raise SinkUnavailableError(
                "customer still unknown right after the CRM said it exists", status=404
            )

    async def _post(
        self, path: str, body: dict[str, Any], idempotency_key: str, *, follow_up: bool = False
    ) -> tuple[int, bytes]:
        """POST ``body``; the status and body of a 2xx, of a 404 on the update and of a 409 on
        the create (the caller decides), else the :class:`~consumer.errors.SinkError` it means."""
        if self._pacer is not None:
            if follow_up:
                await self._pacer.acquire()
            await self._pacer.wait_while_paused()
        if self.lease is not None:
            await self.lease.held()
        token = self._token.current()
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": idempotency_key}
        self._in_flight += 1
        try:
            async with self._client().post(
                self._base_url + path, json=body, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                # Read the body whatever the status, or the keep-alive connection cannot be
                # reused; decode it only for an error message.
                content = await response.read()
                answer = response.headers
        except aiohttp.ClientConnectorDNSError as exc:
            raise SinkUnusableError(f"CRM host name does not resolve: {exc}") from exc
        except TimeoutError as exc:
            raise SinkUnavailableError(f"CRM did not answer within {self._timeout.total}s") from exc
        except aiohttp.ClientError as exc:
            raise SinkUnavailableError(
                f"CRM connection failed: {type(exc).__name__}: {exc}"
            ) from exc
        finally:
            self._in_flight -= 1
        self._observe(answer)
        if 200 <= status < 300:
            return status, content
        if (status == 404 and path == UPDATE_PATH) or (status == 409 and path == CREATE_PATH):
            return status, content
        if status == 401:
            # The token file may hold a rotated token: the breaker's probe, a moment from now,
            # carries it (consumer.sink.token).
            self._token.refused(token)
        raise _failure(path, status, content, answer)

    def _observe(self, headers: Any) -> None:
        if self._pacer is None:
            return
        hint = quota_hint(headers)
        if hint is not None:
            self._pacer.observe_quota(replace(hint, in_flight=self._in_flight))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _failure(path: str, status: int, content: bytes, headers: Any) -> Exception:
    """The sink error an unwanted answer means (the table in the module docstring)."""
    # Never the body's text: it may echo customer data (consumer.sink.redact).
    detail = describe_answer(status, content)
    if 300 <= status < 400:
        location = str(headers.get("Location", ""))[:200]
        return SinkUnusableError(
            f"CRM answered {status} to a write (Location: {location!r}): writes are not "
            "redirected; the endpoint moved or the CRM base URL is wrong",
            status=status,
        )
    if status in _UNUSABLE:
        return SinkUnusableError(f"CRM refused our credentials ({status}): {detail}", status=status)
    if status == 404:
        return SinkUnusableError(
            f"CRM answered 404 to {path}: the endpoint is missing; check the CRM base URL",
            status=status,
        )
    if status in _REJECTED:
        return SinkRejectedError(f"CRM rejected the payload ({status}): {detail}", status=status)
    reason = "the key is still in use by an earlier attempt" if status == 409 else detail
    return SinkUnavailableError(
        f"CRM answered {status}: {reason}",
        status=status,
        retry_after=retry_after_seconds(headers),
    )
