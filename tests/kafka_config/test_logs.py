"""librdkafka's own log lines come out as the process's JSON log lines, with the client id."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

from kafka_config.logs import LibrdkafkaFields
from sandbox.kafka.broker import free_port

# A real consumer client of the consumer process, pointed at a port nobody listens on:
# librdkafka logs the refused connection (facility FAIL) from the thread that polls.
CLIENT_SCRIPT = """
import sys, time
from consumer.clients import KafkaClients
from consumer.logs import configure_logging

configure_logging()
producer = KafkaClients("127.0.0.1:{port}").producer("segstream-log-probe")
deadline = time.monotonic() + 20
while time.monotonic() < deadline:
    producer.poll(0.2)
    sys.stderr.flush()
"""


def test_a_real_client_logs_json_with_its_client_id_and_nothing_raw() -> None:
    script = CLIENT_SCRIPT.format(port=free_port())
    # The script polls for up to 20 s; one refused connect is logged within the first second,
    # so stop it as soon as a line is there rather than wait out the loop.
    process = subprocess.Popen(
        [sys.executable, "-c", script], stderr=subprocess.PIPE, text=True, bufsize=1
    )
    lines: list[str] = []
    try:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line)
            if '"librdkafka"' in line:
                break
    finally:
        process.kill()
        process.wait()
        if process.stderr is not None:
            process.stderr.close()
    assert lines, "the client logged nothing"
    records = [json.loads(line) for line in lines]  # every line is JSON: none printed raw
    [failure, *_] = [r for r in records if r.get("logger") == "librdkafka"]
    assert failure["level"] == "ERROR"
    assert failure["client_id"] == "segstream-log-probe"
    assert failure["kafka_client"] == "segstream-log-probe#producer-1"
    assert failure["facility"] == "FAIL"
    assert "Connect to ipv4#127.0.0.1" in failure["message"]
    assert failure["service"] == "segstream-consumer"


def test_records_not_from_confluent_kafka_pass_unchanged() -> None:
    record = logging.LogRecord(
        "librdkafka", logging.INFO, __file__, 1, "%s and %s", ("a", "b"), None
    )
    assert LibrdkafkaFields().filter(record)
    assert record.getMessage() == "a and b"
    assert not hasattr(record, "client_id")
