"""TLS and SASL for the Kafka clients: settings, secrets from files, librdkafka properties.

Managed clusters (Confluent Cloud, MSK, Aiven, Event Hubs, Strimzi with authentication) require
TLS and usually SASL. The names follow librdkafka's configuration properties
(https://github.com/confluentinc/librdkafka/blob/master/CONFIGURATION.md), with ``kafka_`` in
front and, for files, ``_file`` instead of ``.location``:

========================================== =========================================
setting (after the service's prefix)        librdkafka property
========================================== =========================================
``KAFKA_SECURITY_PROTOCOL``                 ``security.protocol``
``KAFKA_SSL_CA_FILE``                       ``ssl.ca.location``
``KAFKA_SSL_CERTIFICATE_FILE``              ``ssl.certificate.location`` (mutual TLS)
``KAFKA_SSL_KEY_FILE``                      ``ssl.key.location``
``KAFKA_SSL_KEY_PASSWORD[_FILE]``           ``ssl.key.password``
``KAFKA_SSL_ENDPOINT_IDENTIFICATION``       ``ssl.endpoint.identification.algorithm``
``KAFKA_SASL_MECHANISM``                    ``sasl.mechanism``
``KAFKA_SASL_USERNAME``                     ``sasl.username``
``KAFKA_SASL_PASSWORD[_FILE]``              ``sasl.password``
``KAFKA_SASL_OAUTHBEARER_*``                ``sasl.oauthbearer.*`` with ``method=oidc``
========================================== =========================================

Secrets are :class:`~pydantic.SecretStr` (never printed by ``repr`` or a validation error) or
files (a mounted Kubernetes Secret), read once when the settings are loaded: librdkafka reads its
configuration once per client, so a rotated password takes effect at the next start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Self

from pydantic import FilePath, PrivateAttr, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
# PLAIN is what Confluent Cloud's API keys and Azure Event Hubs use; SCRAM what MSK, Aiven and
# Strimzi offer; OAUTHBEARER (OIDC client credentials) what Confluent Cloud and Strimzi with
# Keycloak offer. GSSAPI (Kerberos) needs a keytab and a krb5 setup this project has no use for.
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]

_TLS_PROTOCOLS = frozenset({"SSL", "SASL_SSL"})
_SASL_PROTOCOLS = frozenset({"SASL_PLAINTEXT", "SASL_SSL"})


class KafkaSecuritySettings(BaseSettings):
    """The Kafka client security settings; a service's settings class inherits them and so
    reads them under its own prefix (``SEGSTREAM_CONSUMER_KAFKA_SASL_USERNAME``, ...)."""

    # No value, secret or not, ever appears in a validation error.
    model_config = SettingsConfigDict(hide_input_in_errors=True)

    kafka_security_protocol: SecurityProtocol = "PLAINTEXT"
    # Unset: librdkafka's default trust store (the system's CA bundle where it finds one).
    kafka_ssl_ca_file: FilePath | None = None
    kafka_ssl_certificate_file: FilePath | None = None
    kafka_ssl_key_file: FilePath | None = None
    kafka_ssl_key_password: SecretStr | None = None
    kafka_ssl_key_password_file: FilePath | None = None
    # Check that the broker's certificate names the host it was reached at (RFC 6125). Turning it
    # off lets anyone with a certificate from the same CA pose as the broker: never in production.
    kafka_ssl_endpoint_identification: bool = True

    kafka_sasl_mechanism: SaslMechanism | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_sasl_password_file: FilePath | None = None
    # OAUTHBEARER through OIDC client credentials (RFC 6749 section 4.4): librdkafka fetches and
    # refreshes the token itself.
    kafka_sasl_oauthbearer_token_endpoint_url: str | None = None
    kafka_sasl_oauthbearer_client_id: str | None = None
    kafka_sasl_oauthbearer_client_secret: SecretStr | None = None
    kafka_sasl_oauthbearer_client_secret_file: FilePath | None = None
    kafka_sasl_oauthbearer_scope: str | None = None
    # SASL extensions as key=value pairs, comma-separated (Confluent Cloud wants
    # logicalCluster=lkc-...,identityPoolId=pool-...).
    kafka_sasl_oauthbearer_extensions: str | None = None

    _ssl_key_password: str | None = PrivateAttr(default=None)
    _sasl_password: str | None = PrivateAttr(default=None)
    _oauthbearer_client_secret: str | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _consistent_kafka_security(self) -> Self:
        protocol = self.kafka_security_protocol
        tls = protocol in _TLS_PROTOCOLS
        files = (self.kafka_ssl_ca_file, self.kafka_ssl_certificate_file, self.kafka_ssl_key_file)
        if not tls and any(f is not None for f in files):
            raise ValueError(f"kafka_ssl_* files need a TLS security protocol, not {protocol}")
        if (self.kafka_ssl_certificate_file is None) != (self.kafka_ssl_key_file is None):
            raise ValueError("set kafka_ssl_certificate_file and kafka_ssl_key_file together")
        self._ssl_key_password = _secret(
            self.kafka_ssl_key_password, self.kafka_ssl_key_password_file, "kafka_ssl_key_password"
        )
        self._sasl_password = _secret(
            self.kafka_sasl_password, self.kafka_sasl_password_file, "kafka_sasl_password"
        )
        self._oauthbearer_client_secret = _secret(
            self.kafka_sasl_oauthbearer_client_secret,
            self.kafka_sasl_oauthbearer_client_secret_file,
            "kafka_sasl_oauthbearer_client_secret",
        )
        mechanism = self.kafka_sasl_mechanism
        if (protocol in _SASL_PROTOCOLS) != (mechanism is not None):
            raise ValueError(
                "kafka_sasl_mechanism goes with security protocol SASL_PLAINTEXT or SASL_SSL "
                f"(got protocol {protocol}, mechanism {mechanism or 'unset'})"
            )
        if mechanism in {"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} and (
            not self.kafka_sasl_username or self._sasl_password is None
        ):
            raise ValueError(f"SASL {mechanism} needs kafka_sasl_username and kafka_sasl_password")
        if mechanism == "OAUTHBEARER":
            needed = {
                "kafka_sasl_oauthbearer_token_endpoint_url": (
                    self.kafka_sasl_oauthbearer_token_endpoint_url
                ),
                "kafka_sasl_oauthbearer_client_id": self.kafka_sasl_oauthbearer_client_id,
                "kafka_sasl_oauthbearer_client_secret": self._oauthbearer_client_secret,
            }
            missing = [name for name, value in needed.items() if not value]
            if missing:
                raise ValueError(f"SASL OAUTHBEARER needs {', '.join(missing)}")
        return self

    def kafka_security_config(self) -> dict[str, Any]:
        """The librdkafka properties for these settings (secrets in clear: never log the result).

        PLAINTEXT with nothing else set gives ``{"security.protocol": "PLAINTEXT"}``.
        """
        protocol = self.kafka_security_protocol
        config: dict[str, Any] = {"security.protocol": protocol}
        if protocol in _TLS_PROTOCOLS:
            config["ssl.endpoint.identification.algorithm"] = (
                "https" if self.kafka_ssl_endpoint_identification else "none"
            )
            optional = {
                "ssl.ca.location": self.kafka_ssl_ca_file,
                "ssl.certificate.location": self.kafka_ssl_certificate_file,
                "ssl.key.location": self.kafka_ssl_key_file,
                "ssl.key.password": self._ssl_key_password,
            }
            config |= {name: str(value) for name, value in optional.items() if value is not None}
        mechanism = self.kafka_sasl_mechanism
        if mechanism is None:
            return config
        config["sasl.mechanism"] = mechanism
        if mechanism == "OAUTHBEARER":
            endpoint = self.kafka_sasl_oauthbearer_token_endpoint_url
            config |= {
                "sasl.oauthbearer.method": "oidc",
                "sasl.oauthbearer.token.endpoint.url": endpoint,
                "sasl.oauthbearer.client.id": self.kafka_sasl_oauthbearer_client_id,
                "sasl.oauthbearer.client.secret": self._oauthbearer_client_secret,
            }
            if self.kafka_sasl_oauthbearer_scope:
                config["sasl.oauthbearer.scope"] = self.kafka_sasl_oauthbearer_scope
            if self.kafka_sasl_oauthbearer_extensions:
                config["sasl.oauthbearer.extensions"] = self.kafka_sasl_oauthbearer_extensions
        else:
            config["sasl.username"] = self.kafka_sasl_username
            config["sasl.password"] = self._sasl_password
        return config


def _secret(value: SecretStr | None, path: Path | None, name: str) -> str | None:
    """The secret from its setting or its file (one of them at most), stripped; None if unset."""
    if value is not None and path is not None:
        raise ValueError(f"set {name} or {name}_file, not both")
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ValueError(f"{name}_file: cannot read {path}: {reason}") from exc
        return text.strip() or None
    if value is not None:
        return value.get_secret_value().strip() or None
    return None
