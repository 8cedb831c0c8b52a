"""What every benchmark needs: the machine it ran on, a broker, a topic, a service process."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient, NewTopic

from sandbox.errors import SandboxError
from sandbox.kafka.broker import LocalKafka
from sandbox.processes import wait_for_http


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "python": platform.python_version()}


@contextmanager
def kafka_cluster(work: Path) -> Iterator[str]:
    """``KAFKA_BOOTSTRAP_SERVERS`` when set, else a local broker for the benchmark's duration."""
    existing = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if existing:
        yield existing
        return
    with LocalKafka(work / "kafka") as cluster:
        yield cluster.bootstrap_servers


def create_topic(bootstrap: str, partitions: int, prefix: str = "bench") -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        future.result(30)
    return name


@contextmanager
def service(
    name: str, module: str, env: Mapping[str, str], work: Path, ready_url: str, *args: str
) -> Iterator[None]:
    """``python -m module`` with exactly ``env``, log in ``work``, until ``ready_url`` is 200."""
    log = (work / f"{name}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        env=dict(env),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        try:
            wait_for_http(ready_url, process, timeout=60, interval=0.1)
        except SandboxError as exc:
            raise RuntimeError(f"{name}: {exc}; see {log.name}") from exc
        yield
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
