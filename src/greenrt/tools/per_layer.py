"""`greenrt compare --per-layer`: where along the graph greenrt's error starts and how it grows.

The engine runs once with an observer that records every plan step's outputs (Runner.run(feeds, observer=...)):
the layers are the plan's steps AS FUSED, so the plan is not changed to look inside it. Each step output is
matched to the ONNX model's tensor of the same name (a fused node keeps the name of the last output it replaces);
values that exist only inside greenrt (casts inserted by the precision stage, names made by passes) have no
counterpart and are skipped, and counted. onnxruntime (CPU, fp32) returns every matched tensor in one run
(run_onnxruntime with extra_outputs), and each layer is judged with the rule of tools/compare.py: over the fixed
tolerance, the references' own spread on that tensor (reference_spread with extra_outputs) decides between
'within reference spread' and MISMATCH.

    report = per_layer_compare(session, "model.onnx", feeds, rtol=1e-4, atol=1e-5)
    report.first_over, report.first_mismatch      # the first layers past the tolerance / judged MISMATCH
    print_report(report, console); plot_growth(report, "growth.png"); json.dump(report.to_json(), f)

The error of a layer is the error of its output against onnxruntime's value of the same tensor, which carries
every earlier layer's error: read the first bad layer, and the growth after it, not each layer on its own.
Steps inside If/Loop/Scan bodies are not looked into: the control-flow step's outputs are the layer.
"""

from __future__ import annotations

import json
import math
import os
import runpy
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from ..errors import GreenrtError, InvalidInputError
from . import compare
from .feeds import compare_reference

JSON_FORMAT = "greenrt-per-layer/1"


@dataclass
class LayerRecord:
    """One plan step output matched to an ONNX tensor. ``index``: position among the compared layers (graph
    order); ``step``: index of the plan step; ``step_name``/``op_type``: the (possibly fused) step; ``tensor``:
    the tensor name shared with the ONNX model; ``dtype``: greenrt's dtype of it (an fp16 value is compared in
    the reference's dtype); ``max_abs``/``max_rel``: against onnxruntime (compare_arrays' measures);
    ``tolerance``: atol + rtol * max|reference|; ``spread_abs``: the references' own spread (None when not
    measured: the layer was within the tolerance, or --no-spread); ``verdict``: match / within reference spread /
    MISMATCH."""

    index: int
    step: int
    step_name: str
    op_type: str
    tensor: str
    shape: list[int]
    dtype: str
    max_abs: float
    max_rel: float
    tolerance: float
    verdict: str
    spread_abs: float | None = None
    note: str = ""
    added_rel: float | None = None  # max rel err here minus the largest of its inputs': what this layer adds

    @property
    def over_tolerance(self) -> bool:
        return not self.max_abs <= self.tolerance  # NaN/inf count as over


@dataclass
class PerLayerReport:
    model: str  # what was compared: the engine file, or the ONNX file built for the comparison
    reference: str  # the ONNX file onnxruntime ran
    precision: str
    device: str
    inputs: dict[str, Any]  # {"source": ..., "shapes": {name: [dims]}}
    rtol: float
    atol: float
    spread_multiple: float
    layers: list[LayerRecord]
    steps: int  # plan steps run
    skipped: list[str] = field(default_factory=list)  # step outputs with no ONNX counterpart (greenrt-only values)
    not_compared: list[str] = field(default_factory=list)  # matched but not a tensor (sequences, None)
    build_command: str = ""

    @property
    def first_over(self) -> LayerRecord | None:
        return next((r for r in self.layers if r.over_tolerance), None)

    @property
    def first_mismatch(self) -> LayerRecord | None:
        return next((r for r in self.layers if r.verdict == compare.MISMATCH), None)

    @property
    def verdict(self) -> str:
        verdicts = {r.verdict for r in self.layers}
        for v in (compare.MISMATCH, compare.WITHIN_SPREAD):
            if v in verdicts:
                return v
        return compare.MATCH

    def to_json(self) -> dict:
        def finite(x):
            return x if x is None or math.isfinite(x) else str(x)  # JSON has no inf/nan

        layers = [{**asdict(r), "max_abs": finite(r.max_abs), "max_rel": finite(r.max_rel),
                   "spread_abs": finite(r.spread_abs)} for r in self.layers]
        first_over, first_mismatch = self.first_over, self.first_mismatch
        return {
            "format": JSON_FORMAT, "model": self.model, "reference": self.reference, "precision": self.precision,
            "device": self.device, "build_command": self.build_command, "inputs": self.inputs,
            "tolerance": {"rtol": self.rtol, "atol": self.atol, "spread_multiple": self.spread_multiple},
            "steps": self.steps, "compared": len(self.layers),
            "skipped": {"count": len(self.skipped), "tensors": self.skipped},
            "not_compared": self.not_compared,
            "first_over_tolerance": first_over.tensor if first_over else None,
            "first_mismatch": first_mismatch.tensor if first_mismatch else None,
            "verdict": self.verdict, "layers": layers,
        }


# -- inputs ----------------------------------------------------------------------------------------------------
def data_loader_feeds(path: str) -> dict[str, np.ndarray]:
    """The first feed dict of ``load_data()`` in the Python file ``path`` (Polygraphy's data-loader script).
    EXECUTES THE FILE as Python (runpy); the generator is not exhausted."""
    if not Path(path).is_file():
        raise InvalidInputError(f"--data-loader: {path}: no such file")
    try:
        namespace = runpy.run_path(str(path), run_name="__greenrt_data_loader__")
    except Exception as exc:
        raise InvalidInputError(f"--data-loader: {path} failed: {type(exc).__name__}: {exc}") from None
    load_data = namespace.get("load_data")
    if not callable(load_data):
        raise InvalidInputError(f"--data-loader: {path} defines no load_data() function (it must yield feed dicts: "
                                "input name -> array)")
    try:
        first = next(iter(load_data()), None)
    except Exception as exc:
        raise InvalidInputError(f"--data-loader: load_data() in {path} failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(first, Mapping) or not first:
        raise InvalidInputError(f"--data-loader: load_data() in {path} yielded {type(first).__name__}, not a feed "
                                "dict (input name -> array)")
    return {str(k): np.asarray(v) for k, v in first.items()}


def model_feeds(args, err_console) -> dict[str, np.ndarray]:
    """The feeds `greenrt compare` would use: the --inputs/--load-inputs .npz, else random (--seed, --shapes) for
    the inputs of ``args.model`` (an ONNX file is compiled unoptimized just to read them)."""
    from ..build.inputs import load_inputs
    from ..runtime.session import InferenceSession
    from .feeds import session_feeds

    if args.inputs:
        return load_inputs(args.inputs)
    session = InferenceSession(args.model, device=args.device,
                               allow_mismatch=args.allow_mismatch, cuda_graphs=False)
    return dict(session_feeds(session, args, err_console,
                              hint="; give --shapes or --load-inputs if the model rejects them"))


def save_feeds(path: str, feeds: Mapping[str, Any]) -> None:
    np.savez(path, **{k: np.asarray(v) for k, v in feeds.items()})


# -- running the engine with the observer ---------------------------------------------------------------------
def onnx_tensor_names(model_path: str) -> tuple[set[str], list[str], set[str]]:
    """(tensor names produced by nodes of the main graph, graph output names, graph input names)."""
    from ..onnx.importer import load_model

    model = load_model(model_path)
    graph = model.graph
    produced = {v.name for node in graph for v in node.outputs if v.name}
    return produced, [v.name for v in graph.outputs], {v.name for v in graph.inputs}


def observe(session, feeds: Mapping[str, Any], keep: Callable[[str], bool]) -> tuple[list, list[Any]]:
    """Run ``session``'s engine once through its runner with an observer; returns ([(step index, step, output
    name, value as numpy or the raw value)] for the outputs ``keep`` accepts, the graph outputs)."""
    from ..onnx.dtypes import torch_to_numpy

    prepared, _ = session._prepare(feeds)  # the session's input checks and device transfer
    if session.profiles:
        from ..plan.profiles import select_profile

        select_profile(session.profiles, {k: tuple(v.shape) for k, v in prepared.items() if hasattr(v, "shape")})
    index = {id(s): i for i, s in enumerate(session.plan.steps)}
    seen: list = []

    def observer(step, outputs) -> None:
        for name, value in zip(step.outputs, outputs):
            if name and keep(name):
                if hasattr(value, "detach"):
                    value = torch_to_numpy(value.detach().cpu())
                seen.append((index.get(id(step), -1), step, name, value))

    outputs = session.runner.run(prepared, observer=observer)
    return seen, outputs


def _dequantized(step, value: np.ndarray) -> np.ndarray:
    """An INT8 layer's integer output (an INT8 engine hands INT8 between its layers) as the float it stands for, so
    it compares with the float model's tensor of the same name: (q - y_zero_point) * y_scale."""
    if value.dtype.kind in "iu" and step.op_type in ("QConv", "QMatMul") and step.attrs.get("y_scale"):
        return ((value.astype(np.float64) - step.attrs.get("y_zero_point", 0)) * step.attrs["y_scale"]).astype(
            np.float32)
    return value


def _as_reference_dtype(ours: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """A reduced-precision float (fp16/bf16 inside an fp16 engine) in the reference's float dtype."""
    if ours.dtype != ref.dtype and ours.dtype.kind in "fV" and ref.dtype.kind == "f":
        try:
            return ours.astype(ref.dtype)
        except (TypeError, ValueError):
            return ours
    return ours


def per_layer_compare(session, reference: str, feeds: Mapping[str, np.ndarray], *, rtol: float = 1e-4,
                      atol: float = 1e-5, spread: bool = True, k: float = compare.DEFAULT_SPREAD_MULTIPLE,
                      reference_timeout: float = compare.DEFAULT_REFERENCE_TIMEOUT_S,
                      log: Callable[[str], None] = lambda msg: None) -> PerLayerReport:
    """Every plan step output of ``session`` (an InferenceSession) that names a tensor of the ONNX file
    ``reference``, judged against onnxruntime on ``feeds`` (numpy arrays), in plan order."""
    produced, graph_outputs, graph_inputs = onnx_tensor_names(reference)
    matchable = produced - graph_inputs
    steps = session.plan.steps
    skipped = [name for step in steps for name in step.outputs if name and name not in matchable]
    seen, _ = observe(session, feeds, lambda name: name in matchable)  # only matched values are kept
    matched, not_compared = [], []
    for i, step, name, value in seen:
        if isinstance(value, np.ndarray):
            matched.append((i, step, name, value))
        else:
            not_compared.append(name)
    producer = {name: step for step in steps for name in step.outputs if name}
    extras = [name for _, _, name, _ in matched if name not in graph_outputs]
    ort_feeds = {k: np.asarray(v) for k, v in feeds.items()}
    log(f"onnxruntime: {len(matched)} tensors in one run")
    values = compare.run_onnxruntime(reference, ort_feeds, extras)
    theirs = dict(zip(list(graph_outputs) + extras, values))

    layers, ours_by_name = [], {}
    for n, (i, step, name, value) in enumerate(matched):
        ref = np.asarray(theirs[name])
        ours = _as_reference_dtype(_dequantized(step, value), ref)
        ours_by_name[name] = ours
        v = compare.judge(name, ours, {"onnxruntime": ref}, rtol, atol)
        op = _op_label(step)
        source = producer.get(step.inputs[0]) if step.op_type == "Cast" and step.inputs else None
        if source is not None and step.inputs[0] not in matchable:  # a graph output the precision stage reduced
            op = f"{_op_label(source)} + Cast"
        layers.append(LayerRecord(n, i, step.name, op, name, list(value.shape), str(value.dtype), float(v.max_abs),
                                  float(v.max_rel), float(v.tolerance), v.verdict, None, v.note))
    over = [r for r in layers if r.verdict != compare.MATCH]
    if over and spread:
        log(f"{len(over)} layers over the tolerance: measuring the references' own spread on them (onnxruntime at "
            f"{len(compare.ORT_LEVELS)} optimization levels, onnx.reference up to {reference_timeout:g}s)")
        spreads = compare.reference_spread(reference, ort_feeds, [r.tensor for r in over if r.tensor not in
                                                                   graph_outputs], timeout_s=reference_timeout)
        for r in over:
            sp = spreads.get(r.tensor)
            if sp is None:
                continue
            refs = {"onnxruntime": theirs[r.tensor], **sp.references}
            v = compare.judge(r.tensor, ours_by_name[r.tensor], refs, rtol, atol, sp, k)
            r.verdict, r.spread_abs, r.note = v.verdict, float(sp.max_abs), v.note
    _added_errors(layers, steps)
    config = (session.header or {}).get("config", {})
    return PerLayerReport(
        model=str(session.model_path), reference=str(reference), precision=("int8+" if config.get("int8") else "") + str(config.get("precision", "fp32")),
        device=session.device.type, inputs={"shapes": {k: list(np.shape(v)) for k, v in feeds.items()}},
        rtol=rtol, atol=atol, spread_multiple=k, layers=layers, steps=len(steps), skipped=skipped,
        not_compared=not_compared, build_command=str(config.get("build_command", "")))


def _added_errors(layers: list[LayerRecord], steps) -> None:
    """Each layer's own share: its error minus the largest error among the tensors it reads (through the steps
    only greenrt has, such as an INT8 engine's QuantizeLinear, back to compared tensors; graph inputs count 0)."""
    error = {r.tensor: r.max_rel for r in layers if math.isfinite(r.max_rel)}
    producer = {name: step for step in steps for name in step.outputs if name}
    memo: dict[str, float] = {}

    def upstream(name: str, depth: int = 0) -> float:
        if name in error:
            return error[name]
        if name in memo or depth > 50:
            return memo.get(name, 0.0)
        step = producer.get(name)
        memo[name] = max((upstream(i, depth + 1) for i in step.inputs if i), default=0.0) if step else 0.0
        return memo[name]

    for r in layers:
        step = steps[r.step] if 0 <= r.step < len(steps) else None  # r.step: the step's index (-1 if unknown)
        if step is None or not math.isfinite(r.max_rel):
            continue
        r.added_rel = r.max_rel - max((upstream(i) for i in step.inputs if i), default=0.0)


def worst_layers(report: "PerLayerReport", n: int = 5) -> list[LayerRecord]:
    return sorted((r for r in report.layers if r.added_rel is not None and r.added_rel > 0),
                  key=lambda r: -r.added_rel)[:n]


def _op_label(step) -> str:
    return (step.domain + "." if step.domain else "") + step.op_type


# -- showing it -------------------------------------------------------------------------------------------------
def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g}"


def print_report(report: PerLayerReport, console) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"per layer: greenrt {report.precision} ({report.device}) vs onnxruntime (cpu, fp32)")
    for col in ("#", "step", "tensor", "op", "shape", "max abs err", "max rel err", "verdict"):
        table.add_column(col, justify="right" if col in ("#", "step") else "left",
                         overflow="fold" if col in ("tensor", "op") else "ellipsis")
    if any(r.spread_abs is not None for r in report.layers):
        table.add_column("ref spread abs")
    first_over = report.first_over
    for r in report.layers:
        style = {compare.MATCH: "green", compare.WITHIN_SPREAD: "yellow"}.get(r.verdict, "red")
        shown = "within spread" if r.verdict == compare.WITHIN_SPREAD else r.verdict
        mark = " <- first over tolerance" if r is first_over else ""
        cells = [str(r.index), str(r.step), escape(r.tensor), escape(r.op_type), "x".join(map(str, r.shape)),
                 _fmt(r.max_abs), _fmt(r.max_rel), f"[{style}]{shown}[/{style}]{mark}"]
        if len(table.columns) > 8:
            cells.append(_fmt(r.spread_abs))
        table.add_row(*cells)
    console.print(table)
    print(f"{len(report.layers)} layers compared of {report.steps} plan steps; {len(report.skipped)} step outputs "
          f"skipped (greenrt-only values, no ONNX tensor of that name: precision casts, names made by passes)"
          + (f"; {len(report.not_compared)} not tensors" if report.not_compared else ""))
    first_mismatch = report.first_mismatch
    if first_over is None:
        print(f"every layer within the tolerance (rtol {report.rtol:g}, atol {report.atol:g})")
    else:
        print(f"first layer over the tolerance: #{first_over.index} {first_over.tensor} ({first_over.op_type}, "
              f"step {first_over.step_name!r}): max abs err {_fmt(first_over.max_abs)} > tolerance "
              f"{_fmt(first_over.tolerance)}, {first_over.verdict}")
    if first_mismatch is not None:
        print(f"first MISMATCH: #{first_mismatch.index} {first_mismatch.tensor} ({first_mismatch.op_type})"
              + (f": {first_mismatch.note}" if first_mismatch.note else ""))
    worst = worst_layers(report)
    if worst:
        print("layers adding the most error (theirs minus the largest of their inputs'): " + ", ".join(
            f"{r.step_name or r.tensor} ({r.op_type}) +{_fmt(r.added_rel)}" for r in worst))
        quantized = [r for r in worst if r.op_type in ("greenrt.QConv", "greenrt.QMatMul") and r.step_name][:3]
        if quantized and report.precision.startswith("int8+"):
            float_precision = report.precision.removeprefix("int8+")
            rule = ",".join(f"{r.step_name}={float_precision}" for r in quantized)
            print(f"to keep the worst INT8 layers float, rebuild with --layer-precision '{rule}' (or let "
                  "--max-accuracy-drop choose)")
    finite = [r.max_rel for r in report.layers if math.isfinite(r.max_rel)]
    if report.layers and finite:
        last = report.layers[-1]
        print(f"error growth: max rel err {_fmt(report.layers[0].max_rel)} at the first layer, {_fmt(max(finite))} "
              f"at most, {_fmt(last.max_rel)} at the last ({last.tensor})")
    print(f"verdict: {report.verdict}")


def plot_growth(report: PerLayerReport, path: str) -> bool:
    """A line plot of max rel error per layer index (log scale), the first bad layer marked; False (and nothing
    written) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    floor = 1e-12  # log scale: an exact match is drawn at the floor
    xs = [r.index for r in report.layers]
    ys = [max(r.max_rel, floor) if math.isfinite(r.max_rel) else float("nan") for r in report.layers]
    fig, ax = plt.subplots(figsize=(max(6.0, min(20.0, 0.12 * len(xs))), 4.0))
    ax.plot(xs, ys, marker=".", linewidth=1)
    ax.set_yscale("log")
    ax.set_xlabel("layer (plan step output, graph order)")
    ax.set_ylabel("max rel err vs onnxruntime fp32")
    ax.set_title(f"{Path(report.model).name}: greenrt {report.precision} per-layer error")
    bad = [r.index for r in report.layers if not math.isfinite(r.max_rel)]
    if bad:
        ax.scatter(bad, [max(v for v in ys if v == v) if any(v == v for v in ys) else 1.0] * len(bad),
                   marker="x", color="red", label="NaN/Inf or shape mismatch")
    first = report.first_mismatch or report.first_over
    if first is not None:
        ax.axvline(first.index, color="red", linestyle="--",
                   label=f"first {'MISMATCH' if first is report.first_mismatch else 'over tolerance'}: {first.tensor}")
        ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


# -- the command ------------------------------------------------------------------------------------------------
PER_LAYER_FLAGS = ("precision", "layer_precision", "no_optimize", "load_inputs", "save_inputs", "data_loader", "plot",
                   "json")


def refuse_per_layer_flags(args) -> None:
    """A plain `greenrt compare` given flags that only --per-layer reads: say so rather than ignore them."""
    given = [f"--{f.replace('_', '-')}" for f in PER_LAYER_FLAGS if getattr(args, f, None)]
    if given:
        raise GreenrtError(f"{', '.join(given)} apply to --per-layer; add --per-layer or drop them")


def run_cli(args, console, err_console) -> int:
    """`greenrt compare --per-layer`: args from cli.py's compare sub-parser."""
    from ..runtime.session import InferenceSession, is_engine_file
    from .exit_codes import EXIT_MISMATCH, EXIT_OK

    is_engine = is_engine_file(args.model)
    build_flags = [f for f, on in (("--precision", args.precision), ("--layer-precision", args.layer_precision),
                                   ("--no-optimize", args.no_optimize)) if on]
    if is_engine and build_flags:
        raise GreenrtError(f"{', '.join(build_flags)} build an ONNX file; {args.model} is an engine, built already")
    if args.load_inputs and args.inputs:
        raise GreenrtError("--inputs and --load-inputs both name an input file; give one")
    if args.data_loader and (args.load_inputs or args.inputs):
        raise GreenrtError("--data-loader and --load-inputs both give the inputs; give one")
    if args.load_inputs:
        args.inputs = args.load_inputs
    if args.data_loader:
        feeds = data_loader_feeds(args.data_loader)
        source = f"data loader {args.data_loader} (its first feed dict)"
    else:  # random (seed, --shapes) or the .npz, checked against the model's inputs
        feeds = model_feeds(args, err_console)
        source = f"file {args.inputs}" if args.inputs else f"random, seed {args.seed}"
    feeds = {k: np.asarray(v) for k, v in feeds.items()}
    if args.save_inputs:
        save_feeds(args.save_inputs, feeds)
        console.print(f"saved the inputs to {args.save_inputs}", highlight=False, markup=False)

    with tempfile.TemporaryDirectory(prefix="greenrt-per-layer-") as tmp:
        if is_engine:
            engine = args.model
        else:
            from ..build import BuildConfig, build_engine

            engine = os.path.join(tmp, Path(args.model).stem + ".engine")
            config = BuildConfig(device=args.device or "cpu", precision=args.precision or "fp32",
                                 layer_precision=args.layer_precision or "", optimize=not args.no_optimize,
                                 seed=args.seed)
            with console.status("building"):
                build_engine(args.model, engine, config, log=lambda msg: None, samples=[feeds])
        session = InferenceSession(engine, device=args.device if is_engine else None,
                                   allow_mismatch=args.allow_mismatch, cuda_graphs=False)
        reference = compare_reference(args, session)[0]
        if args.rtol is None:
            args.rtol = compare.engine_rtol((session.header or {}).get("config", {}))
        report = per_layer_compare(session, reference, feeds, rtol=args.rtol, atol=args.atol,
                                   spread=not args.no_spread, k=args.spread_multiple,
                                   reference_timeout=args.reference_timeout,
                                   log=lambda msg: console.print(msg, highlight=False, markup=False))
    report.model = str(args.model)
    report.inputs["source"] = source
    print_report(report, console)
    if report.precision in ("fp16", "bf16") and report.rtol < 1e-3:
        print(f"note: a {report.precision} engine against fp32 is expected over rtol {report.rtol:g}; pass a "
              "tolerance that fits the precision, e.g. --rtol 1e-2")
    if args.plot:
        if plot_growth(report, args.plot):
            print(f"wrote the error-growth plot to {args.plot}")
        else:
            err_console.print("--plot needs matplotlib: pip install matplotlib (the comparison above is complete)",
                              highlight=False, markup=False)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report.to_json(), f, indent=1)
        print(f"wrote per-layer records to {args.json}")
    return EXIT_MISMATCH if report.verdict == compare.MISMATCH else EXIT_OK


__all__ = ["LayerRecord", "PerLayerReport", "per_layer_compare", "observe", "print_report", "plot_growth",
           "data_loader_feeds", "save_feeds", "run_cli", "refuse_per_layer_flags", "JSON_FORMAT"]
