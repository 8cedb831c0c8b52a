"""Every benchmark script runs end to end at tiny sizes, and the report is written from them.

`make bench` is not part of `make test` (it takes most of an hour); this keeps its scripts from
rotting. The scripts run at once, each in its own process against the session's broker, because
most of their time is spent starting services; what is checked is what a reader of the report
relies on: every event accounted for, each figure present, the plots made.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bench.bridge.vegeta import VegetaMissingError, locate_vegeta
from bench.report import BENCHES, MODULES, render

ROOT = Path(__file__).resolve().parents[2]
NEEDS_VEGETA = {"latency", "bridge", "profile"}
SAME_SCRIPT = {"latency-goal"}  # bench.latency with other arguments: its smoke run is latency's
# Every script at once takes ~30 s on a quiet machine; CI shares its cores with other test
# processes. Past this, a script is stopped (with its services) and reported as failed.
SMOKE_DEADLINE_S = 420

# Alone, after the parallel part of `make test` (the scripts run at once among themselves, and
# several of them look for a sustained rate: beside other tests' processes on 2 cores they found
# none). The group keeps the module's fixture to one run when this module is run with -n.
pytestmark = [
    pytest.mark.kafka,
    pytest.mark.serial,
    pytest.mark.xdist_group("bench-smoke"),
    pytest.mark.timeout(SMOKE_DEADLINE_S + 120),
]


def _vegeta_or_none() -> str | None:
    try:
        return locate_vegeta()
    except (VegetaMissingError, subprocess.CalledProcessError):
        return None


@pytest.fixture(scope="module")
def smoke(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Runs every script with ``--smoke``; the JSON each wrote, or its log when it failed."""
    out = tmp_path_factory.mktemp("bench-smoke")
    vegeta = _vegeta_or_none()
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}
    if vegeta is not None:
        env["VEGETA"] = vegeta
    running = {}
    for name in BENCHES:
        if (name in NEEDS_VEGETA and vegeta is None) or name in SAME_SCRIPT:
            continue
        module = MODULES.get(name, f"bench.{name}")
        log = (out / f"{name}.log").open("wb")
        running[name] = (
            subprocess.Popen(
                [sys.executable, "-m", module, "--smoke", "--output", str(out / f"{name}.json")],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its services too are stopped if it overruns
            ),
            log,
        )
    results: dict[str, Any] = {"_dir": out}
    deadline = time.monotonic() + SMOKE_DEADLINE_S
    try:
        for name, (process, _) in running.items():
            try:
                code: int | str = process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                code = f"still running after {SMOKE_DEADLINE_S} s"
            path = out / f"{name}.json"
            if code == 0 and path.exists():
                results[name] = json.loads(path.read_text())
            else:
                results[name] = {"failed": code, "log": (out / f"{name}.log").read_text()[-3000:]}
    finally:
        for process, log in running.values():
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            log.close()
    return results


def result(smoke: dict[str, Any], name: str) -> dict[str, Any]:
    if name not in smoke:
        pytest.skip("vegeta is not installed and Go is not there to install it")
    data: dict[str, Any] = smoke[name]
    assert "failed" not in data, f"bench.{name} failed ({data.get('failed')}):\n{data.get('log')}"
    assert len(data["machine"]["load_average"]) == 3
    return data


def test_latency_every_accepted_event_reaches_the_crm(smoke: dict[str, Any]) -> None:
    steps = result(smoke, "latency")["steps"]
    assert {s["mode"] for s in steps} == {"segstream", "bare"}
    for step in steps:
        assert step["accepted"] == step["sent"] > 0
        assert step["written"] == step["accepted"]
        assert 0 < step["p50_ms"] <= step["p99_ms"] <= step["max_ms"]


def test_consumer_against_both_baselines(smoke: dict[str, Any]) -> None:
    data = result(smoke, "consumer")
    for key in ("naive_per_s", "bare_per_s", "segstream_per_s"):
        assert data[key] > 0
    assert data["segstream_cpu_s_per_1000"] > 0
    assert data["bare_cpu_s_per_1000"] > 0


def test_scaling_writes_every_event(smoke: dict[str, Any]) -> None:
    for run in result(smoke, "scaling")["runs"]:
        assert run["written"] >= run["events"]
        assert run["per_s"] > 0


def test_failover_loses_nothing_and_resumes_every_partition(smoke: dict[str, Any]) -> None:
    for run in result(smoke, "failover")["runs"]:
        assert run["written"] == run["events"] > 0
        assert 0 < run["survivor_partitions_resume_s"] <= run["pause_s"] < 120


def test_state_restores_every_customer_and_event_id(smoke: dict[str, Any]) -> None:
    data = result(smoke, "state")
    assert data["customers"] == 240
    assert data["dedupe_events"] == 240
    assert data["restore_s"] > 0
    assert data["dedupe_rebuild_s"] > 0


def test_memory_reaches_the_in_flight_bound(smoke: dict[str, Any]) -> None:
    for run in result(smoke, "memory")["runs"]:
        assert run["in_flight_seen"] >= run["max_in_flight"]
        assert run["full_rss_mib"] > 0


def test_ratelimit_writes_every_event_within_the_limit(smoke: dict[str, Any]) -> None:
    for run in result(smoke, "ratelimit")["runs"]:
        assert run["written"] == run["events"]
        assert run["rate_per_s"] > 0


def test_bridge_finds_a_sustained_rate_in_both_modes(smoke: dict[str, Any]) -> None:
    modes = result(smoke, "bridge")["modes"]
    assert set(modes) == {"baseline", "kafka"}
    for mode in modes.values():
        highest = mode["highest"]
        assert highest["statuses"].get("202") == highest["requests"] > 0


def test_profile_samples_both_processes(smoke: dict[str, Any]) -> None:
    processes = result(smoke, "profile")["processes"]
    assert set(processes) == {"consumer", "bridge"}


def test_report_renders_every_section_and_plot(smoke: dict[str, Any], tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    for name in BENCHES:
        source = "latency" if name in SAME_SCRIPT else name
        if source in smoke and "failed" not in smoke[source]:
            shutil.copy(smoke["_dir"] / f"{source}.json", results / f"{name}.json")
    report = render(results, tmp_path / "docs").read_text()
    assert "## Goals" in report
    for goal in ("| Consumer ≥ 50x", "| Consumer ≥ 0.9x", "| Limiter ≥ 0.95"):
        assert goal in report
    assert "Not measured" not in report or not {"latency", "bridge"} <= set(smoke)
    if "latency" in smoke:
        assert (tmp_path / "docs" / "perf" / "latency.png").stat().st_size > 1000
    assert (tmp_path / "docs" / "perf" / "scaling.png").stat().st_size > 1000
