"""Build an engine: ONNX -> import -> passes -> precision -> plan -> checks -> engine file.

Each stage is one call into its folder; this stage runs the model wherever a decision needs it (range
observation for the fp16 fallback, the accuracy search, the checks, the memory report), always through the
runner a session of the engine will use (runtime/runner.py). The build report gathers what each stage did: pass
counts, precision per node, memory, accuracy against the unoptimized fp32 graph, and which checks were skipped
and why.

Sample inputs (``--inputs a.npz``, or ``samples=[{name: array}]``) feed the fp16 range fallback, the accuracy
search (``--max-error``) and the checks. Random inputs are drawn only at shapes known to suit the model (build/
checks.py): a build never fails because a made-up shape does not suit it.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import GreenrtError, InvalidInputError
from ..onnx.dtypes import numpy_to_torch, torch_to_numpy
from ..onnx.importer import load_model
from ..passes import optimize
from ..plan.compile import compile_model
from ..plan.engine_file import current_device_info, current_versions, write_engine
from ..plan.profiles import check_profiles
from ..precision import PrecisionConfig, apply_precision, parse_layer_precision
from ..runtime.runner import Runner
from .accuracy import float_output_errors
from .checks import CheckInputs, check_samples, device_random_feeds, run_reference, valid_shapes
from .config import BuildConfig, build_command
from .inputs import load_inputs
from .memory import activation_memory
from .observe import observe_ranges
from .search import accuracy_search
from .tactics import TimingCache
from .target import resolve_target, target_device_info, target_versions


def _has_conv(plan) -> bool:
    return any(s.op_type in ("Conv", "FusedConv", "ConvTranspose") for s in plan.all_steps())


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


def engine_runner(plan, weights, device, config: BuildConfig) -> Runner:
    """The runner as a session of the engine will run it (layout and math included): what the checks and the
    accuracy search must measure, since NHWC picks other kernels than NCHW."""
    channels_last = config.channels_last
    if channels_last is None:  # NHWC is faster for conv chains with cuDNN and with oneDNN on CPU (bench/NOTES.md)
        channels_last = _has_conv(plan)
    return Runner(plan, weights, device, precision=config.precision, channels_last=bool(channels_last))


def build_engine(model_path: str | Path, output: str | Path, config: BuildConfig, log=print,
                 samples: list[dict[str, Any]] | None = None, progress=None) -> dict:
    """Build ``model_path`` into the engine file ``output``; returns the engine header (with the build report).

    ``samples``: feeds (input name -> numpy array) for the precision stage and the checks; default: the
    ``config.inputs`` .npz files, else random inputs at shapes known to suit the model (if any).
    ``progress(what, done, total)``: called as long stages advance (the tactic timer, per layer).
    The returned header also holds ``build``: this build's wall-clock seconds (in all, and timing tactics). They are
    not written into the engine file, so that the same model, config and warm timing cache give the same bytes.
    """
    config.validate()
    t_build = time.perf_counter()
    command = build_command(model_path, config)
    cache = TimingCache.load(config.timing_cache)
    where = resolve_target(config.device, cache, config.timing_cache)
    device = where.run_on  # the CPU in a build for a GPU this machine lacks (build/target.py)
    report: dict[str, Any] = {}
    if where.cross:
        log(f"no GPU here: building for {where.describe()}, the GPU the timing cache {config.timing_cache} was "
            "taken on; tactics from the cache, the model run on the CPU for the checks")

    log(f"import {model_path}")
    model, passes = _load_model(model_path, config, optimized=True)
    reference, _ = _load_model(model_path, config, optimized=False)  # unoptimized fp32, for the accuracy checks
    if config.optimize:
        report["passes"] = [{"name": r.name, "rule": r.rule, "count": r.count} for r in passes]
        log("passes: " + ", ".join(f"{r.name} {r.count}" for r in passes))
    report["nodes"] = {"before": reference.graph.num_nodes(), "after": model.graph.num_nodes()}

    ref_runner = Runner(*compile_model(reference), device, precision="fp32")
    output_names = list(ref_runner.output_names)
    specs = ref_runner.plan.inputs
    check_profiles(config.profiles, specs, [s.name for s in specs])
    checked = config.error_outputs or output_names
    unknown = [n for n in checked if n not in output_names]
    if unknown:
        raise GreenrtError(f"--error-outputs {unknown} are not outputs of the engine ({output_names}); mark "
                           "intermediate tensors with --outputs")

    # what to run the model on: the samples, then random inputs at shapes known to suit it
    if samples is None and config.inputs:
        samples = [load_inputs(p) for p in config.inputs]
    checks: list[CheckInputs] = []
    if samples:
        check_samples(samples, specs, config.profiles)
        checks += [CheckInputs("sample", f"sample {i}", {k: numpy_to_torch(np.asarray(v), device)
                                                          for k, v in f.items()}) for i, f in enumerate(samples)]
    shapes, no_shapes_reason = valid_shapes(config.profiles, specs, samples)
    skipped: list[dict[str, str]] = []
    if not samples or config.profiles:
        for i, (label, s) in enumerate(shapes):
            try:
                checks.append(CheckInputs("random", label, device_random_feeds(ref_runner, s, config.seed + i)))
            except InvalidInputError as exc:  # e.g. a declared shape too large to draw random values at
                skipped.append({"check": label, "reason": f"no random inputs at {label}: {exc}"})
    if not checks:
        why = no_shapes_reason or "; ".join(s["reason"] for s in skipped)
        skipped.append({"check": "accuracy", "reason": f"engine not checked: {why}"})
    refs = []
    for check in list(checks):
        ref, why = run_reference(ref_runner, check)
        if ref is None:
            checks.remove(check)
            skipped.append({"check": check.label, "reason": why})
        else:
            refs.append(ref)
    # the precision stage sees the samples, else the random inputs that ran
    prec_feeds = [c for c in checks if c.kind == "sample"] or checks

    if config.int8:
        report["int8"] = _quantize_int8(model_path, model, config, log, progress, ref_runner)
    if config.precision in ("fp16", "bf16"):
        overrides = _float_rules(parse_layer_precision(config.layer_precision))
        prec_config = PrecisionConfig(config.precision, overrides)
        observed = None
        if prec_feeds:
            observed = observe_ranges(model, [{k: v.cpu() for k, v in c.feeds.items()} for c in prec_feeds])
        elif config.precision == "fp16":
            observed = _observe_made_up(model, ref_runner, config, skipped, no_shapes_reason, log)
        if config.max_error is not None:
            if not prec_feeds:
                raise GreenrtError(f"--max-error measures the error on sample inputs and there are none: "
                                   f"{no_shapes_reason}")
            search_refs = [r for c, r in zip(checks, refs) if any(c is f for f in prec_feeds)]
            search = accuracy_search(
                lambda: _load_model(model_path, config, optimized=True)[0], prec_config, observed,
                lambda plan, weights: engine_runner(plan, weights, device, config),
                [c.feeds for c in prec_feeds], search_refs, output_names, checked, config.max_error, log,
                samples_given=bool(samples))
            report["accuracy_search"] = search.to_json() | {"outputs": checked}
            prec_config.keep_fp32 = search.keep_fp32()
        prec = apply_precision(model, prec_config, observed)
        report["precision"] = prec.to_json()
        log(prec.summary())

    plan, weights = compile_model(model)
    runner = engine_runner(plan, weights, device, config)
    tactics = _choose_tactics(runner, ref_runner, config, checks, log, progress, cache, where.target)
    report["tactics"] = tactics.to_json()
    if where.cross:  # the target's tactics cannot run here: the checks below run the ops' defaults on the CPU
        report["built_for_another_device"] = {
            "target": where.target, "built_on": current_device_info("cpu") | {"versions": current_versions()},
            "checks": "run on this machine's CPU with the ops' default implementations; each tactic taken from "
                      "the timing cache was checked against the op's default on the target when the cache was taken"}
    elif tactics.layers:
        runner = engine_runner(plan, weights, device, config)  # bind the chosen tactics

    accuracy = []
    for check, ref in zip(checks, refs):
        try:
            got = runner.run(check.feeds)
        except GreenrtError as exc:
            shapes_given = {k: list(v.shape) for k, v in check.feeds.items()}
            raise GreenrtError(f"the built engine fails on {check.label} {shapes_given}, which the unoptimized model "
                               f"runs: {exc}") from None
        accuracy.append({"inputs": check.kind, "label": check.label,
                         "shapes": {k: list(v.shape) for k, v in check.feeds.items()},
                         "max_rel_err": float_output_errors(output_names, got, ref)})
    report["accuracy_vs_fp32_unoptimized"] = accuracy
    report["skipped_checks"] = skipped
    if accuracy:
        log("accuracy vs unoptimized fp32: " + "; ".join(
            f"{a['label']}: " + ", ".join(f"{k} {v:.2e}" for k, v in a["max_rel_err"].items()) for a in accuracy))
    for s in skipped:
        log(f"skipped {s['check']}: {s['reason']}")

    report["memory"] = _memory_report(runner, ref_runner, config, specs, samples, log, skipped)

    cfg = replace(config, channels_last=runner.channels_last).to_json()  # the layout chosen, for the session
    cfg["model"] = str(model_path)
    cfg["build_command"] = command
    header = write_engine(output, plan, weights, device=torch.device(config.device).type, config=cfg,
                          profiles=[p.to_json() for p in config.profiles], report=report,
                          device_info=target_device_info(where.target) if where.cross else None,
                          versions=target_versions(where.target, current_versions()) if where.cross else None)
    seconds = time.perf_counter() - t_build
    log(f"wrote {output} ({Path(output).stat().st_size / 2**20:.1f} MiB) in {seconds:.1f} s")
    header["build"] = {"seconds": round(seconds, 3), "tactic_seconds": round(tactics.seconds, 3)}
    return header


def _float_rules(rules: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The --layer-precision rules the float precision stage takes (the int8 ones are the INT8 stage's)."""
    return [(pattern, value) for pattern, value in rules if value != "int8"]


def _quantize_int8(model_path, model, config: BuildConfig, log, progress, ref_runner: Runner) -> dict:
    """The INT8 stage: the calibration (reused from --calib-cache where it was made for this model and calibrator,
    else run over --calib and written there), the --max-accuracy-drop search if asked (build/int8_search.py), then
    the convs and GEMMs rewritten as INT8 layers (precision/int8.py)."""
    from ..precision.int8 import quantize_int8
    from .calibration import calibrate, model_input_names, open_calibration_data

    names = model_input_names(model_path)
    source = None
    if config.calib and not (config.calib_cache and Path(config.calib_cache).exists()):
        source = open_calibration_data(config.calib, names, config.calib_preprocess)
    step = (lambda done, total: progress("calibrating", done, total)) if progress else None
    t0 = time.perf_counter()
    calibration = calibrate(model_path, source, method=config.calib_method, percentile=config.percentile,
                            batch_size=config.calib_batch, cache=config.calib_cache, progress=step)
    how = (f"calibration cache {config.calib_cache} reused" if calibration.reused else
           f"calibrated over {calibration.samples} samples of {calibration.data}" +
           (f", cache written to {config.calib_cache}" if config.calib_cache else ""))
    log(f"int8: {how} ({calibration.method}, {len(calibration.ranges)} tensors, {time.perf_counter() - t0:.1f} s)")
    rules = parse_layer_precision(config.layer_precision) if config.layer_precision else []
    means = calibration.channel_means if config.bias_correction else None
    if config.bias_correction and not calibration.channel_means:
        log(f"int8: no bias correction: the calibration cache {config.calib_cache} holds no channel means (made by an "
            "older greenrt); calibrate again (delete it) to have them")
    out: dict = {}
    smooth = config.smooth
    trials = None
    if smooth == "auto" or config.max_accuracy_drop is not None:
        purpose = "--max-accuracy-drop" if config.max_accuracy_drop is not None else "--smooth auto"
        trials = _Trials(model_path, config, calibration, means, rules, names, ref_runner, purpose)
    if smooth == "auto":
        smooth, out["smooth"] = _choose_smooth(trials, log)
    if config.max_accuracy_drop is not None:
        search = _int8_search(trials, config, smooth, log, progress)
        out["accuracy_search"] = search.to_json()
        keep = {name: f"accuracy budget ({config.metric} drop within {config.max_accuracy_drop:g})"
                for name in search.kept_float}
    else:
        keep = {}
    quantized = quantize_int8(model, calibration.ranges, rules, keep, means, calibration.channel_amax, smooth,
                              fmt=config.quant_format)
    log(quantized.summary())
    return quantized.to_json() | out | {"calibration": {
        "method": calibration.method, "settings": calibration.settings, "samples": calibration.samples,
        "data": calibration.data, "cache": config.calib_cache, "reused": calibration.reused,
        "seconds": round(time.perf_counter() - t0, 2)}}


MAX_TUNING_SAMPLES = 256  # the tuning set's samples trial engines run on (the first ones)
SMOOTH_GRID = (0.5, 0.6, 0.7, 0.8, 0.9)  # --smooth auto: the alphas tried (and no smoothing)


class _Trials:
    """Trial INT8 engines on the tuning data (--accuracy-data, default the calibration data) against the fp32
    model's outputs there: what --smooth auto and --max-accuracy-drop measure."""

    def __init__(self, model_path, config: BuildConfig, calibration, means, rules, names, ref_runner: Runner,
                 purpose: str):
        from .calibration import open_calibration_data

        self.fmt = config.quant_format
        self.data = config.accuracy_data or config.calib
        if not self.data:
            raise GreenrtError(f"{purpose} measures trial engines on data: give --accuracy-data DATA (or --calib "
                               "DATA, which it uses by default)")
        source = open_calibration_data(self.data, names, config.calib_preprocess)
        self.feeds, self.samples = [], 0
        for batch in source.batches(config.calib_batch):
            self.feeds.append({k: numpy_to_torch(np.ascontiguousarray(v), ref_runner.device)
                               for k, v in batch.items()})
            self.samples += len(next(iter(batch.values())))
            if self.samples >= MAX_TUNING_SAMPLES:
                break
        self.output = ref_runner.output_names[0]  # the metrics compare the first output
        self.refs = [torch_to_numpy(ref_runner.run(f)[0].detach().cpu()) for f in self.feeds]
        self.model_path, self.config, self.calibration, self.means, self.rules = (model_path, config, calibration,
                                                                                 means, rules)
        self.device = ref_runner.device.type

    def model(self):
        """The optimized float graph, loaded anew (quantize rewrites it in place)."""
        return _load_model(self.model_path, self.config, optimized=True)[0]

    def quantize(self, model, keep: dict[str, str] | None, smooth: float | None):
        """``model`` rewritten in place as this build's INT8 stage would, ``keep`` float; its report."""
        from ..precision.int8 import quantize_int8

        c = self.calibration
        return quantize_int8(model, c.ranges, self.rules, keep, self.means, c.channel_amax, smooth,
                             fmt=self.fmt)

    def run(self, keep: dict[str, str] | None, smooth: float | None, n: int | None = None) -> tuple[list, float]:
        """The trial engine's first output on the first ``n`` tuning batches, and its mean |error| relative to the
        fp32 outputs' mean |value|."""
        trial = self.model()
        self.quantize(trial, keep, smooth)
        if self.config.precision in ("fp16", "bf16"):
            apply_precision(trial, PrecisionConfig(self.config.precision, _float_rules(self.rules)))
        runner = engine_runner(*compile_model(trial), self.device, self.config)
        n = len(self.feeds) if n is None else n
        ours = [torch_to_numpy(runner.run(f)[0].detach().cpu()) for f in self.feeds[:n]]
        err = sum(float(np.abs(o.astype(np.float64) - r).mean()) for o, r in zip(ours, self.refs)) / max(
            sum(float(np.abs(r).mean()) for r in self.refs[:n]), 1e-30)
        return ours, err


def _choose_smooth(trials: _Trials, log) -> tuple[float | None, dict]:
    """--smooth auto: each alpha of SMOOTH_GRID and no smoothing, the one whose trial engine's output is closest to
    fp32's on the tuning data."""
    errors = {}
    for alpha in (None, *SMOOTH_GRID):
        errors[alpha] = trials.run(None, alpha)[1]
    best = min(errors, key=errors.get)
    table = ", ".join(f"{'none' if a is None else a}: {e:.4g}" for a, e in errors.items())
    log(f"int8: --smooth auto chose {'no smoothing' if best is None else best} (mean relative error on "
        f"{trials.samples} samples of {trials.data}: {table})")
    return best, {"chosen": best, "errors": {"none" if a is None else str(a): e for a, e in errors.items()}}


def _int8_search(trials: _Trials, config: BuildConfig, smooth: float | None, log, progress):
    """--max-accuracy-drop: trial INT8 engines on the tuning data (build/int8_search.py)."""
    from .int8_search import layer_cost, resolve_metric, search_int8

    metric = resolve_metric(config.metric)
    probe = trials.model()
    cost = layer_cost(probe)  # of the float layers, before the INT8 rewrite
    candidates = [x.node for x in trials.quantize(probe, None, smooth).quantized]
    refs = trials.refs

    def evaluate(kept: list[str], quick: bool = False) -> tuple[float, float]:
        ours, err = trials.run({name: "trial" for name in kept}, smooth, 1 if quick else None)
        return float(metric(ours, refs[:len(ours)])), err

    log(f"int8 search: {len(candidates)} INT8 layers, {config.metric} drop within {config.max_accuracy_drop:g} on "
        f"{trials.samples} samples of {trials.data} (output {trials.output!r})")
    step = (lambda done, total: progress("measuring layer sensitivity", done, total)) if progress else None
    result = search_int8(candidates, cost, evaluate, config.max_accuracy_drop, config.metric, log, step)
    if not result.met:
        log(f"warning: --max-accuracy-drop {config.max_accuracy_drop:g} not met even with every layer float "
            f"({config.metric} drop {result.final:.4g}): the float layers' own precision or the data decide it")
    else:
        log(f"int8 search: {len(result.kept_float)} layer(s) kept float, {config.metric} drop {result.final:.4g}; "
            f"the same engine without the search: --layer-precision '{result.layer_precision}'")
    return result


def _choose_tactics(runner: Runner, ref_runner: Runner, config: BuildConfig, checks: list[CheckInputs], log,
                    progress, cache: TimingCache, target: dict | None):
    """The tactic stage (build/tactics.py) at the first profile's opt shape, else at the first check's inputs;
    ``target``: another device's, whose winners come from ``cache`` (build/target.py)."""
    from ..plan.profiles import opt_shapes
    from .tactics import TacticReport, choose_tactics, target_of

    entries_before = len(cache.entries)
    feeds = None
    if config.opt_level > 0:
        if config.profiles:
            feeds = device_random_feeds(ref_runner, opt_shapes(config.profiles[0]), config.seed)
        elif checks:
            feeds = checks[0].feeds
    layer_progress = (lambda done, total: progress("timing tactics", done, total)) if progress else None
    try:
        report = choose_tactics(runner, feeds, config.opt_level, cache, config.precision or "fp32",
                                progress=layer_progress, target=target)
    except GreenrtError as exc:  # the model does not run at these inputs: the checks below will say so too
        for bound in runner.executor.steps:
            bound.step.tactic = ""  # keep no choice from the part that ran
        shapes = {k: list(v.shape) for k, v in feeds.items()}
        report = TacticReport(config.opt_level, target or target_of(runner.device),
                              reason=f"nothing timed: the engine failed at {shapes}: {exc}")
    if report.layers:
        log(f"tactics at {report.shapes}: {report.timed} layer(s) timed, {report.cached} from the timing cache, "
            f"{report.seconds:.1f} s")
    elif report.reason and config.opt_level > 0:
        log(f"tactics: {report.reason}")
    if report.missing:
        log(f"tactics: {len(report.missing)} layer(s) not in the timing cache keep the op's default on the target "
            f"(first: {report.missing[0]}); take the cache again on the target with this model and --shapes")
    if not report.reason or report.layers:
        report.engine = _choose_compiled(runner, ref_runner, config, feeds, cache, target, log)
    if config.timing_cache and len(cache.entries) != entries_before:
        cache.save()
    return report


def _choose_compiled(runner: Runner, ref_runner: Runner, config: BuildConfig, feeds, cache: TimingCache,
                     target: dict | None, log):
    """The engine as a whole: greenrt's executor or Inductor's compiled graph (build/tactics.choose_compiled), each
    run as a session of the engine runs it (shape specialization, CUDA graphs on a GPU)."""
    import shutil

    from ..runtime.compiled import compiled_code_path, plan_key
    from .tactics import choose_compiled

    plan, device = runner.plan, runner.device
    keys: list[str] = []

    def make_runner(compiled: str) -> Runner:
        if compiled and not keys:
            keys.append(f"build-{plan_key(plan, runner.executor.weights)}")
        return Runner(plan, runner.executor.weights, device, precision=config.precision,
                      channels_last=runner.channels_last, specialize=True, cuda_graphs=device.type == "cuda",
                      compile_key=keys[0] if keys else None)

    def reference() -> list | None:  # the unoptimized fp32 graph at the timing inputs, for the accuracy check
        try:
            return [o.clone() if isinstance(o, torch.Tensor) else o for o in ref_runner.run(feeds)]
        except GreenrtError:
            return None

    try:
        ref = reference() if feeds is not None and config.opt_level >= 4 and target is None else None
        choice = choose_compiled(make_runner, plan, feeds, config.opt_level, cache, config.precision or "fp32",
                                 target=target, reference=ref)
    finally:  # the build's own compiled code: a session compiles into the engine's folder at its first run
        for key in keys:
            shutil.rmtree(compiled_code_path(key, device), ignore_errors=True)
    if choice.timings_ms:
        times = ", ".join(f"{k} {v:.3f} ms" for k, v in choice.timings_ms.items())
        log(f"engine: {choice.winner} ({times}{'; from the timing cache' if choice.cached else ''})")
    elif config.opt_level >= 4 and choice.reason:
        log(f"engine: the executor ({choice.reason})")
    return choice


def _observe_made_up(model, ref_runner: Runner, config: BuildConfig, skipped: list, no_shapes_reason: str, log):
    """The fp16 range fallback's last resort when no shape is known to suit the model: random inputs with the
    dynamic dims made up (as `greenrt run` makes them). Ranges seen on them are a weak guide, but better than
    weights alone; the engine is still not *checked* on them. If the model rejects them, the fallback sees only the
    weights, and the report says why."""
    check = CheckInputs("random", "made-up shapes", device_random_feeds(ref_runner, {}, config.seed))
    ref, why = run_reference(ref_runner, check)
    shapes = {k: list(v.shape) for k, v in check.feeds.items()}
    if ref is None:
        skipped.append({"check": "fp16 range fallback", "reason": "no inputs to observe activation ranges on (only "
                        f"weights were checked): {no_shapes_reason}; {why}"})
        return None
    log(f"fp16 range fallback: no sample inputs; activation ranges observed on random inputs at made-up shapes "
        f"{shapes} (give --inputs for ranges of real data)")
    skipped.append({"check": "fp16 range fallback on real data", "reason": "activation ranges observed on random "
                    f"inputs at made-up shapes {shapes} only: {no_shapes_reason}"})
    return observe_ranges(model, [{k: v.cpu() for k, v in check.feeds.items()}])


def _memory_report(runner: Runner, ref_runner: Runner, config: BuildConfig, specs, samples, log,
                   skipped: list) -> list[dict]:
    """Activation memory at each profile's max shapes (else the sample or static shapes), against the workspace."""
    shapes, why = valid_shapes(config.profiles, specs, samples, which="max")
    memory = []
    for i, (label, s) in enumerate(shapes):
        try:
            feeds = device_random_feeds(ref_runner, s, config.seed)  # refused for shapes too large to draw at
            mem = activation_memory(runner, feeds)
        except GreenrtError as exc:
            why = f"the engine cannot run random inputs at {label} {s}: {exc}"
            if config.workspace is not None:
                raise GreenrtError(f"cannot check the workspace limit: {why}") from None
            skipped.append({"check": f"memory at {label}", "reason": why})
            log(f"skipped memory at {label}: {why}")
            continue
        memory.append({"profile": i if config.profiles else None, "label": label, "shapes": s, **mem.to_json()})
        peak = mem.measured_peak_bytes or mem.peak_bytes
        log(f"activation memory at {label}: peak {mem.peak_bytes / 2**20:.1f} MiB with reuse, "
            f"{mem.naive_bytes / 2**20:.1f} MiB without")
        if config.workspace is not None and peak > config.workspace:
            raise GreenrtError(
                f"{label} need {peak / 2**20:.1f} MiB of activation memory, over the workspace limit of "
                f"{config.workspace / 2**20:.1f} MiB; lower the max shapes or raise --workspace")
    if not shapes:
        if config.workspace is not None:
            raise GreenrtError(f"cannot check the workspace limit: {why}")
        skipped.append({"check": "memory", "reason": f"activation memory not measured: {why}"})
    return memory
