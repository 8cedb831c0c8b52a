"""``make run``: a local broker, the topics, the CRM simulator, the bridge and a consumer."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Final

from consumer.__main__ import create_topics
from consumer.settings import ConsumerSettings
from sandbox.kafka.broker import LocalKafka
from sandbox.processes import Service
from sandbox.secrets import ensure_secret_file, new_bearer_token, new_webhook_secret

RUN_DIR: Final = Path(".run")
LOCAL_KAFKA_PORT: Final = 9092
LOCAL_CONTROLLER_PORT: Final = 9093
_log = logging.getLogger("sandbox.run")


def run_all(run_dir: Path = RUN_DIR) -> int:
    run_dir = run_dir.resolve()
    webhook_secret_file = run_dir / "webhook-secret"
    crm_token_file = run_dir / "crm-token"
    ensure_secret_file(webhook_secret_file, new_webhook_secret)
    ensure_secret_file(crm_token_file, new_bearer_token)
    print(f"webhook signing secret: {webhook_secret_file}")
    print(f"CRM bearer token:       {crm_token_file}")

    broker: LocalKafka | None = None
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        broker = LocalKafka(
            run_dir / "kafka", ports=[LOCAL_KAFKA_PORT], controller_ports=[LOCAL_CONTROLLER_PORT]
        )
        print(
            f"starting a local Kafka broker on 127.0.0.1:{LOCAL_KAFKA_PORT} "
            f"(log {broker.log_files[0]})"
        )
        broker.start()
        bootstrap = broker.bootstrap_servers
        # One broker: the production replication defaults (3, min ISR 2) cannot be met here.
        os.environ.setdefault("SEGSTREAM_CONSUMER_TOPIC_REPLICATION_FACTOR", "1")
        os.environ.setdefault("SEGSTREAM_CONSUMER_TOPIC_MIN_INSYNC_REPLICAS", "1")
    env = {"KAFKA_BOOTSTRAP_SERVERS": bootstrap}
    os.environ.update(env)
    create_topics(ConsumerSettings())

    python = sys.executable
    services = [
        Service(
            "crm-sim",
            [python, "-m", "sandbox", "crm"],
            {**env, "SEGSTREAM_CRM_SIM_TOKEN_FILE": str(crm_token_file)},
            0,
        ),
        Service(
            "consumer",
            [python, "-m", "consumer", "run"],
            {**env, "SEGSTREAM_CONSUMER_CRM_TOKEN_FILE": str(crm_token_file)},
            1,
        ),
        Service(
            "bridge",
            [python, "-m", "producer_bridge"],
            {**env, "SEGSTREAM_BRIDGE_WEBHOOK_SECRETS_FILE": str(webhook_secret_file)},
            2,
        ),
    ]
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        for service in services:
            service.start()
        print(
            "bridge http://127.0.0.1:8080  crm-sim http://127.0.0.1:8090  "
            "consumer metrics http://127.0.0.1:9102/metrics  (Ctrl-C stops everything)"
        )
        while not stop.wait(0.5):
            exited = [s.name for s in services if not s.running()]
            if exited:
                print(f"{', '.join(exited)} exited; stopping the rest")
                return 1
        return 0
    finally:
        # The bridge first (no new events), then the consumer (drains and commits), then what
        # they talk to.
        for service in reversed(services):
            service.stop()
        if broker is not None:
            broker.stop()
        print("stopped")
