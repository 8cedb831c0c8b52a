"""What every benchmark needs: the machine it ran on, a broker, a topic, a service process."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient, NewTopic

from sandbox.kafka.broker import LocalKafka


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
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited; see {log.name}")
            try:
                with urllib.request.urlopen(ready_url, timeout=2) as response:  # noqa: S310
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} not ready; see {log.name}")
            time.sleep(0.1)
        yield
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
