"""TLS material and SASL users for the local broker's secured listeners.

:func:`generate_security` makes a throwaway certificate authority with ``trustme`` (a broker
certificate for 127.0.0.1, a client certificate for mutual TLS, and a second CA that signed
neither, for checks that an unknown CA is refused) and picks SCRAM and PLAIN users with random
passwords. :class:`~sandbox.kafka.broker.LocalKafka` then opens two more listeners per node:

* ``SSL``: TLS with a required client certificate (mutual TLS);
* ``SASL_SSL``: TLS, then SASL ``SCRAM-SHA-256``, ``SCRAM-SHA-512`` or ``PLAIN``, and
  ``OAUTHBEARER`` when :class:`OAuthValidation` names an OIDC provider's key set
  (:mod:`sandbox.kafka.oidc`). SCRAM credentials are stored by ``kafka-storage format
  --add-scram`` before the first start, as Kafka's documentation says for KRaft clusters
  (KIP-900); PLAIN users are listed in the listener's JAAS configuration; OAUTHBEARER tokens are
  checked by Kafka's ``OAuthBearerValidatorCallbackHandler`` (KIP-768) against the JWKS.

The broker reads PEM files directly (KIP-651): its key, unencrypted PKCS#8, and its certificate
chain in one keystore file, and the CA as its trust store.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

SCRAM_MECHANISMS: Final = ("SCRAM-SHA-256", "SCRAM-SHA-512")
SASL_MECHANISMS: Final = (*SCRAM_MECHANISMS, "PLAIN")
# The host name in the broker's certificate; clients reach the sandbox broker at this address.
BROKER_HOST: Final = "127.0.0.1"


@dataclass(frozen=True)
class OAuthValidation:
    """How the broker checks OAUTHBEARER tokens: the provider's key set, audience and issuer."""

    jwks_url: str
    audience: str
    issuer: str


@dataclass(frozen=True)
class BrokerSecurity:
    """Where the PEM files are, the SASL users (name -> password) of each kind, and the OIDC
    provider OAUTHBEARER tokens come from (none: no OAUTHBEARER)."""

    directory: Path
    scram_users: dict[str, str] = field(repr=False)
    plain_users: dict[str, str] = field(repr=False)
    oauth: OAuthValidation | None = None

    @property
    def ca_file(self) -> Path:
        """The CA that signed the broker's and the client's certificates."""
        return self.directory / "ca.pem"

    @property
    def other_ca_file(self) -> Path:
        """A CA that signed nothing here: a client trusting only it must be refused."""
        return self.directory / "other-ca.pem"

    @property
    def broker_keystore_file(self) -> Path:
        return self.directory / "broker-keystore.pem"

    @property
    def client_certificate_file(self) -> Path:
        return self.directory / "client-certificate.pem"

    @property
    def client_key_file(self) -> Path:
        return self.directory / "client-key.pem"


def generate_security(
    directory: Path, user: str = "segstream", *, oauth: OAuthValidation | None = None
) -> BrokerSecurity:
    """Write fresh certificates into ``directory`` and pick passwords for ``user``."""
    import trustme  # noqa: PLC0415 - a development dependency, needed only for a secured broker

    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="segstream sandbox")
    broker = ca.issue_cert(BROKER_HOST, common_name="segstream-sandbox-broker")
    client = ca.issue_cert("segstream-client.sandbox.invalid", common_name=user)
    security = BrokerSecurity(
        directory,
        scram_users={user: secrets.token_urlsafe(18)},
        plain_users={f"{user}-plain": secrets.token_urlsafe(18)},
        oauth=oauth,
    )
    security.ca_file.write_bytes(ca.cert_pem.bytes())
    security.other_ca_file.write_bytes(trustme.CA().cert_pem.bytes())
    security.broker_keystore_file.write_bytes(
        _pkcs8(broker.private_key_pem.bytes())
        + b"".join(pem.bytes() for pem in broker.cert_chain_pems)
    )
    security.client_certificate_file.write_bytes(
        b"".join(pem.bytes() for pem in client.cert_chain_pems)
    )
    security.client_key_file.write_bytes(_pkcs8(client.private_key_pem.bytes()))
    for path in (security.broker_keystore_file, security.client_key_file):
        path.chmod(0o600)
    return security


def listener_properties(security: BrokerSecurity) -> dict[str, str]:
    """The broker properties of the ``SSL`` and ``SASL_SSL`` listeners (not their addresses)."""
    plain_users = " ".join(
        f'user_{name}="{password}"' for name, password in security.plain_users.items()
    )
    properties = {
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(security.broker_keystore_file),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(security.ca_file),
        "listener.name.ssl.ssl.client.auth": "required",
        "sasl.enabled.mechanisms": ",".join(
            [*SASL_MECHANISMS, *(["OAUTHBEARER"] if security.oauth else [])]
        ),
        "listener.name.sasl_ssl.plain.sasl.jaas.config": (
            f"org.apache.kafka.common.security.plain.PlainLoginModule required {plain_users};"
        ),
    }
    for mechanism in SCRAM_MECHANISMS:
        properties[f"listener.name.sasl_ssl.{mechanism.lower()}.sasl.jaas.config"] = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        )
    if security.oauth is not None:
        prefix = "listener.name.sasl_ssl.oauthbearer."
        properties |= {
            f"{prefix}sasl.jaas.config": (
                "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;"
            ),
            f"{prefix}sasl.server.callback.handler.class": (
                "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler"
            ),
            "sasl.oauthbearer.jwks.endpoint.url": security.oauth.jwks_url,
            "sasl.oauthbearer.expected.audience": security.oauth.audience,
            "sasl.oauthbearer.expected.issuer": security.oauth.issuer,
        }
    return properties


def jvm_options(security: BrokerSecurity) -> list[str]:
    """System properties the broker needs: since Kafka 4.0 the OAUTHBEARER URLs a broker may
    call must be allowed explicitly (``org.apache.kafka.sasl.oauthbearer.allowed.urls``)."""
    if security.oauth is None:
        return []
    return [f"-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls={security.oauth.jwks_url}"]


def scram_format_arguments(security: BrokerSecurity) -> list[str]:
    """``kafka-storage format`` arguments that store every SCRAM user for both mechanisms."""
    arguments = []
    for mechanism in SCRAM_MECHANISMS:
        for name, password in security.scram_users.items():
            arguments += ["--add-scram", f"{mechanism}=[name={name},password={password}]"]
    return arguments


def _pkcs8(private_key_pem: bytes) -> bytes:
    """Kafka's PEM key store reads PKCS#8 (``BEGIN PRIVATE KEY``) only."""
    key = load_pem_private_key(private_key_pem, password=None)
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
