"""One partition's state: the changelog format, retention, the horizon, restoring and merging."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumer.state import CustomerVersions, Version
from consumer.state.store import (
    META_KEY,
    PartitionStore,
    decode_meta,
    decode_versions,
    encode_meta,
    encode_versions,
)

DAY_MS = 86_400_000
versions = st.builds(Version, st.integers(-(10**13), 10**13), st.text(min_size=1, max_size=30))
customer_versions = st.dictionaries(
    st.sampled_from(["last_interaction_summary", "sentiment", "segmentation_tags"]), versions
).map(CustomerVersions)


def v(ms: int, event_id: str = "e") -> Version:
    return Version(ms, event_id)


@given(customer_versions, st.integers(0, 10**13))
def test_a_changelog_value_decodes_to_what_was_encoded(held: CustomerVersions, at: int) -> None:
    assert decode_versions(encode_versions(held, at)) == (held, at)


def test_shared_versions_are_written_once() -> None:
    same = v(1_000, "evt-1")
    document = json.loads(encode_versions(CustomerVersions(dict.fromkeys("abc", same)), 5))
    assert document == {"t": 5, "v": [[1_000, "evt-1"]], "a": {"a": 0, "b": 0, "c": 0}}


@pytest.mark.parametrize(
    "value", [b"{}", b'{"t": 1, "v": [[1]], "a": {}}', b'{"t":1,"v":[],"a":{"x":3}}', b"[]"]
)
def test_a_malformed_value_is_a_value_error(value: bytes) -> None:
    with pytest.raises(ValueError, match="customer-state record"):
        decode_versions(value)


def test_customers_unchanged_for_the_retention_are_forgotten_and_raise_the_horizon() -> None:
    store = PartitionStore(retention_ms=DAY_MS, max_customers=1_000)
    store.observe(0)
    store.apply("old", CustomerVersions({"sentiment": v(-5, "old-evt")}))
    store.observe(DAY_MS // 2)
    store.apply("recent", CustomerVersions({"sentiment": v(DAY_MS // 2, "recent-evt")}))
    store.observe(DAY_MS + 1)
    assert store.evictions_due()
    eviction = store.evict()
    assert eviction.customer_ids == ["old"]
    assert eviction.horizon == v(-5, "old-evt")
    assert store.horizon == v(-5, "old-evt")
    assert list(store) == ["recent"]
    assert store.versions("old") == CustomerVersions({})


def test_past_the_customer_bound_the_least_recently_changed_go_first() -> None:
    store = PartitionStore(retention_ms=DAY_MS, max_customers=10)
    store.observe(1)
    for n in range(11):
        store.apply(f"C-{n}", CustomerVersions({"sentiment": v(100 - n, f"e{n}")}))
    store.apply("C-0", CustomerVersions({"sentiment": v(200, "e-again")}))  # changed again: last
    assert store.evictions_due()
    eviction = store.evict()
    assert eviction.customer_ids == ["C-1", "C-2"]  # down to 90 % of the bound
    assert eviction.horizon == v(99, "e1")  # the newest of what was forgotten
    assert len(store) == 9
    assert "C-0" in list(store)


def test_evictions_run_once_per_share_of_the_retention() -> None:
    store = PartitionStore(retention_ms=100 * DAY_MS, max_customers=10)
    store.observe(0)
    assert not store.evictions_due()
    store.observe(DAY_MS - 1)
    assert not store.evictions_due()
    store.observe(DAY_MS)
    assert store.evictions_due()
    store.evict()
    assert not store.evictions_due()


def test_restore_replays_the_log_tombstones_and_the_horizon() -> None:
    store = PartitionStore(retention_ms=DAY_MS, max_customers=100)
    log = [
        (b"A", encode_versions(CustomerVersions({"sentiment": v(1)}), 10)),
        (b"B", encode_versions(CustomerVersions({"sentiment": v(2)}), 11)),
        (META_KEY, encode_meta(v(0, "gone"))),
        (b"B", None),
        (b"A", encode_versions(CustomerVersions({"segmentation_tags": v(3)}), 12)),
    ]
    for key, value in log:
        store.restore(key, value)
    assert list(store) == ["A"]
    assert store.horizon == v(0, "gone")
    assert store.stream_time_ms == 12
    # Two records of one customer merge per attribute (the larger version wins): a late record of
    # a former owner cannot take back what the partition's owner applied since.
    assert store.versions("A") == CustomerVersions({"sentiment": v(1), "segmentation_tags": v(3)})
    store.restore(b"A", encode_versions(CustomerVersions({"sentiment": v(0)}), 13))
    assert store.versions("A")["sentiment"] == v(1)


def test_the_horizon_only_moves_forward_on_restore() -> None:
    store = PartitionStore(retention_ms=DAY_MS, max_customers=100)
    store.restore(META_KEY, encode_meta(v(50)))
    store.restore(META_KEY, encode_meta(v(40)))
    store.restore(META_KEY, encode_meta(None))
    assert store.horizon == v(50)
    assert decode_meta(encode_meta(None)) is None


def test_a_restored_record_that_only_looks_like_ours_is_dropped_when_first_read() -> None:
    store = PartitionStore(retention_ms=DAY_MS, max_customers=100)
    with pytest.raises(ValueError, match="customer-state record"):
        store.restore(b"X", b'{"versions": []}')
    store.restore(b"A", b'{"t":5,"v":"not a list of versions"}')
    assert store.versions("A") == CustomerVersions({})
    assert list(store) == []
