"""Kafka's own command-line tools (the classes behind kafka-consumer-groups.sh & co.), run from
the cached broker jars, so checks of groups and offsets use Kafka's view, not ours."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from typing import Final

from sandbox.errors import SandboxError
from sandbox.kafka.jars import ensure_kafka_jars

CONSUMER_GROUP_COMMAND: Final = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"


def run_kafka_tool(main_class: str, *args: str, timeout: float = 60.0) -> str:
    java = shutil.which("java")
    if java is None:
        raise SandboxError("java is not on PATH (Kafka's tools need a JRE 17 or newer)")
    jars = ensure_kafka_jars()
    result = subprocess.run(
        [java, "-Xmx256m", "-cp", jars.classpath, main_class, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise SandboxError(f"{main_class} {' '.join(args)} failed:\n{result.stderr[-2000:]}")
    return result.stdout


@dataclass(frozen=True)
class GroupOffset:
    topic: str
    partition: int
    committed: int | None
    log_end: int | None
    lag: int | None


def describe_group_offsets(bootstrap_servers: str, group_id: str) -> list[GroupOffset]:
    """``kafka-consumer-groups --describe --offsets``: the committed offset per partition."""
    output = run_kafka_tool(
        CONSUMER_GROUP_COMMAND,
        "--bootstrap-server",
        bootstrap_servers,
        "--describe",
        "--group",
        group_id,
        "--offsets",
    )
    rows = []
    header: list[str] | None = None
    for line in output.splitlines():
        fields = line.split()
        if not fields:
            continue
        if fields[0] == "GROUP":
            header = fields
            continue
        if header is None or len(fields) < len(header):
            continue
        row = dict(zip(header, fields, strict=False))
        rows.append(
            GroupOffset(
                topic=row["TOPIC"],
                partition=int(row["PARTITION"]),
                committed=_number(row["CURRENT-OFFSET"]),
                log_end=_number(row["LOG-END-OFFSET"]),
                lag=_number(row["LAG"]),
            )
        )
    return rows


def _number(text: str) -> int | None:
    return None if text == "-" else int(text)
