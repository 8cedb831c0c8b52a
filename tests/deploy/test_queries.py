"""The dashboard's panels and the alert rules against a real Prometheus scraping the services.

A Prometheus server (Debian's package) on 127.0.0.1 scrapes a running bridge and a running
consumer every second and evaluates the alert rules. Every PromQL expression of the dashboard
and of the rules must evaluate without error, and every metric it names must be one the
services export (read from their own /metrics pages, so a metric added to a service counts as
soon as it exists) or one Prometheus writes itself (``up``).
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from sandbox.kafka.broker import free_port
from sandbox.secrets import ensure_secret_file, new_webhook_secret
from support.consumers import ConsumerGroup
from support.crm import CrmSimulator
from support.deploy.images import DEPLOY
from support.deploy.prometheus import PrometheusError, PrometheusServer

# Its parser comes with the deploy extra (make deploy-check installs it).
pytest.importorskip("promql_parser", reason="needs the deploy extra")
from support.deploy.promql import (
    Expression,
    dashboard_expressions,
    exported_names,
    metric_names,
    rule_expressions,
    unknown_names,
)
from support.deploy.tools import tool
from support.kafka import TopicFactory
from support.services import ServiceProcess
from support.waiting import eventually_sync

pytestmark = [pytest.mark.deploy, pytest.mark.kafka]

DASHBOARD = DEPLOY / "grafana" / "dashboards" / "segstream.json"
RULES = DEPLOY / "prometheus" / "rules" / "segstream.rules.yml"


@dataclass
class Scraped:
    prometheus: PrometheusServer
    metrics_urls: dict[str, str]  # job -> /metrics URL

    def exported(self) -> set[str]:
        names: set[str] = set()
        for url in self.metrics_urls.values():
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
                names |= exported_names(response.read().decode())
        return names


def _expressions() -> list[Expression]:
    return dashboard_expressions(json.loads(DASHBOARD.read_text())) + rule_expressions(
        yaml.safe_load(RULES.read_text())
    )


@pytest.fixture(scope="module")
def scraped(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scraped]:
    """A bridge, a consumer (with its CRM simulator) and Prometheus, as processes."""
    tool("prometheus")
    run_dir = tmp_path_factory.mktemp("queries")
    factory = TopicFactory(kafka_bootstrap)
    topic, dlq = factory.create("interactions", partitions=3), factory.create("dlq", partitions=1)
    secret_file = run_dir / "webhook-secret"
    ensure_secret_file(secret_file, new_webhook_secret)
    bridge_port = free_port()
    crm = CrmSimulator(run_dir)
    group = ConsumerGroup(
        bootstrap=kafka_bootstrap, topic=topic, dlq=dlq, group_id=f"queries-{topic}",
        crm=crm, run_dir=run_dir,
    )  # fmt: skip
    bridge = ServiceProcess(
        "bridge",
        ["producer_bridge"],
        {
            "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "SEGSTREAM_BRIDGE_PORT": str(bridge_port),
            "SEGSTREAM_BRIDGE_TOPIC": topic,
            "SEGSTREAM_BRIDGE_WEBHOOK_SECRETS_FILE": str(secret_file),
        },
        run_dir,
    )
    prometheus = None
    try:
        bridge.wait_http(f"http://127.0.0.1:{bridge_port}/healthz")
        group.start()
        consumer_metrics = group.metrics_urls[0]
        jobs = {
            "segstream-bridge": [f"127.0.0.1:{bridge_port}"],
            "segstream-consumer": [consumer_metrics.removeprefix("http://").split("/")[0]],
        }
        prometheus = PrometheusServer(run_dir / "prometheus", jobs, [RULES])
        yield Scraped(
            prometheus,
            {
                "segstream-bridge": f"http://127.0.0.1:{bridge_port}/metrics",
                "segstream-consumer": consumer_metrics,
            },
        )
    finally:
        if prometheus is not None:
            prometheus.stop()
        codes = {"bridge": bridge.stop(), **group.stop_all(), "crm": crm.stop()}
    assert codes == dict.fromkeys(codes, 0), codes


def test_prometheus_scrapes_the_bridge_and_the_consumer(scraped: Scraped) -> None:
    def targets_up() -> dict[str, str] | None:
        result = scraped.prometheus.query("up")
        up = {r["metric"]["job"]: r["value"][1] for r in result}
        return up if up == {"segstream-bridge": "1", "segstream-consumer": "1"} else None

    assert eventually_sync(targets_up, timeout=60)
    # Real samples from each service, not only Prometheus' own `up`.
    assert scraped.prometheus.query("segstream_bridge_requests_total")
    assert scraped.prometheus.query("segstream_consumer_assigned_partitions")


def test_every_dashboard_and_rule_expression_evaluates(scraped: Scraped) -> None:
    expressions = _expressions()
    assert len(expressions) > 20
    errors = {}
    for expression in expressions:
        try:
            scraped.prometheus.query(expression.promql)
        except PrometheusError as exc:
            errors[expression.where] = str(exc)
    assert errors == {}


def test_every_alert_rule_evaluates_without_error_in_prometheus(scraped: Scraped) -> None:
    def evaluated() -> list[dict[str, Any]] | None:
        groups = scraped.prometheus.api("rules")["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        done = rules and all(not r["lastEvaluation"].startswith("0001") for r in rules)
        return rules if done else None

    rules = eventually_sync(evaluated, timeout=60)
    alerts = rule_expressions(yaml.safe_load(RULES.read_text()))
    assert {r["name"] for r in rules} == {e.where.removeprefix("alert ") for e in alerts}
    assert {r["name"]: (r["health"], r.get("lastError", "")) for r in rules} == {
        r["name"]: ("ok", "") for r in rules
    }


def test_panels_and_rules_name_only_metrics_the_services_export(scraped: Scraped) -> None:
    missing = unknown_names(_expressions(), scraped.exported())
    assert missing == {}, "panels or rules read metrics no service exports"


def test_a_panel_naming_a_missing_metric_is_caught(scraped: Scraped) -> None:
    """The check above can fail: a typo in a panel is reported, with where it is."""
    exported = scraped.exported()
    assert "segstream_consumer_records_total" in exported
    typo = Expression(
        "dashboard panel 'typo' (A)", "sum(rate(segstream_consumer_record_total[1m]))"
    )
    offset = Expression("alert Typo", "x_total offset 5m > on() group_left vector(1)")
    assert unknown_names([typo, offset], exported) == {
        "dashboard panel 'typo' (A)": {"segstream_consumer_record_total"},
        "alert Typo": {"x_total"},
    }


def test_names_come_from_the_parser_not_from_label_or_function_names() -> None:
    promql = 'histogram_quantile(0.99, sum by (le, result) (rate(a_bucket{result="ok"}[5m])))'
    assert metric_names(promql) == {"a_bucket"}
    assert metric_names('{__name__="b_total"} / ignoring(x) c') == {"b_total", "c"}
    with pytest.raises(ValueError, match="pattern"):
        metric_names('{__name__=~"segstream_.*"}')


def test_exported_names_include_families_without_samples_yet() -> None:
    page = (
        "# HELP x_total a counter\n# TYPE x_total counter\n"
        "# HELP h a histogram\n# TYPE h histogram\n"
        "# HELP g a gauge\n# TYPE g gauge\ng 1.0\n"
    )
    assert exported_names(page) == {
        "x_total", "x_created", "h_bucket", "h_count", "h_sum", "h_created", "g",
    }  # fmt: skip
