"""Consumer instances as real processes (``python -m consumer run``), configured per test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sandbox.kafka.broker import free_port
from support.crm import CrmSimulator
from support.services import ServiceProcess


class ConsumerGroup:
    """Starts and stops ``segstream-consumer`` instances of one group against one topic."""

    def __init__(
        self,
        *,
        bootstrap: str,
        topic: str,
        dlq: str,
        group_id: str,
        crm: CrmSimulator,
        run_dir: Path,
        **settings: Any,
    ) -> None:
        self._run_dir = run_dir
        self._env = {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "SEGSTREAM_CONSUMER_TOPIC": topic,
            "SEGSTREAM_CONSUMER_DEAD_LETTER_TOPIC": dlq,
            "SEGSTREAM_CONSUMER_GROUP_ID": group_id,
            "SEGSTREAM_CONSUMER_CRM_BASE_URL": crm.url,
            "SEGSTREAM_CONSUMER_CRM_TOKEN_FILE": str(crm.token_file),
            # Fast failover for tests that kill an instance: the group notices in 6 s.
            "SEGSTREAM_CONSUMER_SESSION_TIMEOUT_MS": "6000",
            "SEGSTREAM_CONSUMER_CRM_RATE_LIMIT_PER_S": "0",
            "SEGSTREAM_CONSUMER_STATISTICS_INTERVAL_MS": "1000",
        }
        self._env |= {f"SEGSTREAM_CONSUMER_{k.upper()}": str(v) for k, v in settings.items()}
        self.instances: list[ServiceProcess] = []
        self.metrics_urls: list[str] = []

    @property
    def group_id(self) -> str:
        return self._env["SEGSTREAM_CONSUMER_GROUP_ID"]

    @property
    def run_dir(self) -> Path:
        return self._run_dir

    def start(self, **overrides: Any) -> ServiceProcess:
        port = free_port()
        env = self._env | {"SEGSTREAM_CONSUMER_METRICS_PORT": str(port)}
        env |= {f"SEGSTREAM_CONSUMER_{k.upper()}": str(v) for k, v in overrides.items()}
        name = f"consumer-{len(self.instances) + 1}"
        instance = ServiceProcess(name, ["consumer", "run"], env, self._run_dir)
        url = f"http://127.0.0.1:{port}/metrics"
        instance.wait_http(url)
        self.instances.append(instance)
        self.metrics_urls.append(url)
        return instance

    def stop_all(self) -> dict[str, int]:
        return {i.name: i.stop() for i in self.instances if not i.stopped}
