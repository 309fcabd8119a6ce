"""Compare greenrt's outputs with onnxruntime's (the reference) on the same inputs, and judge a mismatch honestly.

The error measure itself (compare_arrays, OutputReport) lives in build/accuracy.py, shared with the builder's checks.

A fixed tolerance cannot judge every graph: some amplify rounding so much that the references disagree with each
other (onnxruntime at two optimization levels, or onnxruntime and onnx.reference) by more than it. So when greenrt
is over the tolerance, ``reference_spread`` measures how far the references are from each other on the same inputs,
and ``judge`` calls an output

    match                     greenrt within atol + rtol * max|ref| of the reference (the fixed tolerance)
    within reference spread   over it, but within max(tolerance, K x spread): the graph amplifies rounding
    MISMATCH                  beyond both: greenrt is wrong

    spreads = reference_spread("model.onnx", feeds)
    for name, ours in zip(names, greenrt_outputs):
        verdict = judge(name, ours, spreads[name].references, rtol=1e-4, atol=1e-5, spread=spreads[name])
"""

from __future__ import annotations

import itertools
import math
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np

from ..build.accuracy import (DEFAULT_RTOL, OutputReport, compare_arrays, default_rtol,  # noqa: F401  (re-exported)
                              engine_rtol)
from ..errors import GreenrtError

MATCH, WITHIN_SPREAD, MISMATCH = "match", "within reference spread", "MISMATCH"
DEFAULT_SPREAD_MULTIPLE = 2.0  # K: greenrt may be K times as far from the reference as the references are apart
DEFAULT_REFERENCE_TIMEOUT_S = 5.0  # onnx.reference is pure numpy: seconds on a small model, hours on a big one
# onnxruntime's graph optimization levels, its default (what run_onnxruntime runs) first
ORT_LEVELS = ("ORT_ENABLE_ALL", "ORT_ENABLE_EXTENDED", "ORT_ENABLE_BASIC", "ORT_DISABLE_ALL")
ONNX_REFERENCE = "onnx.reference"


# -- onnxruntime -------------------------------------------------------------------------------------------
def _ort():
    try:
        import onnxruntime as ort
    except ImportError:
        raise GreenrtError("onnxruntime is not installed: pip install 'greenrt[reference]'") from None
    return ort


def _ort_source(model_path: str, extra_outputs: Sequence[str]) -> str | bytes:
    """What onnxruntime loads: the file, or the model with ``extra_outputs`` marked as graph outputs."""
    if not extra_outputs:
        return str(model_path)
    import onnx_ir as ir

    from ..onnx.importer import load_model
    from ..onnx.outputs import mark_outputs

    model = load_model(model_path)
    mark_outputs(model, list(extra_outputs))
    return ir.to_proto(model).SerializeToString()


def _ort_run(source: str | bytes, feeds: Mapping[str, np.ndarray], level: str | None = None
             ) -> dict[str, np.ndarray]:
    """Output name -> value, onnxruntime on CPU at graph optimization ``level`` (None: its default)."""
    ort = _ort()
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if level is not None:
        opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    sess = ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, {k: np.asarray(v) for k, v in feeds.items()})))


def run_onnxruntime(model_path: str, feeds: Mapping[str, np.ndarray],
                    extra_outputs: Sequence[str] = ()) -> list[np.ndarray]:
    """onnxruntime's outputs (CPU); ``extra_outputs``: intermediate tensors to return after the graph outputs."""
    source = _ort_source(model_path, extra_outputs)
    try:
        return list(_ort_run(source, feeds).values())
    except GreenrtError:
        raise
    except Exception as exc:
        raise GreenrtError(f"onnxruntime could not run {model_path}: {_first_line(exc)}") from None


def compare_outputs(names: Sequence[str], ours: Sequence, refs: Sequence, rtol: float, atol: float):
    return [compare_arrays(n, o, r, rtol, atol) for n, o, r in zip(names, ours, refs)]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# -- onnx.reference, in a child process that can be stopped -----------------------------------------------
# The child imports only numpy and onnx (not greenrt, not torch) so its start-up eats little of the time limit.
_ONNX_REFERENCE_CHILD = r"""
import sys
import numpy as np
import onnx
from onnx.reference import ReferenceEvaluator

model_path, feeds_path, out_path, *extra = sys.argv[1:]
model = onnx.load(model_path)
present = {o.name for o in model.graph.output}
for name in extra:
    if name not in present:
        model.graph.output.append(onnx.ValueInfoProto(name=name))
        present.add(name)
with np.load(feeds_path, allow_pickle=False) as f:
    names = [str(n) for n in f["names"]]
    feeds = {n: f[f"v{i}"] for i, n in enumerate(names)}
feeds = {n: v.astype(object) if v.dtype.kind == "U" else v for n, v in feeds.items()}
outs = ReferenceEvaluator(model).run(None, feeds)
names, values = [], []
for out, value in zip(model.graph.output, outs):
    value = np.asarray(value)
    if value.dtype == object:  # strings and sequences: not measured
        continue
    names.append(out.name)
    values.append(value)
np.savez(out_path, names=np.array(names, dtype=str), **{f"v{i}": v for i, v in enumerate(values)})
"""


def run_onnx_reference(model_path: str, feeds: Mapping[str, np.ndarray], extra_outputs: Sequence[str] = (),
                       timeout_s: float = DEFAULT_REFERENCE_TIMEOUT_S) -> tuple[dict[str, np.ndarray] | None, str]:
    """onnx.reference.ReferenceEvaluator's outputs (name -> value; string and sequence outputs left out), run in a
    child Python killed after ``timeout_s`` seconds of wall time (start-up included). Returns (outputs, '') or
    (None, why): 'timed out after 5s' or 'not run: <reason>'."""
    with tempfile.TemporaryDirectory(prefix="greenrt-onnx-reference-") as tmp:
        feeds_path, out_path = os.path.join(tmp, "feeds.npz"), os.path.join(tmp, "outputs.npz")
        names = list(feeds)
        values = [np.asarray(feeds[n]) for n in names]
        values = [v.astype(str) if v.dtype == object else v for v in values]
        np.savez(feeds_path, names=np.array(names, dtype=str), **{f"v{i}": v for i, v in enumerate(values)})
        cmd = [sys.executable, "-c", _ONNX_REFERENCE_CHILD, str(model_path), feeds_path, out_path,
               *map(str, extra_outputs)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None, f"timed out after {timeout_s:g}s"
        if proc.returncode != 0:
            lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
            return None, f"not run: {lines[-1] if lines else f'exit status {proc.returncode}'}"
        with np.load(out_path, allow_pickle=False) as f:
            return {str(n): f[f"v{i}"] for i, n in enumerate(f["names"])}, ""


# -- the spread of the references ------------------------------------------------------------------------------
@dataclass
class Spread:
    """How far the references are from each other on one output.

    ``references``: reference label -> this output's value, in run order; the first is the one greenrt is judged
    against by default (onnxruntime at its default level, ORT_ENABLE_ALL). ``max_abs``: the largest pairwise
    max |a - b| among them (inf where two disagree on the NaN/Inf pattern; 0 with fewer than two); ``max_rel``:
    max_abs / max |first reference| (the scale of OutputReport.max_rel). ``pair``: the two labels that disagree
    most (None with fewer than two). ``skipped``: label -> why that reference is not among them ('timed out after
    5s', 'not run: ...', or a shape/dtype that differs from the first reference's)."""

    name: str
    references: dict[str, np.ndarray]
    max_abs: float
    max_rel: float
    pair: tuple[str, str] | None
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def usable(self) -> bool:
        """At least two references ran and their differences are finite: the spread can excuse an error."""
        return len(self.references) >= 2 and math.isfinite(self.max_abs)


def _scale(value: np.ndarray) -> float:
    """max |finite value| (the denominator of max_rel); 0 for non-numeric or empty values."""
    a = _numpy(value)
    if a.dtype == object or a.dtype.kind in "bUS" or a.size == 0:
        return 0.0
    finite = np.isfinite(a)
    return float(np.abs(a[finite]).max()) if finite.any() else 0.0


def spread_of(name: str, references: Mapping[str, np.ndarray], skipped: Mapping[str, str] | None = None) -> Spread:
    """The Spread of one output among ``references`` (label -> value, the first the scale's reference). A reference
    whose shape or dtype differs from the first's is set aside in ``skipped`` rather than making the spread
    infinite: it answers a different question, not the same one with other rounding."""
    refs: dict[str, np.ndarray] = {}
    skipped = dict(skipped or {})
    for label, value in references.items():
        value = _numpy(value)
        if refs:
            first = next(iter(refs.values()))
            if value.shape != first.shape or value.dtype != first.dtype:
                skipped[label] = f"{value.dtype} {list(value.shape)} vs {first.dtype} {list(first.shape)}"
                continue
        refs[label] = value
    worst, pair = 0.0, None
    for (la, a), (lb, b) in itertools.combinations(refs.items(), 2):
        diff = compare_arrays(name, a, b, 0.0, 0.0).max_abs
        if pair is None or diff > worst:
            worst, pair = float(diff), (la, lb)
    scale = _scale(next(iter(refs.values()))) if refs else 0.0
    rel = worst / scale if scale > 0 else (0.0 if worst == 0 else math.inf)
    return Spread(name, refs, worst, rel, pair, skipped)


def reference_spread(model_path: str, feeds: Mapping[str, np.ndarray], extra_outputs: Sequence[str] = (), *,
                     levels: Sequence[str] = ORT_LEVELS, onnx_reference: bool = True,
                     timeout_s: float = DEFAULT_REFERENCE_TIMEOUT_S) -> dict[str, Spread]:
    """How much the references disagree with each other on ``feeds``, per output.

    Runs ``model_path`` (an ONNX file) with onnxruntime on CPU at each graph optimization level in ``levels``
    (labels 'onnxruntime ENABLE_ALL', ... 'onnxruntime DISABLE_ALL'; ENABLE_ALL, onnxruntime's default, first) and,
    with ``onnx_reference``, with onnx.reference.ReferenceEvaluator in a child process stopped after ``timeout_s``
    seconds (label 'onnx.reference'). ``extra_outputs``: intermediate tensors measured too, after the graph outputs
    (the tensors an engine built with --outputs returns).

    Returns output name -> Spread, in output order, for every output the first reference that ran produced; a
    reference that failed or timed out is in every Spread's ``skipped`` with the reason. Raises GreenrtError when
    no onnxruntime level runs (onnxruntime missing, or the model does not load). Nothing here draws random numbers;
    the feeds are the caller's (never zeros: a spread measured on zeros says nothing).
    """
    source = _ort_source(model_path, extra_outputs)
    runs: dict[str, dict[str, np.ndarray]] = {}
    skipped: dict[str, str] = {}
    first_error = ""
    for level in levels:
        label = "onnxruntime " + level.removeprefix("ORT_")
        try:
            runs[label] = _ort_run(source, feeds, level)
        except GreenrtError:
            raise
        except Exception as exc:
            skipped[label] = f"not run: {_first_line(exc)}"
            first_error = first_error or skipped[label]
    if not runs and levels:
        raise GreenrtError(f"onnxruntime could not run {model_path}: {first_error.removeprefix('not run: ')}")
    if onnx_reference:
        outs, why = run_onnx_reference(model_path, feeds, extra_outputs, timeout_s)
        if outs is None:
            skipped[ONNX_REFERENCE] = why
        else:
            runs[ONNX_REFERENCE] = outs
    names = list(next(iter(runs.values()))) if runs else []
    spreads = {}
    for name in names:
        present = {label: outs[name] for label, outs in runs.items() if name in outs}
        missing = {label: "no such output" for label, outs in runs.items() if name not in outs}
        spreads[name] = spread_of(name, present, {**skipped, **missing})
    return spreads


# -- the verdict -----------------------------------------------------------------------------------------------
@dataclass
class Verdict:
    """One output judged. ``verdict``: MATCH, WITHIN_SPREAD or MISMATCH; ``max_abs``/``max_rel``: greenrt against
    the first reference (OutputReport's measures); ``tolerance``: atol + rtol * max|reference| (absolute);
    ``allowed``: max(tolerance, k * spread.max_abs) when the spread is usable, else the tolerance; ``closest``:
    (label, max_abs, max_rel) of the reference greenrt is nearest to; ``note``: where the worst error is, or why
    the spread could not excuse it."""

    name: str
    shape: tuple
    verdict: str
    max_abs: float
    max_rel: float
    tolerance: float
    allowed: float
    k: float
    spread: Spread | None = None
    closest: tuple[str, float, float] | None = None
    note: str = ""

    @property
    def ok(self) -> bool:
        """Exit 0 material: a match, or an error no larger than the references' own disagreement allows."""
        return self.verdict != MISMATCH


def judge(name: str, ours, refs: Mapping[str, np.ndarray], rtol: float, atol: float,
          spread: Spread | None = None, k: float = DEFAULT_SPREAD_MULTIPLE) -> Verdict:
    """Judge greenrt's value ``ours`` of output ``name`` against the references.

    ``refs``: label -> that reference's value of this output (numpy or torch); the FIRST is the reference greenrt
    is judged against (``greenrt compare``: onnxruntime at its default level); the others only say which reference
    greenrt is closest to. ``spread``: the references' own disagreement on this output (from reference_spread on the
    same inputs); None: computed from ``refs`` itself (spread_of). ``k``: the spread multiple (K).

    The rule, with e = max |ours - first ref| and tol = atol + rtol * max |first ref| (compare_arrays'):
      MATCH          e <= tol
      WITHIN_SPREAD  tol < e <= k * spread.max_abs, the spread usable (two or more references, finite);
                     for an integer, boolean or string output (where |a - b| is no rounding measure, e.g. an
                     argmax): every element equals that element of at least one reference in the spread
      MISMATCH       otherwise; always for a shape or dtype mismatch, a NaN/Inf pattern the reference does not
                     have (e is infinite), or a spread that is not usable.
    Pure: runs nothing, deterministic. Verdict.ok is what `greenrt compare` exits 0 on.
    """
    if not refs:
        raise ValueError("judge needs at least one reference")
    labels = list(refs)
    primary = refs[labels[0]]
    report: OutputReport = compare_arrays(name, ours, primary, rtol, atol)
    tolerance = atol + rtol * _scale(primary)
    if spread is None and len(refs) >= 2:
        spread = spread_of(name, refs)
    distances = [(label, compare_arrays(name, ours, refs[label], rtol, atol)) for label in labels]
    label, best = min(distances, key=lambda d: d[1].max_abs)
    closest = (label, best.max_abs, best.max_rel)
    verdict = Verdict(name, tuple(report.shape), MATCH, report.max_abs, report.max_rel, tolerance, tolerance, k,
                      spread, closest, report.note)
    if report.ok:
        return verdict
    verdict.verdict = MISMATCH
    if spread is None:
        return verdict  # one reference, no spread measured: the fixed tolerance alone
    if len(spread.references) < 2:
        verdict.note = "; ".join(filter(None, [report.note, "spread not usable: fewer than two references ran"]))
        return verdict
    if _numpy(primary).dtype.kind not in "fc":  # integers, booleans, strings: a distance between them means nothing
        if _each_element_from_some_reference(ours, spread.references.values()):
            verdict.verdict = WITHIN_SPREAD
            verdict.note = "discrete output: every element equals some reference's"
        return verdict
    if not math.isfinite(report.max_abs):
        return verdict  # shape, dtype, NaN or Inf: no amount of rounding explains it
    if not spread.usable:
        why = f"{spread.pair[0]} and {spread.pair[1]} disagree on the NaN/Inf pattern"
        verdict.note = "; ".join(filter(None, [report.note, f"spread not usable: {why}"]))
        return verdict
    verdict.allowed = max(tolerance, k * spread.max_abs)
    if report.max_abs <= verdict.allowed:
        verdict.verdict = WITHIN_SPREAD
    return verdict


def judge_with_spread_if_needed(name: str, ours, ref, rtol: float, atol: float,
                                measure_spread: Callable[[], Spread] | None, k: float = DEFAULT_SPREAD_MULTIPLE
                                ) -> Verdict:
    """The corpus rule: ``ours`` against one reference at the fixed tolerance, and only where that misses on a float
    output, ``measure_spread()`` (rerunning the references costs time) and ``judge`` with it. ``measure_spread``
    None: the fixed tolerance alone (e.g. for reduced precision, whose error no fp32 spread explains)."""
    verdict = judge(name, ours, {"onnxruntime": ref}, rtol, atol)
    if verdict.ok or measure_spread is None or _numpy(ref).dtype.kind != "f":
        return verdict
    return judge(name, ours, {"onnxruntime": ref}, rtol, atol, spread=measure_spread(), k=k)


def _each_element_from_some_reference(ours, references) -> bool:
    """Every element of ``ours`` equals the same element of at least one reference (shapes and dtypes equal)."""
    ours = _numpy(ours)
    comparable = [r for r in map(_numpy, references) if r.shape == ours.shape and r.dtype == ours.dtype]
    if not comparable:
        return False
    hit = np.zeros(ours.shape, dtype=bool)
    for ref in comparable:
        hit |= np.asarray(ours == ref, dtype=bool)
    return bool(hit.all())


def _numpy(value) -> np.ndarray:
    """A numpy array or a torch tensor as numpy (as compare_arrays reads it)."""
    if hasattr(value, "detach"):
        from ..onnx.dtypes import torch_to_numpy

        return torch_to_numpy(value)
    return np.asarray(value)


__all__ = ["OutputReport", "compare_arrays", "compare_outputs", "run_onnxruntime", "run_onnx_reference",
           "reference_spread", "spread_of", "judge", "Spread", "Verdict", "MATCH", "WITHIN_SPREAD", "MISMATCH",
           "ORT_LEVELS", "DEFAULT_SPREAD_MULTIPLE", "DEFAULT_REFERENCE_TIMEOUT_S"]
