"""Read a value off a live ``/metrics`` page, as Prometheus would."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def sample(url: str, name: str, **labels: str) -> float | None:
    """The sample ``name`` (with these labels) on the page, or None when it is not there."""
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and all(found.labels.get(k) == v for k, v in labels.items()):
                return float(found.value)
    return None


def metric(url: str, name: str, **labels: str) -> float:
    """Like :func:`sample`, with 0 for a counter or gauge that has not appeared yet."""
    value = sample(url, name, **labels)
    return 0.0 if value is None else value
