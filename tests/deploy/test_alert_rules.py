"""Alert rules and Prometheus configurations, checked and unit-tested by promtool."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from support.deploy.images import DEPLOY
from support.deploy.tools import tool

pytestmark = pytest.mark.deploy

PROMETHEUS = DEPLOY / "prometheus"
RULES = sorted((PROMETHEUS / "rules").glob("*.yml"))


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("promtool"), *args], capture_output=True, text=True, check=False)


def test_promtool_check_rules() -> None:
    assert RULES
    result = _promtool("check", "rules", *map(str, RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_test_rules() -> None:
    tests = sorted((PROMETHEUS / "tests").glob("*.yml"))
    assert tests
    result = _promtool("test", "rules", *map(str, tests))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus.host-network.yml"])
def test_promtool_check_config(config: str) -> None:
    result = _promtool("check", "config", "--syntax-only", str(PROMETHEUS / config))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_runbook_a_summary_and_a_severity() -> None:
    for path in RULES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" not in rule:
                    continue
                assert rule["annotations"].get("runbook", "").strip(), rule["alert"]
                assert rule["annotations"].get("summary", "").strip(), rule["alert"]
                assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]


def test_every_alert_has_a_promtool_unit_test() -> None:
    alerts = {
        rule["alert"]
        for path in RULES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    tested = {
        case["alertname"]
        for path in (PROMETHEUS / "tests").glob("*.yml")
        for test in yaml.safe_load(path.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case["exp_alerts"]
    }
    assert alerts - tested == set(), "alerts without a firing test case"
