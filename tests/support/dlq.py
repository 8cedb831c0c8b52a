"""``segstream-dlq`` as a real process (``python -m consumer.dlq``), configured per test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from confluent_kafka import Message

from schemas.topics import (
    HEADER_DLQ_OFFSET,
    HEADER_DLQ_PARTITION,
    HEADER_DLQ_TOPIC,
    HEADER_REPLAY_OFFSET,
    HEADER_REPLAY_PARTITION,
    HEADER_REPLAY_TOPIC,
    REPLAY_HEADER_PREFIX,
)
from support.kafka import read_all


class DlqTool:
    def __init__(
        self,
        *,
        bootstrap: str,
        dead_letter_topic: str,
        group_id: str,
        run_dir: Path,
        **settings: Any,
    ) -> None:
        self.bootstrap = bootstrap
        self.dead_letter_topic = dead_letter_topic
        self.parked_topic = f"{dead_letter_topic}.parked"
        self.audit_topic = f"{dead_letter_topic}.audit"
        self._run_dir = run_dir
        self._runs = 0
        self.env = {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "SEGSTREAM_DLQ_DEAD_LETTER_TOPIC": dead_letter_topic,
            "SEGSTREAM_DLQ_GROUP_ID": group_id,
            "SEGSTREAM_DLQ_OPERATOR": "pytest",
            "SEGSTREAM_DLQ_RATE_PER_S": "0",
            # The test session's broker is one node.
            "SEGSTREAM_DLQ_TOPIC_REPLICATION_FACTOR": "1",
            "SEGSTREAM_DLQ_TOPIC_MIN_INSYNC_REPLICAS": "1",
        }
        self.env |= {f"SEGSTREAM_DLQ_{k.upper()}": str(v) for k, v in settings.items()}

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "consumer.dlq", *args]

    def run(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """Run to the end; stdout and stderr are kept (and written to the run directory)."""
        result = subprocess.run(
            self.command(*args),
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        self._runs += 1
        log = self._run_dir / f"dlq-{self._runs}.log"
        log.write_text(f"$ {' '.join(args)}\n{result.stdout}\n--- stderr\n{result.stderr}")
        return result

    def run_json(self, *args: str, expect: int = 0) -> dict[str, Any]:
        result = self.run(*args, "--json")
        assert result.returncode == expect, result.stderr
        return dict(json.loads(result.stdout))

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        self._runs += 1
        with (self._run_dir / f"dlq-{self._runs}.log").open("wb") as log:
            # The child has its own copy of the descriptor; ours is closed at once.
            return subprocess.Popen(
                self.command(*args), env={**os.environ, **self.env}, stdout=log, stderr=log
            )

    def audit_records(self) -> list[dict[str, Any]]:
        return [json.loads(m.value() or b"") for m in read_all(self.bootstrap, self.audit_topic)]


def replays(records: list[Message]) -> list[Message]:
    """The records among ``records`` that a replay wrote (they carry provenance headers)."""
    return [
        m for m in records if any(k.startswith(REPLAY_HEADER_PREFIX) for k, _ in m.headers() or [])
    ]


def header(message: Message, name: str) -> str | None:
    values = [v for k, v in message.headers() or [] if k == name]
    if not values:
        return None
    value = values[-1]
    return value.decode() if isinstance(value, bytes) else value


def _position(message: Message, topic: str, partition: str, offset: str) -> tuple[str, int, int]:
    values = header(message, topic), header(message, partition), header(message, offset)
    if values[0] is None or values[1] is None or values[2] is None:
        raise AssertionError(f"no {topic}, {partition}, {offset} headers: {message.headers()}")
    return values[0], int(values[1]), int(values[2])


def provenance(message: Message) -> tuple[str, int, int]:
    """The (topic, partition, offset) of the failed record a replayed record re-publishes."""
    return _position(message, HEADER_REPLAY_TOPIC, HEADER_REPLAY_PARTITION, HEADER_REPLAY_OFFSET)


def origin(dead_letter: Message) -> tuple[str, int, int]:
    """The (topic, partition, offset) of the failed record a dead letter copies."""
    return _position(dead_letter, HEADER_DLQ_TOPIC, HEADER_DLQ_PARTITION, HEADER_DLQ_OFFSET)
