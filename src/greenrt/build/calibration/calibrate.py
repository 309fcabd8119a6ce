"""Calibrate: run the optimized fp32 graph on calibration data, one streaming histogram per float tensor, and read
each tensor's INT8 clipping threshold with the chosen calibrator (histogram.py). The result is a calibration
cache (JSON, per-tensor thresholds) keyed by the model's graph, the calibrator and its settings: reused by later
builds with the same key, refused with a message naming what changed otherwise (never silently stale).

Memory does not grow with the number of samples: batches stream from the source and each tensor keeps a fixed-size
histogram (BINS int64 counts). The inputs of convs and GEMMs also keep their per-channel means and max |x| (channel
axis 1 of a conv's input, the last axis of a GEMM's): what bias correction and smoothing need (precision/int8.py).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ...errors import GreenrtError
from ...version import __version__
from ..jsonfile import read_json, write_json
from .data import CalibrationDataError, CalibrationSource
from .histogram import BINS, DEFAULT_METHOD, DEFAULT_PERCENTILE, METHODS, AbsHistogram, threshold

CACHE_FORMAT = "greenrt-calibration-cache/1"
STAT_NUMBERS = ("range", "amax", "total", "nonfinite", "clipped")  # a tensor's stats: numbers (histogram.to_json)


def model_input_names(model_path: str | Path) -> list[str]:
    """The model's inputs that calibration data must feed (graph inputs that are not initializers), read from the
    ONNX file without building it."""
    import onnx

    try:
        graph = onnx.load(str(model_path), load_external_data=False).graph
    except Exception as exc:  # noqa: BLE001  (any reason the file is not a model)
        raise GreenrtError(f"{model_path}: not a readable ONNX model ({type(exc).__name__}: {exc})") from None
    initializers = {t.name for t in graph.initializer}
    return [v.name for v in graph.input if v.name not in initializers]


def graph_sha256(model_path: str | Path) -> str:
    """The model file's bytes and this greenrt's version (the optimized graph's tensor names come from its passes):
    what a calibration cache is valid for."""
    h = hashlib.sha256()
    with open(model_path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    h.update(f"greenrt {__version__}".encode())
    return h.hexdigest()


@dataclass
class Calibration:
    graph_sha256: str
    method: str
    settings: dict[str, Any]
    samples: int
    data: str
    ranges: dict[str, float]  # tensor -> threshold (amax) for symmetric INT8
    stats: dict[str, dict] = field(default_factory=dict)  # tensor -> what its histogram saw
    channel_means: dict[str, list[float]] = field(default_factory=dict)  # conv / GEMM input -> mean per channel
    channel_amax: dict[str, list[float]] = field(default_factory=dict)  # conv / GEMM input -> max |x| per channel
    reused: bool = False

    def to_json(self) -> dict:
        return {"format": CACHE_FORMAT, "graph_sha256": self.graph_sha256, "method": self.method,
                "settings": self.settings, "samples": self.samples, "data": self.data,
                "ranges": dict(sorted(self.ranges.items())), "stats": dict(sorted(self.stats.items())),
                "channel_means": dict(sorted(self.channel_means.items())),
                "channel_amax": dict(sorted(self.channel_amax.items()))}

    def save(self, path: str | Path) -> Path:
        return write_json(Path(path), self.to_json())


def settings_of(method: str, percentile: float) -> dict[str, Any]:
    settings: dict[str, Any] = {"bins": BINS}
    if method == "percentile":
        settings["percentile"] = percentile
    return settings


def load_cache(path: str | Path, graph: str, method: str | None = None, settings: dict | None = None) -> Calibration:
    """The calibration in ``path`` if it was made for this graph, calibrator and settings (None: whichever it was
    made with); else a GreenrtError saying which of them differs."""
    path = Path(path)
    data = read_json(path, "calibration cache", "delete it to calibrate again")
    if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT or not isinstance(data.get("ranges"), dict):
        raise GreenrtError(f"calibration cache {path}: not a {CACHE_FORMAT} file; delete it to calibrate again")
    method = data.get("method") if method is None else method
    settings = data.get("settings") if settings is None else settings
    stale = []
    if data.get("graph_sha256") != graph:
        stale.append("the model (or greenrt's version) changed since it was made")
    if data.get("method") != method:
        stale.append(f"it was made with --calib-method {data.get('method')}, this run asks for {method}")
    if data.get("settings") != settings:
        stale.append(f"its settings {data.get('settings')} differ from this run's {settings}")
    if stale:
        raise GreenrtError(f"calibration cache {path} is stale: {'; '.join(stale)}. Delete it (or pass another "
                           "--calib-cache) to calibrate again with --calib DATA, or run with the settings it was "
                           "made with")
    bad = [k for k, v in data["ranges"].items() if not (_finite(v) and v >= 0)]
    if bad:
        raise GreenrtError(f"calibration cache {path}: tensor {bad[0]!r} has no valid range; delete it to "
                           "calibrate again")
    per_channel = {}
    for key in ("channel_means", "channel_amax"):
        table = data.get(key, {})
        if not isinstance(table, dict) or not all(isinstance(v, list) and all(_finite(x) for x in v)
                                                  for v in table.values()):
            raise GreenrtError(f"calibration cache {path}: its {key} are not lists of finite numbers; delete it to "
                               "calibrate again")
        per_channel[key] = {k: [float(x) for x in v] for k, v in table.items()}
    samples, stats = data.get("samples", 0), data.get("stats", {})
    stats_ok = isinstance(stats, dict) and all(
        isinstance(v, dict) and all(_finite(x) for k, x in v.items() if k in STAT_NUMBERS) for v in stats.values())
    if not isinstance(samples, int) or isinstance(samples, bool) or samples < 0 or not stats_ok:
        raise GreenrtError(f"calibration cache {path}: its samples ({samples!r:.40}) or stats are not what a "
                           "calibration writes; delete it to calibrate again")
    return Calibration(graph, method, settings, samples, str(data.get("data", "")),
                       {k: float(v) for k, v in data["ranges"].items()}, dict(stats),
                       per_channel["channel_means"], per_channel["channel_amax"], reused=True)


def _finite(x) -> bool:
    """A JSON number that is a finite float (an integer too large for a float is not)."""
    if not isinstance(x, (int, float)) or isinstance(x, bool):
        return False
    try:
        return math.isfinite(float(x))
    except OverflowError:
        return False


def calibrate(model_path: str | Path, source: CalibrationSource | None, method: str = DEFAULT_METHOD,
              percentile: float = DEFAULT_PERCENTILE, batch_size: int = 8, cache: str | Path | None = None,
              progress: Callable[[int, int | None], None] | None = None) -> Calibration:
    """Per-tensor INT8 thresholds of ``model_path``'s optimized graph over ``source`` (reused from ``cache`` when it
    was made for the same graph, method and settings; written there otherwise)."""
    if method not in METHODS:
        raise GreenrtError(f"--calib-method {method!r}: choose one of {', '.join(METHODS)}")
    if batch_size < 1:
        raise GreenrtError(f"--calib-batch {batch_size}: expected at least 1")
    graph = graph_sha256(model_path)
    settings = settings_of(method, percentile)
    if method == "percentile" and not 0 < percentile <= 100:
        raise GreenrtError(f"--percentile {percentile}: expected a value in (0, 100], e.g. 99.99")
    if cache is not None and Path(cache).exists():
        return load_cache(cache, graph, method, settings)
    if source is None:
        raise GreenrtError("calibration needs data (--calib DATA: .npz files, a folder of images or "
                           "module:function) or a calibration cache made for this model (--calib-cache FILE)")
    histograms, samples, channels = _observe(model_path, source, batch_size, progress)
    if samples == 0:
        raise CalibrationDataError(f"--calib {source.describe}: holds no samples")
    ranges = {name: threshold(h, method, percentile) for name, h in histograms.items()}
    stats = {name: h.to_json() | {"clipped": h.above(ranges[name])} for name, h in histograms.items()}
    result = Calibration(graph, method, settings, samples, source.describe, ranges, stats,
                         {k: c.mean() for k, c in channels.items()}, {k: c.amax.tolist() for k, c in channels.items()})
    if cache is not None:
        result.save(cache)
    return result


def _channel_axes(model) -> dict[str, int]:
    """Input 0 of every conv (channel axis 1) and GEMM (the last axis) of the optimized graph."""
    from ...precision.int8 import layer_kind

    axes: dict[str, int] = {}
    for node in model.graph:
        kind = layer_kind(node)
        if kind is None or not node.inputs or node.inputs[0] is None or not node.inputs[0].name:
            continue
        if kind == "conv":
            axes[node.inputs[0].name] = 1
        else:
            axes.setdefault(node.inputs[0].name, -1)
    return axes


class _ChannelStats:
    """A running mean (float64 sums: no drift over many batches) and max |x| per channel."""

    def __init__(self, axis: int):
        self.axis, self.sums, self.amax, self.count, self.broken = axis, None, None, 0, False

    def add(self, t: torch.Tensor) -> None:
        if t.dim() < 2 or (self.axis == 1 and t.dim() < 3):
            return
        moved = t.detach().to(torch.float64).movedim(self.axis, -1)
        flat = moved.reshape(-1, moved.shape[-1])
        if self.sums is not None and self.sums.shape[0] != flat.shape[1]:
            self.broken = True  # a channel count that changes between batches: no statistics (nothing uses them)
            return
        sums, amax = flat.sum(dim=0), flat.abs().amax(dim=0)
        self.sums = sums if self.sums is None else self.sums + sums
        self.amax = amax if self.amax is None else torch.maximum(self.amax, amax)
        self.count += flat.shape[0]

    @property
    def valid(self) -> bool:
        return self.sums is not None and self.count > 0 and not self.broken

    def mean(self) -> list[float]:
        return [float(x) for x in (self.sums / self.count).tolist()]


def _observe(model_path, source: CalibrationSource, batch_size: int,
             progress) -> tuple[dict[str, AbsHistogram], int, dict[str, "_ChannelStats"]]:
    from ...onnx.dtypes import numpy_to_torch
    from ...onnx.importer import load_model
    from ...passes import optimize
    from ...plan.compile import compile_model
    from ...runtime.runner import Runner

    model = load_model(model_path)
    optimize(model)
    channels = {name: _ChannelStats(axis) for name, axis in _channel_axes(model).items()}
    plan, weights = compile_model(model)
    runner = Runner(plan, weights, "cpu", precision="fp32")
    inputs = {s.name for s in plan.inputs} - set(plan.constants)
    histograms: dict[str, AbsHistogram] = {}

    def record(name: str, value: Any) -> None:
        if not name or not isinstance(value, torch.Tensor) or not value.is_floating_point() or not value.numel():
            return
        histograms.setdefault(name, AbsHistogram()).add(value.detach().float().numpy())
        if name in channels:
            channels[name].add(value)

    def observer(step, outputs) -> None:
        for name, value in zip(step.outputs, outputs):
            record(name, value)

    samples = 0
    for i, batch in enumerate(source.batches(batch_size)):
        if set(batch) != inputs:
            raise CalibrationDataError(f"--calib {source.describe}: batch {i} has {sorted(batch)}, the model's inputs "
                                       f"are {sorted(inputs)}")
        feeds = {}
        for name, array in batch.items():
            try:
                feeds[name] = numpy_to_torch(np.ascontiguousarray(array), "cpu")
            except (TypeError, ValueError) as exc:
                raise CalibrationDataError(f"--calib {source.describe}: input {name!r} in batch {i}: {exc}") from None
            record(name, feeds[name])
        try:
            with torch.inference_mode():
                runner.run(feeds, observer=observer)
        except GreenrtError as exc:
            shapes = {k: list(v.shape) for k, v in feeds.items()}
            raise CalibrationDataError(f"--calib {source.describe}: the model does not run on batch {i} {shapes}: "
                                       f"{exc}") from None
        samples += next(iter(feeds.values())).shape[0] if feeds else 0
        if progress is not None:
            progress(samples, source.samples)
    return histograms, samples, {name: c for name, c in channels.items() if c.valid}


# -- drift: does new data still fit a calibration? ---------------------------------------------------------------
CLIP_GROWTH = 2.0  # a tensor clips at least this many times more often than on the calibration data...
CLIP_FLOOR = 1e-3  # ...and more than this fraction of its values: at risk
RANGE_SHRINK = 0.5  # or its values use under half of the calibrated range: INT8 resolution thrown away
CLIP_MIN_VALUES = 10  # ...and clipping at least this many values (one value of a 768-value tensor is 0.13%: noise)


@dataclass
class Drift:
    tensor: str
    clipped_then: float
    clipped_now: float
    range_ratio: float  # max |x| now / max |x| at calibration
    risk: str  # "" where none

    def to_json(self) -> dict:
        return {"tensor": self.tensor, "clipped_then": self.clipped_then, "clipped_now": self.clipped_now,
                "range_ratio": self.range_ratio, "risk": self.risk}


def check_drift(model_path: str | Path, calibration: Calibration, source: CalibrationSource, batch_size: int = 8,
                progress: Callable[[int, int | None], None] | None = None) -> list[Drift]:
    """Each calibrated tensor on new data: how often its values now pass the calibrated threshold (clipping) and
    how its range compares; a tensor is at risk where clipping grew CLIP_GROWTH-fold past CLIP_FLOOR, or where its
    values use under RANGE_SHRINK of the calibrated range."""
    histograms, samples, _ = _observe(model_path, source, batch_size, progress)
    if samples == 0:
        raise CalibrationDataError(f"--check {source.describe}: holds no samples")
    out = []
    for name, t in calibration.ranges.items():
        h = histograms.get(name)
        then = calibration.stats.get(name, {})
        if h is None or not then.get("amax"):
            continue
        now = h.above(t)
        before = float(then.get("clipped", 0.0))
        ratio = h.amax / then["amax"]
        risk = ""
        if now > CLIP_FLOOR and now > CLIP_GROWTH * before and now * h.total >= CLIP_MIN_VALUES:
            risk = f"clips {now:.2%} of its values (at calibration {before:.2%})"
        elif ratio < RANGE_SHRINK:
            risk = f"uses {ratio:.0%} of its calibrated range"
        out.append(Drift(name, before, now, ratio, risk))
    return out
