"""Build an engine: ONNX -> import -> passes -> precision -> plan -> checks at the profiles' shapes -> engine file.

Each stage is one call into its folder; the build report gathers what each did (pass counts, precision per node,
memory, accuracy against the unoptimized fp32 graph at the opt shapes and on the given sample inputs).

Sample inputs (``--inputs a.npz``, or ``samples=[{name: array}]``) feed the fp16 range fallback, the accuracy
search (``--max-error``) and the accuracy check; without them random inputs at each profile's opt shapes are used.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import GreenrtError
from ..onnx.importer import load_model
from ..passes import optimize
from ..runtime.executor import Executor
from ..runtime.session import nhwc_input, resolve_device, set_engine_math
from .compile import compile_model
from .memory import activation_memory
from .profiles import Profile, check_profiles, max_shapes, opt_shapes

PRECISIONS = ("fp32", "tf32", "fp16", "bf16")


@dataclass
class BuildConfig:
    device: str = "cpu"
    precision: str = "fp32"
    layer_precision: str = ""
    profiles: list[Profile] = field(default_factory=list)
    workspace: int | None = None  # bytes of activation memory allowed at the profiles' max shapes
    channels_last: bool | None = None  # None: on for engines with 4-D convolutions (CUDA and CPU)
    optimize: bool = True
    seed: int = 0
    outputs: list[str] = field(default_factory=list)  # intermediate tensors marked as extra engine outputs
    max_error: float | None = None  # fp16/bf16: keep layers fp32 until this max relative error holds
    error_outputs: list[str] = field(default_factory=list)  # outputs max_error applies to (default: all float)
    inputs: list[str] = field(default_factory=list)  # .npz sample input files (CLI); or samples= in the API

    def to_json(self) -> dict:
        d = asdict(self)
        d["profiles"] = [p.to_json() for p in self.profiles]
        return d


def parse_size(text: str) -> int:
    """'4G', '512M', '1.5GiB', '1000000' -> bytes."""
    m = re.fullmatch(r"\s*([\d.]+)\s*([KMGT]?)(i?B)?\s*", text, re.IGNORECASE)
    if not m:
        raise GreenrtError(f"--workspace: cannot parse {text!r}; write e.g. 4G, 512M or a number of bytes")
    scale = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}[m.group(2).upper()]
    return int(float(m.group(1)) * scale)


def _random_feeds(executor: Executor, shapes: dict[str, list[int]], seed: int) -> dict[str, torch.Tensor]:
    from ..runtime.session import NodeArg
    from ..tools.inputs import index_bounds, random_inputs

    args = [NodeArg(s.name, s.shape, "", s.dtype) for s in executor.plan.inputs]
    arrays = random_inputs(args, shapes, seed=seed, int_bounds=index_bounds(executor.plan, executor.constants))
    from ..onnx.dtypes import numpy_to_torch

    return {k: numpy_to_torch(v, executor.device) for k, v in arrays.items()}


def _has_conv(plan) -> bool:
    return any(s.op_type in ("Conv", "FusedConv", "ConvTranspose") for s in plan.all_steps())


def _max_rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().float().cpu(), b.detach().float().cpu()
    scale = b.abs().max().item()
    return float((a - b).abs().max().item() / scale) if scale > 0 else float((a - b).abs().max().item())


def _load_model(model_path, config: BuildConfig, optimized: bool):
    """The model with ``config.outputs`` marked, optimized or not; node names made unique for precision rules."""
    from ..onnx.outputs import mark_outputs
    from ..passes.base import name_unnamed_nodes

    model = load_model(model_path)
    if config.outputs:
        mark_outputs(model, config.outputs)
    passes = optimize(model) if optimized and config.optimize else []
    name_unnamed_nodes(model.graph)
    return model, passes


def _check_samples(samples: list[dict[str, Any]], specs, profiles: list[Profile]) -> None:
    """Sample feeds name exactly the model's inputs, pass the session's input checks and fit a profile."""
    from ..errors import InvalidInputError
    from ..onnx.dtypes import numpy_to_torch
    from ..runtime.session import check_input, node_arg
    from .profiles import select_profile

    names = [s.name for s in specs]
    for i, feed in enumerate(samples):
        if sorted(feed) != sorted(names):
            raise InvalidInputError(f"sample input {i} has arrays {sorted(feed)}; the model's inputs are {names}")
        symbols: dict[str, tuple[int, str]] = {}
        for s in specs:
            try:
                check_input(node_arg(s), numpy_to_torch(np.asarray(feed[s.name])), symbols)
            except InvalidInputError as exc:
                raise InvalidInputError(f"sample input {i}: {exc}") from None
        select_profile(profiles, {k: list(v.shape) for k, v in feed.items()})


def _engine_executor(plan, weights, device, config: BuildConfig) -> tuple[Executor, bool]:
    """The executor as an InferenceSession of the engine will run it (layout included): what the checks and the
    accuracy search must measure, since NHWC picks other cuDNN kernels than NCHW."""
    channels_last = config.channels_last
    if channels_last is None:  # NHWC is faster for conv chains with cuDNN and with oneDNN on CPU (bench/NOTES.md)
        channels_last = _has_conv(plan)
    channels_last = bool(channels_last)
    return Executor(plan, weights, device, channels_last=channels_last), channels_last


def _run(executor: Executor, feeds: dict[str, torch.Tensor], channels_last: bool) -> list[Any]:
    if channels_last:
        feeds = {k: nhwc_input(v) for k, v in feeds.items()}
    with torch.no_grad():
        return executor.run(feeds)


def _max_errors(names: list[str], got: list[Any], ref: list[Any]) -> dict[str, float]:
    return {n: _max_rel(g, r) for n, g, r in zip(names, got, ref)
            if isinstance(g, torch.Tensor) and g.is_floating_point()}


def build_engine(model_path: str | Path, output: str | Path, config: BuildConfig, log=print,
                 samples: list[dict[str, Any]] | None = None) -> dict:
    """Build ``model_path`` into the engine file ``output``; returns the engine header (with the build report).

    ``samples``: feeds (input name -> numpy array) for the precision stage and the accuracy check; default: the
    ``config.inputs`` .npz files, else random inputs at the first profile's opt shapes.
    """
    from ..onnx.dtypes import numpy_to_torch
    from ..precision import PrecisionConfig, apply_precision, parse_layer_precision
    from ..tools.inputs import load_inputs
    from .engine_file import write_engine

    if config.precision not in PRECISIONS:
        raise GreenrtError(f"precision {config.precision!r} is not one of {PRECISIONS}")
    if config.max_error is not None and config.precision not in ("fp16", "bf16"):
        raise GreenrtError(f"--max-error searches which layers to keep fp32 in an fp16 or bf16 build; this build is "
                           f"{config.precision}: add --fp16 or --bf16, or drop --max-error")
    device = resolve_device(config.device)
    report: dict[str, Any] = {}

    log(f"import {model_path}")
    model, passes = _load_model(model_path, config, optimized=True)
    reference, _ = _load_model(model_path, config, optimized=False)  # unoptimized fp32, for the accuracy checks
    if config.optimize:
        report["passes"] = [{"name": r.name, "rule": r.rule, "count": r.count} for r in passes]
        log("passes: " + ", ".join(f"{r.name} {r.count}" for r in passes))
    report["nodes"] = {"before": reference.graph.num_nodes(), "after": model.graph.num_nodes()}

    reference_exec = Executor.from_model(reference, device)
    output_names = list(reference_exec.output_names)
    specs = {s.name: s for s in reference_exec.plan.inputs}
    check_profiles(config.profiles, reference_exec.plan.inputs, list(specs))
    if samples is None and config.inputs:
        samples = [load_inputs(p) for p in config.inputs]
    if samples:
        _check_samples(samples, reference_exec.plan.inputs, config.profiles)
        sample_feeds = [{k: numpy_to_torch(np.asarray(v), device) for k, v in f.items()} for f in samples]
    else:
        sample_shapes = opt_shapes(config.profiles[0]) if config.profiles else {}
        sample_feeds = [_random_feeds(reference_exec, sample_shapes, config.seed)]
    sample_arrays = [{k: v.cpu().numpy() for k, v in f.items()} for f in sample_feeds]
    with torch.no_grad():
        sample_refs = [reference_exec.run(f) for f in sample_feeds]
    checked = config.error_outputs or output_names
    unknown = [n for n in checked if n not in output_names]
    if unknown:
        raise GreenrtError(f"--error-outputs {unknown} are not outputs of the engine ({output_names}); mark "
                           "intermediate tensors with --outputs")

    set_engine_math(device, config.precision)  # as a session of the engine will run
    if config.precision in ("fp16", "bf16"):
        overrides = parse_layer_precision(config.layer_precision) if config.layer_precision else []
        prec_config = PrecisionConfig(config.precision, overrides)
        if config.max_error is not None:
            model, search = _accuracy_search(model_path, model, config, prec_config, device, sample_feeds,
                                             sample_arrays, sample_refs, output_names, checked, log,
                                             samples_given=bool(samples))
            report["accuracy_search"] = search.to_json() | {"outputs": checked}
            prec_config.keep_fp32 = search.keep_fp32()
        prec = apply_precision(model, prec_config, sample_feeds=sample_arrays)
        report["precision"] = prec.to_json()
        log(prec.summary())

    plan, weights = compile_model(model)
    engine_exec, channels_last = _engine_executor(plan, weights, device, config)
    if config.channels_last is None:
        config.channels_last = channels_last

    # check the built plan on the samples and at every profile's opt shape (the model's shapes without profiles)
    accuracy = []
    checks = [("sample", i, f) for i, f in enumerate(sample_feeds)] if samples else []
    for i, profile in enumerate(config.profiles or [None]):
        shapes = opt_shapes(profile) if profile else {}
        checks.append(("random", i, _random_feeds(reference_exec, shapes, config.seed + i)))
    for kind, i, feeds in checks:
        try:
            with torch.no_grad():
                ref = reference_exec.run(feeds)
            got = _run(engine_exec, feeds, channels_last)
        except GreenrtError as exc:
            given = {k: list(v.shape) for k, v in feeds.items()}
            raise GreenrtError(f"checking the built engine on {kind} inputs of shapes {given} failed: {exc}\n"
                               "give representative shapes for dynamic inputs with --shapes") from None
        entry = {"inputs": kind, ("sample" if kind == "sample" else "profile"): i,
                 "shapes": {k: list(v.shape) for k, v in feeds.items()},
                 "max_rel_err": _max_errors(output_names, got, ref)}
        accuracy.append(entry)
    report["accuracy_vs_fp32_unoptimized"] = accuracy
    log("accuracy vs unoptimized fp32: " + "; ".join(
        f"{a['inputs']} {a.get('sample', a.get('profile'))}: " +
        ", ".join(f"{k} {v:.2e}" for k, v in a["max_rel_err"].items()) for a in accuracy))

    memory = []
    for i, profile in enumerate(config.profiles or [None]):
        shapes = max_shapes(profile) if profile else {}
        mem = activation_memory(engine_exec, _random_feeds(reference_exec, shapes, config.seed))
        memory.append({"profile": i, "shapes": shapes, **mem.to_json()})
        peak = mem.measured_peak_bytes or mem.peak_bytes
        log(f"activation memory at max shapes (profile {i}): peak {mem.peak_bytes / 2**20:.1f} MiB with reuse, "
            f"{mem.naive_bytes / 2**20:.1f} MiB without")
        if config.workspace is not None and peak > config.workspace:
            raise GreenrtError(
                f"profile {i} needs {peak / 2**20:.1f} MiB of activation memory at its max shapes, over the "
                f"workspace limit of {config.workspace / 2**20:.1f} MiB; lower the max shapes or raise --workspace"
            )
    report["memory"] = memory

    cfg = config.to_json()
    cfg["model"] = str(model_path)
    cfg["build_command"] = build_command(model_path, output, config)
    header = write_engine(output, plan, weights, device=device.type, config=cfg,
                          profiles=[p.to_json() for p in config.profiles], report=report)
    log(f"wrote {output} ({Path(output).stat().st_size / 2**20:.1f} MiB)")
    return header


def _accuracy_search(model_path, model, config: BuildConfig, prec_config, device, sample_feeds, sample_arrays,
                     sample_refs, output_names, checked, log, samples_given: bool = False):
    """Run the fp32-prefix search (precision/search.py) on the samples; returns a fresh optimized model and the
    result. Each trial rebuilds from the ONNX file: the precision rewrite works in place."""
    from dataclasses import replace

    from ..precision import apply_precision
    from ..precision.search import search_fp32_prefix

    probe = apply_precision(model, prec_config, sample_feeds=sample_arrays)  # which layers run reduced
    candidates = [n.node for n in probe.nodes if n.precision == config.precision and not n.reason and n.node]

    def evaluate(keep: int) -> float:
        trial, _ = _load_model(model_path, config, optimized=True)
        trial_config = replace(prec_config, keep_fp32={name: "search" for name in candidates[:keep]})
        apply_precision(trial, trial_config, sample_feeds=sample_arrays)
        plan, weights = compile_model(trial)
        executor, channels_last = _engine_executor(plan, weights, device, config)
        worst = 0.0
        for feeds, ref in zip(sample_feeds, sample_refs):
            errs = _max_errors(output_names, _run(executor, feeds, channels_last), ref)
            worst = max([worst] + [errs[n] for n in checked if n in errs])
        return worst

    log(f"accuracy search: {len(candidates)} {config.precision} layers, target max rel err {config.max_error:g} on "
        f"{', '.join(checked)} over {len(sample_feeds)} sample(s)")
    if not samples_given:
        log("warning: the accuracy search runs on random inputs, whose error can differ from real data's either "
            "way; give representative inputs with --inputs")
    search = search_fp32_prefix(candidates, evaluate, config.max_error, log=log)
    fresh, _ = _load_model(model_path, config, optimized=True)
    return fresh, search


def build_command(model_path, output, config: BuildConfig) -> str:
    # the output path is left out: the same model and config give a byte-identical engine wherever it is written
    parts = ["greenrt", "build", str(model_path), "--device", config.device]
    if config.precision != "fp32":
        parts.append(f"--{config.precision}")
    for p in config.profiles:
        spec = ",".join(f"{n}:{'x'.join(map(str, a))}/{'x'.join(map(str, b))}/{'x'.join(map(str, c))}"
                        for n, (a, b, c) in p.shapes.items())
        parts += ["--shapes", spec]
    if config.layer_precision:
        parts += ["--layer-precision", config.layer_precision]
    if config.workspace:
        parts += ["--workspace", str(config.workspace)]
    if config.outputs:
        parts += ["--outputs", ",".join(config.outputs)]
    if config.max_error is not None:
        parts += ["--max-error", f"{config.max_error:g}"]
    if config.error_outputs:
        parts += ["--error-outputs", ",".join(config.error_outputs)]
    for path in config.inputs:
        parts += ["--inputs", str(path)]
    return " ".join(shlex.quote(x) for x in parts)
