"""What every benchmark needs: the machine it ran on, a broker, a topic, a service process."""

from __future__ import annotations

import argparse
import json
import math
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


def load_average() -> tuple[float, float, float]:
    """The 1, 5 and 15-minute load averages, printed with every figure: on a shared machine a
    load above the core count means the figures are low by an unknown factor."""
    one, five, fifteen = os.getloadavg()
    return round(one, 2), round(five, 2), round(fifteen, 2)


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far, all its threads (librdkafka's too):
    ``utime`` and ``stime`` of ``/proc/<pid>/stat`` (proc(5))."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def resident_bytes(pid: int | str = "self") -> int:
    """Resident set size of ``pid`` now (``/proc/<pid>/statm``, pages x page size)."""
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE


def percentile(sorted_values: list[float], share: float) -> float:
    """Nearest-rank percentile of an ascending list (``share`` 0.99 = p99); NaN when empty."""
    if not sorted_values:
        return float("nan")
    rank = max(1, math.ceil(share * len(sorted_values)))
    return sorted_values[rank - 1]


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "memory_gib": round(os.sysconf("SC_PHYS_PAGES") * _PAGE / 2**30, 1),
        "load_average": load_average(),
    }


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
) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m module`` with exactly ``env``, log in ``work``, until ``ready_url`` is 200;
    stopped with SIGTERM (SIGKILL after 30 s) on exit, unless it is gone already."""
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
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """``--smoke`` (tiny sizes, for the tests) and ``--output`` (the results as JSON)."""
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (for the tests)")
    parser.add_argument("--output", default=None, help="also write the results as JSON here")


def finish(results: dict[str, Any], output: str | None) -> None:
    """Stamp the load average after the run, print it, and write ``results`` to ``output``."""
    results["load_average_after"] = load_average()
    print(f"load average after: {results['load_average_after']}", flush=True)
    if output:
        Path(output).write_text(json.dumps(results, indent=2) + "\n")
