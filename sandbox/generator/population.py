"""Who the events are about: many customers, a few of them far busier than the rest (Zipf)."""

from __future__ import annotations

import itertools
import random


class ZipfCustomers:
    """``count`` customer ids; the one of rank ``k`` is picked with probability ∝ 1 / k^s.

    Real contact-center traffic is like this: a handful of customers call again and again, most
    appear once. It is what makes per-customer ordering matter (the busy ones have several events
    in flight at once) and what skews Kafka partitions.
    """

    def __init__(self, count: int, exponent: float, rng: random.Random, prefix: str = "C") -> None:
        if count < 1:
            raise ValueError("at least one customer")
        if exponent < 0:
            raise ValueError("the Zipf exponent is >= 0 (0 = uniform)")
        width = len(str(count))
        self.ids = [f"{prefix}-{rank:0{width}d}" for rank in range(1, count + 1)]
        self._cumulative = list(
            itertools.accumulate(1.0 / rank**exponent for rank in range(1, count + 1))
        )
        self._rng = rng

    def pick(self) -> str:
        chosen: str = self._rng.choices(self.ids, cum_weights=self._cumulative)[0]
        return chosen

    def share_of_top(self, top: int) -> float:
        """The probability mass of the ``top`` busiest customers (for reports and tests)."""
        share: float = self._cumulative[min(top, len(self.ids)) - 1] / self._cumulative[-1]
        return share
