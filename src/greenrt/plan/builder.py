"""Build an engine: ONNX -> import -> passes -> precision -> plan -> checks at the profiles' shapes -> engine file.

Each stage is one call into its folder; the build report gathers what each did (pass counts, precision per node,
memory, accuracy against the unoptimized fp32 graph at the opt shapes).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import GreenrtError
from ..onnx.importer import load_model
from ..passes import optimize
from ..runtime.executor import Executor
from ..runtime.session import resolve_device, set_fp32_math
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
    channels_last: bool | None = None  # None: on for CUDA engines with 4-D convolutions
    optimize: bool = True
    seed: int = 0

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


def build_engine(model_path: str | Path, output: str | Path, config: BuildConfig, log=print) -> dict:
    """Build ``model_path`` into the engine file ``output``; returns the engine header (with the build report)."""
    from ..precision import PrecisionConfig, apply_precision, parse_layer_precision
    from .engine_file import write_engine

    if config.precision not in PRECISIONS:
        raise GreenrtError(f"precision {config.precision!r} is not one of {PRECISIONS}")
    device = resolve_device(config.device)
    report: dict[str, Any] = {}

    log(f"import {model_path}")
    model = load_model(model_path)
    reference = load_model(model_path)  # the unoptimized fp32 graph, for the accuracy check
    nodes_before = model.graph.num_nodes()
    if config.optimize:
        passes = optimize(model)
        report["passes"] = [{"name": r.name, "rule": r.rule, "count": r.count} for r in passes]
        log("passes: " + ", ".join(f"{r.name} {r.count}" for r in passes))
    report["nodes"] = {"before": nodes_before, "after": model.graph.num_nodes()}

    reference_exec = Executor.from_model(reference, device)
    specs = {s.name: s for s in reference_exec.plan.inputs}
    check_profiles(config.profiles, reference_exec.plan.inputs, list(specs))
    sample_shapes = opt_shapes(config.profiles[0]) if config.profiles else {}
    sample = _random_feeds(reference_exec, sample_shapes, config.seed)

    if config.precision in ("fp16", "bf16"):
        overrides = parse_layer_precision(config.layer_precision) if config.layer_precision else []
        samples = [{k: v.cpu().numpy() for k, v in sample.items()}]
        prec = apply_precision(model, PrecisionConfig(config.precision, overrides), sample_feeds=samples)
        report["precision"] = prec.to_json()
        log(prec.summary())

    plan, weights = compile_model(model)
    if config.channels_last is None:
        config.channels_last = device.type == "cuda" and _has_conv(plan)

    # check the built plan at every profile's opt shape (and the model's default shapes without profiles)
    set_fp32_math(device, allow_tf32=config.precision == "tf32")
    engine_exec = Executor(plan, weights, device)
    accuracy = []
    for i, profile in enumerate(config.profiles or [None]):
        shapes = opt_shapes(profile) if profile else {}
        feeds = _random_feeds(reference_exec, shapes, config.seed + i)
        try:
            with torch.no_grad():
                ref = reference_exec.run(feeds)
                got = engine_exec.run(feeds)
        except GreenrtError as exc:
            given = {k: list(v.shape) for k, v in feeds.items()}
            raise GreenrtError(f"checking the built engine on random inputs of shapes {given} failed: {exc}\n"
                               "give representative shapes for dynamic inputs with --shapes") from None
        errs = {s.name: _max_rel(g, r) for s, g, r in zip(plan.outputs, got, ref)
                if isinstance(g, torch.Tensor) and g.is_floating_point()}
        accuracy.append({"profile": i, "shapes": {k: list(v.shape) for k, v in feeds.items()}, "max_rel_err": errs})
    report["accuracy_vs_fp32_unoptimized"] = accuracy
    log("accuracy vs unoptimized fp32: " + "; ".join(
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
    return " ".join(shlex.quote(x) for x in parts)
