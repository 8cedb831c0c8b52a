"""Print deploy/prometheus/rules/segstream.rules.yml as a Prometheus Operator PrometheusRule.

The rules file is the one source (compose's Prometheus and ``promtool test rules`` read it);
kustomize cannot embed a file in a custom resource, so deploy/k8s/base/monitoring/
prometheusrule.yaml is this script's output, and tests/deploy/test_manifests.py fails when the
two differ. Regenerate with ``make deploy-generate``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

RULES = Path(__file__).parent / "rules" / "segstream.rules.yml"
HEADER = (
    "# Generated from deploy/prometheus/rules/segstream.rules.yml by deploy/prometheus/"
    "prometheusrule.py\n# (make deploy-generate); edit the rules file, not this one.\n"
)


def prometheus_rule(rules_text: str) -> str:
    groups = yaml.safe_load(rules_text)["groups"]
    resource = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "segstream"},
        "spec": {"groups": groups},
    }
    return HEADER + yaml.safe_dump(resource, sort_keys=False, width=100)


if __name__ == "__main__":
    sys.stdout.write(prometheus_rule(RULES.read_text(encoding="utf-8")))
