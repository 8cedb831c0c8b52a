"""A minimal OpenID Connect provider for the local broker's OAUTHBEARER listener.

Managed clusters with OAUTHBEARER (Confluent Cloud, Strimzi with Keycloak, MSK with IAM aside)
have clients fetch a token from an identity provider with the OAuth 2.0 client-credentials grant
(RFC 6749 section 4.4) and brokers check its signature against the provider's JSON Web Key Set
(RFC 7517). This module is that provider, as small as the two endpoints a Kafka setup uses:

* ``POST /token`` - ``grant_type=client_credentials``, the client authenticated with HTTP Basic
  (RFC 6749 section 2.3.1, what librdkafka sends) or in the form body; answers
  ``{"access_token", "token_type": "Bearer", "expires_in"}``, or 401 ``invalid_client`` /
  400 ``unsupported_grant_type`` (RFC 6749 section 5.2);
* ``GET /jwks`` - the RSA public key the tokens are signed with.

Tokens are JWTs (RFC 7519) signed RS256 with the claims Kafka's
``OAuthBearerValidatorCallbackHandler`` checks: ``sub`` (the principal), ``aud``, ``iss``,
``iat``, ``exp``, ``scope``. The provider is simulated (like the CRM); the broker's validation and
librdkafka's OIDC client are the real ones.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

TOKEN_LIFETIME_S: Final = 3600


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_int(value: int) -> str:
    return _b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


@dataclass
class OidcProvider:
    """``clients``: client id -> client secret. Serves on 127.0.0.1 from :meth:`start`."""

    clients: dict[str, str] = field(repr=False)
    audience: str = "segstream-kafka"
    issuer: str = "segstream-sandbox-oidc"
    _key: rsa.RSAPrivateKey = field(init=False, repr=False)
    _kid: str = field(init=False)
    _server: ThreadingHTTPServer | None = field(init=False, default=None)
    issued: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._kid = secrets.token_hex(8)

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the OIDC provider is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def token_endpoint_url(self) -> str:
        return f"{self.url}/token"

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/jwks"

    def start(self) -> OidcProvider:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/jwks":
                    self._answer(200, provider.jwks())
                else:
                    self._answer(404, {"error": "not_found"})

            def do_POST(self) -> None:
                if self.path != "/token":
                    self._answer(404, {"error": "not_found"})
                    return
                length = int(self.headers.get("Content-Length") or 0)
                form = urllib.parse.parse_qs(self.rfile.read(length).decode("utf-8"))
                status, body = provider.token(self.headers.get("Authorization"), form)
                self._answer(status, body)

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, name="oidc", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def jwks(self) -> dict[str, Any]:
        numbers = self._key.public_key().public_numbers()
        key = {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self._kid}
        return {"keys": [key | {"n": _b64url_int(numbers.n), "e": _b64url_int(numbers.e)}]}

    def token(self, authorization: str | None, form: dict[str, list[str]]) -> tuple[int, Any]:
        """The token endpoint's answer: (status, JSON body)."""
        client_id, client_secret = _client_credentials(authorization, form)
        known = self.clients.get(client_id or "")
        if (
            known is None
            or client_secret is None
            or not secrets.compare_digest(known, client_secret)
        ):
            return 401, {"error": "invalid_client"}
        if form.get("grant_type") != ["client_credentials"]:
            return 400, {"error": "unsupported_grant_type"}
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": client_id,
            "aud": self.audience,
            "iat": now,
            "exp": now + TOKEN_LIFETIME_S,
            "scope": " ".join(form.get("scope", [])),
        }
        self.issued += 1
        return 200, {
            "access_token": self._sign(claims),
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME_S,
        }

    def _sign(self, claims: dict[str, Any]) -> str:
        header = {"alg": "RS256", "typ": "JWT", "kid": self._kid}
        signing_input = ".".join(
            _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
        )
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(signature)}"


def _client_credentials(
    authorization: str | None, form: dict[str, list[str]]
) -> tuple[str | None, str | None]:
    if authorization and authorization.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(authorization[6:], validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None, None
        user, _, password = decoded.partition(":")
        return urllib.parse.unquote_plus(user), urllib.parse.unquote_plus(password)
    return form.get("client_id", [None])[0], form.get("client_secret", [None])[0]
