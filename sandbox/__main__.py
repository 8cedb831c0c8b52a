"""``segstream-sandbox``: local stand-ins for development, tests and benchmarks."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from sandbox.crm import CrmSimulatorSettings
from sandbox.crm.app import run as run_crm
from sandbox.generator import EventGenerator, GeneratorConfig, GeneratorSummary
from sandbox.kafka.broker import LocalKafka
from sandbox.kafka.security import BrokerSecurity, generate_security
from sandbox.run import run_all
from sandbox.secrets import ensure_compose_secrets
from sandbox.send import send_event

EXAMPLE_EVENT = {
    "customerId": "C-1001",
    "contactId": "7d0c6a1e-4c1b-4a8e-9a53-0f1f3e9b2a11",
    "channel": "voice",
    "startTime": "2026-11-28T10:15:00Z",
    "interactionSummary": "resolved-billing",
    "sentimentScore": 0.4,
    "tags": ["churn_risk"],
    "idempotency_key": "7d0c6a1e-4c1b-4a8e-9a53-0f1f3e9b2a11-2026-11-28T10:15:00Z",
}


def _kafka(args: argparse.Namespace) -> int:
    work = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="segstream-kafka-"))
    security = generate_security(work / "tls") if args.secure else None
    cluster = LocalKafka(work, nodes=args.nodes, ports=args.port and [args.port], security=security)
    cluster.start()
    print(f"KAFKA_BOOTSTRAP_SERVERS={cluster.bootstrap_servers}", flush=True)
    if security is not None:
        _print_secure_settings(cluster, security)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    cluster.stop()
    return 0


def _print_secure_settings(cluster: LocalKafka, security: BrokerSecurity) -> None:
    """How to reach the secured listeners, as settings of either service (any prefix)."""
    [(user, password)] = security.scram_users.items()
    password_file = security.directory / "scram-password"
    password_file.write_text(password + "\n")
    password_file.chmod(0o600)
    print("# mutual TLS (SEGSTREAM_BRIDGE_... or SEGSTREAM_CONSUMER_...):")
    print(f"KAFKA_BOOTSTRAP_SERVERS={cluster.ssl_bootstrap_servers}")
    print("..._KAFKA_SECURITY_PROTOCOL=SSL")
    print(f"..._KAFKA_SSL_CA_FILE={security.ca_file}")
    print(f"..._KAFKA_SSL_CERTIFICATE_FILE={security.client_certificate_file}")
    print(f"..._KAFKA_SSL_KEY_FILE={security.client_key_file}")
    print("# SCRAM over TLS (SCRAM-SHA-256 or SCRAM-SHA-512):")
    print(f"KAFKA_BOOTSTRAP_SERVERS={cluster.sasl_ssl_bootstrap_servers}")
    print("..._KAFKA_SECURITY_PROTOCOL=SASL_SSL")
    print(f"..._KAFKA_SSL_CA_FILE={security.ca_file}")
    print("..._KAFKA_SASL_MECHANISM=SCRAM-SHA-512")
    print(f"..._KAFKA_SASL_USERNAME={user}")
    print(f"..._KAFKA_SASL_PASSWORD_FILE={password_file}", flush=True)


def _send(args: argparse.Namespace) -> int:
    payload = json.loads(Path(args.file).read_text()) if args.file else EXAMPLE_EVENT
    secret = Path(args.secret_file).read_text().strip()
    status, body = asyncio.run(send_event(args.url, secret, payload))
    print(status, body)
    return 0 if status == 202 else 1


def _secrets(args: argparse.Namespace) -> int:
    for name, path in ensure_compose_secrets(Path(args.dir)).items():
        print(f"{name}: {path}")
    return 0


def _generate(args: argparse.Namespace) -> int:
    secret = None if args.unsigned else Path(args.secret_file).read_text().strip()
    config = GeneratorConfig(
        url=args.url,
        ledger=Path(args.ledger),
        secret=secret,
        rate=args.rate,
        duration_s=args.duration if args.events is None else None,
        max_events=args.events,
        customers=args.customers,
        zipf_exponent=args.zipf,
        malformed_share=args.malformed_share,
        duplicate_share=args.duplicate_share,
        seed=args.seed,
        max_event_bytes=args.max_event_bytes,
        drain_timeout_s=args.drain_timeout,
    )

    async def run() -> GeneratorSummary:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        return await EventGenerator(config).run(stop)

    summary = asyncio.run(run())
    print(json.dumps(summary.as_dict()), flush=True)
    healthy = summary.valid_rejected == 0 and summary.malformed_unexpected == 0
    return 0 if healthy and summary.abandoned == 0 else 1


def _add_generate_parser(commands: Any) -> None:
    generate = commands.add_parser(
        "generate",
        help="a realistic signed event stream at a target rate, with a ledger of accepted events",
    )
    generate.add_argument("--url", default="http://127.0.0.1:8080", help="the bridge's base URL")
    generate.add_argument("--secret-file", default=".run/webhook-secret")
    generate.add_argument("--unsigned", action="store_true", help="send no signature")
    generate.add_argument("--rate", type=float, default=50.0, help="new events per second")
    generate.add_argument("--duration", type=float, default=60.0, help="seconds of sending")
    generate.add_argument("--events", type=int, default=None, help="stop after N events instead")
    generate.add_argument("--customers", type=int, default=1000)
    generate.add_argument("--zipf", type=float, default=1.1, help="skew exponent (0 = uniform)")
    generate.add_argument("--malformed-share", type=float, default=0.01)
    generate.add_argument("--duplicate-share", type=float, default=0.02)
    generate.add_argument("--seed", type=int, default=None)
    generate.add_argument("--max-event-bytes", type=int, default=10 * 1024)
    generate.add_argument("--drain-timeout", type=float, default=30.0)
    generate.add_argument("--ledger", default=".run/ledger.jsonl", help="JSON lines, appended")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="segstream-sandbox", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="broker + topics + CRM simulator + bridge + consumer")
    commands.add_parser("crm", help="the CRM simulator alone (SEGSTREAM_CRM_SIM_* settings)")
    kafka = commands.add_parser("kafka", help="a local Apache Kafka cluster in the foreground")
    kafka.add_argument("--nodes", type=int, default=1)
    kafka.add_argument("--port", type=int, default=None, help="single node: its port")
    kafka.add_argument("--dir", default=None, help="data directory (default: a new temp dir)")
    kafka.add_argument(
        "--secure",
        action="store_true",
        help="also listen with SSL (mutual TLS) and SASL_SSL (SCRAM, PLAIN); prints the settings",
    )
    send = commands.add_parser("send", help="POST one signed event to the bridge")
    send.add_argument("--url", default="http://127.0.0.1:8080/v1/interactions/completed")
    send.add_argument("--secret-file", default=".run/webhook-secret")
    send.add_argument("--file", default=None, help="JSON payload (default: the seed's example)")
    _add_generate_parser(commands)
    secrets = commands.add_parser(
        "secrets", help="a webhook signing secret and a CRM token for deploy/compose.yaml"
    )
    secrets.add_argument("--dir", default="deploy/secrets", help="where (SEGSTREAM_SECRETS_DIR)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "run":
        sys.exit(run_all())
    if args.command == "crm":
        run_crm(CrmSimulatorSettings())
        return
    if args.command == "kafka":
        sys.exit(_kafka(args))
    if args.command == "generate":
        sys.exit(_generate(args))
    if args.command == "secrets":
        sys.exit(_secrets(args))
    sys.exit(_send(args))


if __name__ == "__main__":
    main()
