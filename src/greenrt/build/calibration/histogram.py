"""Streaming histograms of |x|, one per tensor, and the calibrators that read a clipping threshold (amax) from them.

A histogram has a fixed number of bins over [0, range]; a batch with a larger |x| grows the range to the smallest
power-of-two multiple that holds it and merges that many adjacent bins into one, so counts stay exact at the
coarser width and memory never grows with the number of samples (TensorRT's calibrators keep 2048 bins the same
way). Calibrators, given a histogram, return the threshold T of symmetric INT8 quantization (scale = T / 127):

- ``minmax``: the largest |x| seen.
- ``percentile``: the |x| below which ``percentile`` % of the values fall (default 99.99).
- ``entropy``: TensorRT's: the T whose 128-level quantization of the clipped distribution has the least KL
  divergence from it.
- ``mse``: the T with the least expected squared error of quantize-dequantize over the histogram (rounding
  inside the range, clipping beyond it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ...errors import GreenrtError

BINS = 2048
METHODS = ("entropy", "percentile", "minmax", "mse")
DEFAULT_PERCENTILE = 99.99
# the default calibrator: the accuracy suite (bench/results/accuracy_cpu.json) found percentile within 0.15 points
# of the best on every model, where entropy clipped normalized image inputs at their background value (Fashion-MNIST:
# 6-7 points of top-1 lost)
DEFAULT_METHOD = "percentile"
LEVELS = 128  # symmetric INT8: 127 steps either side of zero, as TensorRT's entropy calibrator counts them


@dataclass
class AbsHistogram:
    bins: int = BINS
    range: float = 0.0  # upper edge of the last bin; 0 until a nonzero value is seen
    counts: np.ndarray = field(default_factory=lambda: np.zeros(BINS, np.int64))
    amax: float = 0.0  # the largest finite |x| seen
    total: int = 0  # finite values seen
    nonfinite: int = 0  # NaN and +-inf values seen (not counted in the histogram)

    def __post_init__(self):
        if len(self.counts) != self.bins:
            self.counts = np.zeros(self.bins, np.int64)

    def add(self, values: np.ndarray) -> None:
        a = np.abs(np.asarray(values, dtype=np.float64).ravel())
        finite = np.isfinite(a)
        self.nonfinite += int(a.size - finite.sum())
        a = a[finite]
        if a.size == 0:
            return
        top = float(a.max())
        self.amax = max(self.amax, top)
        self.total += int(a.size)
        if top > self.range:
            self._grow(top)
        if self.range == 0.0:  # only zeros so far
            self.counts[0] += a.size
            return
        idx = np.minimum((a * (self.bins / self.range)).astype(np.int64), self.bins - 1)
        self.counts += np.bincount(idx, minlength=self.bins)

    def _grow(self, top: float) -> None:
        if self.range == 0.0:
            zeros = int(self.counts[0])
            self.range = top
            self.counts[:] = 0
            self.counts[0] = zeros
            return
        factor = 1 << max(0, math.ceil(math.log2(top / self.range)))
        while self.range * factor < top:
            factor <<= 1
        merged = self.counts.reshape(-1, factor).sum(axis=1) if self.bins % factor == 0 else None
        if merged is None:  # more than BINS-fold growth: everything so far lands in the first bin
            merged = np.array([self.counts.sum()], np.int64)
        self.counts = np.zeros(self.bins, np.int64)
        self.counts[: len(merged)] = merged
        self.range *= factor

    @property
    def width(self) -> float:
        return self.range / self.bins if self.range else 0.0

    def above(self, t: float) -> float:
        """The fraction of the values seen whose |x| exceeds ``t`` (clipped at that threshold), to the bin."""
        if self.total == 0 or self.range == 0.0:
            return 0.0
        first = min(self.bins, int(math.ceil(t / self.width))) if t > 0 else 0
        return float(self.counts[first:].sum()) / self.total

    def to_json(self) -> dict:
        return {"range": self.range, "amax": self.amax, "total": self.total, "nonfinite": self.nonfinite}


def threshold(hist: AbsHistogram, method: str, percentile: float = DEFAULT_PERCENTILE) -> float:
    """The clipping threshold ``method`` reads from ``hist`` (0.0 for a tensor that was all zeros)."""
    if method not in METHODS:
        raise GreenrtError(f"calibration method {method!r}: choose one of {', '.join(METHODS)}")
    if hist.total == 0 or hist.amax == 0.0:
        return 0.0
    if method == "minmax":
        return hist.amax
    if method == "percentile":
        if not 0 < percentile <= 100:
            raise GreenrtError(f"--percentile {percentile}: expected a value in (0, 100], e.g. 99.99")
        cdf = np.cumsum(hist.counts) / hist.total
        i = int(np.searchsorted(cdf, percentile / 100.0))
        return min(hist.amax, (i + 1) * hist.width)
    if method == "entropy":
        return min(hist.amax, _entropy_threshold(hist.counts) * hist.width)
    return min(hist.amax, _mse_threshold(hist))


def _entropy_threshold(counts: np.ndarray) -> int:
    """TensorRT's KL calibration, in bins: for each candidate i (from 128 bins up), P = the first i bins with the
    rest folded into the last; Q = P quantized to 128 levels and expanded back over P's nonzero bins; the i with
    the least KL(P || Q)."""
    hist = counts.astype(np.float64)
    n = len(hist)
    # the first bin holds every exact zero: after a ReLU, half of all values. Left in, quantizing it with its 2047/128
    # neighbours spreads that spike and costs so much KL that the smallest candidates always win (a ReLU output was
    # clipped at 42% of its range on a small convnet). NVIDIA's pytorch-quantization entropy calibrator does the same
    # (bins[0] = bins[1]).
    if n > 1:
        hist[0] = hist[1]
    if n <= LEVELS:
        return n
    best_i, best_kl = n, math.inf
    step = max(1, (n - LEVELS) // 256)  # at most ~256 candidates (2048 bins: every 7th), as fast as it needs
    for i in range(LEVELS, n + 1, step):
        p = hist[:i].copy()
        p[-1] += hist[i:].sum()
        nonzero = p > 0
        if not nonzero.any():
            continue
        # quantize the first i bins (before folding) into LEVELS levels, spread each level over its nonzero bins
        # (the levels as np.array_split makes them: the first i % LEVELS one bin longer)
        base = hist[:i]
        sizes = np.full(LEVELS, i // LEVELS)
        sizes[:i % LEVELS] += 1
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        used = base > 0
        sums = np.add.reduceat(base, starts)
        counts = np.add.reduceat(used.astype(np.float64), starts)
        q = np.repeat(sums / np.maximum(counts, 1), sizes) * used
        kl = _kl(p, q)
        if kl < best_kl:
            best_i, best_kl = i, kl
    return best_i


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    if q.sum() == 0:
        return math.inf
    mask = p > 0
    hole = mask & (q == 0)
    if hole.any():  # smoothed, as TensorRT's reference does: a bin P has and Q lacks costs a lot, not infinity
        q = q.copy()
        q[hole] = 1e-4 * q[q > 0].min()
    p = p / p.sum()
    q = q / q.sum()
    return float(np.sum(p[mask] * np.log(p[mask] / q[mask])))


def _mse_threshold(hist: AbsHistogram) -> float:
    """The T (among 256 candidates up to amax) minimizing the expected squared error of quantize-dequantize over
    the histogram: inside [0, T] the rounding error of a step T/127 (step^2 / 12 a value, the values spread within
    a step), beyond T the clipping error (x - T)^2 at the bin centres."""
    centres = (np.arange(hist.bins) + 0.5) * hist.width
    weights = hist.counts.astype(np.float64)
    used = weights > 0
    centres, weights = centres[used], weights[used]
    best_t, best_err = hist.amax, math.inf
    for t in np.linspace(hist.amax / 256, hist.amax, 256):
        step = t / 127.0
        inside = centres <= t
        err = float(weights[inside].sum() * step * step / 12.0
                    + np.sum(weights[~inside] * (centres[~inside] - t) ** 2))
        if err < best_err:
            best_t, best_err = float(t), err
    return best_t
