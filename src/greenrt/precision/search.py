"""Accuracy-driven fp32 fallback: keep the earliest layers fp32 until the outputs meet a max error.

    result = search_fp32_prefix(candidates, evaluate, target=1e-2, log=print)
    config.keep_fp32 = result.keep_fp32()

The range fallback in ``convert.py`` catches values fp16 cannot hold; it cannot see error that builds up layer
after layer in a deep network (PP-OCRv4's detector: every activation in range, yet 1e-2 relative error on its
logits). This search measures that error directly, the way Polygraphy's ``debug precision --mode bisect
--direction forward`` does: ``evaluate(keep)`` builds the model with the first ``keep`` candidate nodes (in
topological order) held at fp32 and returns the max relative error of the checked outputs against fp32 on the
sample batches. A bisection over ``keep`` finds the shortest fp32 prefix that meets ``target`` in about
log2(len(candidates)) + 2 evaluations.

The prefix is one contiguous fp32 region with a single cast at its end, so it costs no extra casts; a forward
prefix suits vision networks, whose rounding error is amplified by everything after it. The result always meets
the target on the samples: bisection only ever returns a prefix that was measured to pass. If the error is not
monotone in the prefix length the prefix may be longer than needed, never failing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

from ..errors import GreenrtError


@dataclass
class SearchResult:
    target: float
    candidates: list[str]
    keep: int = 0  # length of the fp32 prefix chosen
    error_before: float = 0.0  # max rel error with no layer kept fp32
    error_after: float = 0.0  # with the chosen prefix
    trials: list[tuple[int, float]] = field(default_factory=list)  # (prefix length, max rel error) in order

    @property
    def reason(self) -> str:
        return (f"accuracy search: the first {self.keep} of {len(self.candidates)} reduced-precision layers stay "
                f"fp32 to meet max error {self.target:g} (all reduced: {self.error_before:.3g}, with these fp32: "
                f"{self.error_after:.3g})")

    def keep_fp32(self) -> dict[str, str]:
        return {name: self.reason for name in self.candidates[:self.keep]}

    def to_json(self) -> dict:
        return {"target": self.target, "layers": len(self.candidates), "kept_fp32": self.keep,
                "first_reduced_layer": self.candidates[self.keep] if self.keep < len(self.candidates) else None,
                "max_rel_err_before": self.error_before, "max_rel_err_after": self.error_after,
                "trials": [{"fp32_prefix": k, "max_rel_err": e} for k, e in self.trials]}


def search_fp32_prefix(candidates: Sequence[str], evaluate: Callable[[int], float], target: float,
                       log: Callable[[str], None] = print) -> SearchResult:
    """The shortest prefix of ``candidates`` to keep fp32 so that ``evaluate(prefix_length) <= target``."""
    if not target > 0:
        raise GreenrtError(f"the max error for the accuracy search must be > 0, got {target}")
    result = SearchResult(float(target), list(candidates))
    cache: dict[int, float] = {}

    def measure(k: int) -> float:
        if k not in cache:
            error = float(evaluate(k))
            cache[k] = error if error == error else float("inf")  # NaN: broken output, never "meets" a target
            result.trials.append((k, cache[k]))
            ok = "meets" if cache[k] <= target else "misses"
            log(f"accuracy search: {k:4d}/{len(candidates)} layers fp32 -> max rel err {cache[k]:.3g} "
                f"({ok} {target:g})")
        return cache[k]

    result.error_before = measure(0)
    if result.error_before <= target:
        result.error_after = result.error_before
        return result
    n = len(candidates)
    if n == 0:
        raise GreenrtError(
            f"the accuracy search cannot meet max error {target:g}: the error is {result.error_before:.3g} with no "
            "layer left in reduced precision to move to fp32 (the rest comes from the graph passes or overrides); "
            "raise --max-error or check the model with `greenrt compare`")
    if measure(n) > target:
        raise GreenrtError(
            f"the accuracy search cannot meet max error {target:g}: with all {n} reduced-precision layers kept fp32 "
            f"the error is still {cache[n]:.3g} (the rest comes from the graph passes or fp32 itself); raise "
            "--max-error or check the model with `greenrt compare`")
    lo, hi = 0, n  # measure(lo) misses, measure(hi) meets
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if measure(mid) <= target:
            hi = mid
        else:
            lo = mid
    result.keep, result.error_after = hi, cache[hi]
    return result


__all__ = ["SearchResult", "search_fp32_prefix"]
