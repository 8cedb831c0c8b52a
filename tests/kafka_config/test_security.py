"""Kafka TLS and SASL settings as an operator gives them, and the librdkafka properties they map to.

Both services inherit the same settings; the consumer's and the bridge's prefixes are both used
here so a mapping that only one of them applied would fail.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka import Producer
from pydantic import ValidationError
from pydantic_settings import BaseSettings

from consumer.settings import ConsumerSettings
from producer_bridge.settings import BridgeSettings

SERVICES: list[tuple[type[BaseSettings], str]] = [
    (ConsumerSettings, "SEGSTREAM_CONSUMER_"),
    (BridgeSettings, "SEGSTREAM_BRIDGE_"),
]


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env file
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)


def pem_files(tmp_path: Path) -> dict[str, Path]:
    files = {name: tmp_path / f"{name}.pem" for name in ("ca", "cert", "key")}
    for path in files.values():
        path.write_text("-----BEGIN CERTIFICATE-----\n")  # existence is what settings check
    return files


def load(
    settings: type[BaseSettings], prefix: str, monkeypatch: pytest.MonkeyPatch, **env: str
) -> BaseSettings:
    for name, value in env.items():
        monkeypatch.setenv(f"{prefix}{name.upper()}", value)
    return settings()


@pytest.mark.parametrize(("settings", "prefix"), SERVICES)
def test_plaintext_is_the_default(
    settings: type[BaseSettings], prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load(settings, prefix, monkeypatch).kafka_security_config()  # type: ignore[attr-defined]
    assert config == {"security.protocol": "PLAINTEXT"}


@pytest.mark.parametrize(("settings", "prefix"), SERVICES)
def test_mutual_tls_maps_every_file(
    settings: type[BaseSettings], prefix: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    files = pem_files(tmp_path)
    (tmp_path / "key-password").write_text("k3y-pa55\n")
    loaded = load(
        settings,
        prefix,
        monkeypatch,
        kafka_security_protocol="SSL",
        kafka_ssl_ca_file=str(files["ca"]),
        kafka_ssl_certificate_file=str(files["cert"]),
        kafka_ssl_key_file=str(files["key"]),
        kafka_ssl_key_password_file=str(tmp_path / "key-password"),
    )
    assert loaded.kafka_security_config() == {  # type: ignore[attr-defined]
        "security.protocol": "SSL",
        "ssl.endpoint.identification.algorithm": "https",
        "ssl.ca.location": str(files["ca"]),
        "ssl.certificate.location": str(files["cert"]),
        "ssl.key.location": str(files["key"]),
        "ssl.key.password": "k3y-pa55",
    }


def test_hostname_verification_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGSTREAM_CONSUMER_KAFKA_SECURITY_PROTOCOL", "SSL")
    monkeypatch.setenv("SEGSTREAM_CONSUMER_KAFKA_SSL_ENDPOINT_IDENTIFICATION", "false")
    config = ConsumerSettings().kafka_security_config()
    assert config["ssl.endpoint.identification.algorithm"] == "none"


@pytest.mark.parametrize(("settings", "prefix"), SERVICES)
@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_with_a_password_from_a_file(
    settings: type[BaseSettings],
    prefix: str,
    mechanism: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    (tmp_path / "password").write_text("s3cret-from-file\n")
    loaded = load(
        settings,
        prefix,
        monkeypatch,
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism=mechanism,
        kafka_sasl_username="segstream",
        kafka_sasl_password_file=str(tmp_path / "password"),
    )
    assert loaded.kafka_security_config() == {  # type: ignore[attr-defined]
        "security.protocol": "SASL_SSL",
        "ssl.endpoint.identification.algorithm": "https",
        "sasl.mechanism": mechanism,
        "sasl.username": "segstream",
        "sasl.password": "s3cret-from-file",
    }


@pytest.mark.parametrize(("settings", "prefix"), SERVICES)
def test_oauthbearer_uses_oidc_client_credentials(
    settings: type[BaseSettings], prefix: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "client-secret").write_text("oidc-s3cret")
    loaded = load(
        settings,
        prefix,
        monkeypatch,
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="OAUTHBEARER",
        kafka_sasl_oauthbearer_token_endpoint_url="https://idp.example/oauth2/token",
        kafka_sasl_oauthbearer_client_id="segstream",
        kafka_sasl_oauthbearer_client_secret_file=str(tmp_path / "client-secret"),
        kafka_sasl_oauthbearer_scope="kafka",
        kafka_sasl_oauthbearer_extensions="logicalCluster=lkc-1,identityPoolId=pool-2",
    )
    config = loaded.kafka_security_config()  # type: ignore[attr-defined]
    assert config == {
        "security.protocol": "SASL_SSL",
        "ssl.endpoint.identification.algorithm": "https",
        "sasl.mechanism": "OAUTHBEARER",
        "sasl.oauthbearer.method": "oidc",
        "sasl.oauthbearer.token.endpoint.url": "https://idp.example/oauth2/token",
        "sasl.oauthbearer.client.id": "segstream",
        "sasl.oauthbearer.client.secret": "oidc-s3cret",
        "sasl.oauthbearer.scope": "kafka",
        "sasl.oauthbearer.extensions": "logicalCluster=lkc-1,identityPoolId=pool-2",
    }
    # librdkafka itself accepts the mapping (it refuses unknown or ill-formed properties here);
    # no broker is dialled before the first poll.
    Producer({"bootstrap.servers": "127.0.0.1:1", **config})


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({"kafka_sasl_mechanism": "SCRAM-SHA-256"}, "goes with security protocol"),
        ({"kafka_security_protocol": "SASL_SSL"}, "goes with security protocol"),
        (
            {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "SCRAM-SHA-512"},
            "needs kafka_sasl_username and kafka_sasl_password",
        ),
        (
            {
                "kafka_security_protocol": "SASL_PLAINTEXT",
                "kafka_sasl_mechanism": "PLAIN",
                "kafka_sasl_username": "u",
                "kafka_sasl_password": "p",
                "kafka_sasl_password_file": "{tmp}/password",
            },
            "set kafka_sasl_password or kafka_sasl_password_file, not both",
        ),
        (
            {
                "kafka_security_protocol": "SASL_SSL",
                "kafka_sasl_mechanism": "OAUTHBEARER",
                "kafka_sasl_oauthbearer_client_id": "c",
            },
            "kafka_sasl_oauthbearer_token_endpoint_url, kafka_sasl_oauthbearer_client_secret",
        ),
        ({"kafka_ssl_ca_file": "{tmp}/ca.pem"}, "need a TLS security protocol"),
        (
            {"kafka_security_protocol": "SSL", "kafka_ssl_certificate_file": "{tmp}/cert.pem"},
            "together",
        ),
        ({"kafka_security_protocol": "SSL", "kafka_ssl_ca_file": "{tmp}/missing.pem"}, "file"),
        ({"kafka_security_protocol": "TLS"}, "kafka_security_protocol"),
    ],
)
def test_settings_that_cannot_work_are_refused_by_name(
    env: dict[str, str], complaint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pem_files(tmp_path)
    (tmp_path / "password").write_text("p")
    for name, value in env.items():
        monkeypatch.setenv(f"SEGSTREAM_CONSUMER_{name.upper()}", value.format(tmp=tmp_path))
    with pytest.raises(ValidationError) as caught:
        ConsumerSettings()
    assert complaint in str(caught.value)


@pytest.mark.parametrize(("settings", "prefix"), SERVICES)
def test_no_secret_is_shown_by_repr_or_a_settings_error(
    settings: type[BaseSettings], prefix: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secrets = {
        "kafka_sasl_password": "sasl-pa55word-value",
        "kafka_ssl_key_password": "key-pa55word-value",
        "kafka_sasl_oauthbearer_client_secret": "oidc-secret-value",
    }
    good = load(
        settings,
        prefix,
        monkeypatch,
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_sasl_username="segstream",
        **secrets,
    )
    assert not any(secret in repr(good) for secret in secrets.values())
    # Now make it invalid: the error names what is wrong and quotes no value.
    monkeypatch.setenv(f"{prefix}KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")
    with pytest.raises(ValidationError) as caught:
        settings()
    assert "kafka_sasl_mechanism" in str(caught.value)
    assert not any(secret in str(caught.value) for secret in secrets.values())


def test_an_unreadable_secret_file_is_named_not_quoted(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    binary = tmp_path / "password"
    binary.write_bytes(b"\xff\xfe not text")
    monkeypatch.setenv("SEGSTREAM_BRIDGE_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("SEGSTREAM_BRIDGE_KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("SEGSTREAM_BRIDGE_KAFKA_SASL_USERNAME", "segstream")
    monkeypatch.setenv("SEGSTREAM_BRIDGE_KAFKA_SASL_PASSWORD_FILE", str(binary))
    with pytest.raises(ValidationError) as caught:
        BridgeSettings()
    assert f"kafka_sasl_password_file: cannot read {binary}: not UTF-8 text" in str(caught.value)
