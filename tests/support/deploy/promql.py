"""The PromQL a dashboard or an alert rule runs, and the metric names it reads.

Names come from a real PromQL parser (``promql_parser``, a port of Prometheus' own), not from
pattern matching: a name inside a function, an aggregation, a subquery or behind ``offset`` is
found, a label name or a function name is not mistaken for one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final

import promql_parser
from prometheus_client.parser import text_string_to_metric_families

# Grafana's interval macros, replaced by what Grafana would send for a one-hour range.
GRAFANA_MACROS: Final = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "1h",
}
# Series Prometheus writes itself for every target and every alert.
PROMETHEUS_SERIES: Final = frozenset(
    {
        "up",
        "scrape_duration_seconds",
        "scrape_samples_scraped",
        "scrape_samples_post_metric_relabeling",
        "scrape_series_added",
        "ALERTS",
        "ALERTS_FOR_STATE",
    }
)
# The sample names of a family in the text exposition format, by family type.
_SUFFIXES: Final = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
}


@dataclass(frozen=True)
class Expression:
    where: str  # "dashboard panel 'Lag per partition' (A)" or "alert SegstreamCircuitOpen"
    promql: str


def dashboard_expressions(dashboard: dict[str, Any]) -> list[Expression]:
    """Every query of every panel (rows' nested panels included), macros expanded."""
    found = []
    for panel in _panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            if "expr" in target:
                where = f"dashboard panel {panel.get('title')!r} ({target.get('refId')})"
                found.append(Expression(where, expand_grafana_macros(target["expr"])))
    return found


def _panels(panels: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def rule_expressions(rule_file: dict[str, Any]) -> list[Expression]:
    """Every alerting and recording rule's ``expr`` in a Prometheus rule file."""
    found = []
    for group in rule_file["groups"]:
        for rule in group["rules"]:
            where = f"alert {rule['alert']}" if "alert" in rule else f"record {rule['record']}"
            found.append(Expression(where, rule["expr"]))
    return found


def expand_grafana_macros(expr: str) -> str:
    for macro, value in GRAFANA_MACROS.items():
        expr = expr.replace(macro, value)
    return expr


def metric_names(promql: str) -> set[str]:
    """The metric names ``promql`` selects. Raises ValueError for a syntax error, or for a
    selector without a literal name (``{__name__=~"..."}``): such a query cannot be checked."""
    names: set[str] = set()

    def visit(node: Any) -> None:
        if not isinstance(node, promql_parser.VectorSelector):
            return
        if node.name:
            names.add(str(node.name))
            return
        literal = [m.value for m in node.matchers.matchers if m.name == "__name__" and
                   m.op == promql_parser.MatchOp.Equal]  # fmt: skip
        if not literal:
            raise ValueError(f"selects metrics by a pattern, not by name: {promql}")
        names.update(literal)

    promql_parser.walk(promql_parser.parse(promql), visit)
    return names


def exported_names(exposition: str) -> set[str]:
    """Every sample name a ``/metrics`` page declares, including families with no sample yet
    (a labelled counter before its first increment still has its ``# TYPE`` line)."""
    names = set()
    for family in text_string_to_metric_families(exposition):
        suffixes = _SUFFIXES.get(family.type, ("",))
        names.update(family.name + suffix for suffix in suffixes)
        names.update(sample.name for sample in family.samples)
    return names


def unknown_names(expressions: Iterable[Expression], exported: set[str]) -> dict[str, set[str]]:
    """For each expression that names metrics neither the services nor Prometheus export,
    those names, keyed by where the expression is."""
    known = exported | PROMETHEUS_SERIES
    missing = {}
    for expression in expressions:
        unknown = metric_names(expression.promql) - known
        if unknown:
            missing[expression.where] = unknown
    return missing
