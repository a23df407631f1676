"""The arithmetic of the gateway benchmark: percentiles of one run, and how interleaved rounds are combined.

Each round measures every target once, back to back (their order alternating from round to round), so a target's
run and the direct run it is compared with saw nearly the same machine. A comparison is therefore made round by
round (fe's figure over the direct figure of the same round) and the median of those per-round comparisons is
reported; the spread over the rounds shows how much the machine drifted.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol, TypeVar


class RoundItem(Protocol):
    """One target's figures from one round."""

    @property
    def target(self) -> str: ...

    @property
    def round_index(self) -> int: ...


R = TypeVar("R", bound=RoundItem)


def percentile(values: Iterable[float], fraction: float) -> float:
    """Nearest-rank percentile (`fraction` in (0, 1]): the smallest value with at least that share of the values
    at or below it. p50 of [1, 2, 3, 4] is 2, p99 of 100 values is the 99th smallest."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    if not 0 < fraction <= 1:
        raise ValueError("fraction must be in (0, 1]")
    rank = math.ceil(fraction * len(ordered))
    return ordered[max(rank, 1) - 1]


def median(values: Iterable[float]) -> float:
    """The ordinary median (the mean of the middle two for an even count)."""
    collected = list(values)
    if not collected:
        raise ValueError("no values")
    return float(statistics.median(collected))


def spread(values: Iterable[float]) -> tuple[float, float]:
    collected = list(values)
    if not collected:
        raise ValueError("no values")
    return min(collected), max(collected)


def paired(
    rounds: Sequence[R],
    target: str,
    baseline: str,
    value: Callable[[R], float],
    combine: Callable[[float, float], float],
) -> list[float]:
    """For every round that measured both `target` and `baseline`: combine(target's value, baseline's value).
    Rounds are told apart by their `round_index`."""
    by_round: dict[int, dict[str, float]] = {}
    for item in rounds:
        by_round.setdefault(item.round_index, {})[item.target] = value(item)
    return [
        combine(values[target], values[baseline])
        for _, values in sorted(by_round.items())
        if target in values and baseline in values
    ]


def ratio(a: float, b: float) -> float:
    return a / b if b else math.nan


def difference(a: float, b: float) -> float:
    return a - b
