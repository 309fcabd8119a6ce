"""`greenrt bench`: greenrt against its baselines, side by side in one process, on rotating random inputs.

For each batch size and each runner (greenrt, then onnxruntime with its default session options and at its best,
OpenVINO, torch eager / eager + CUDA graph / torch.compile): warm-up, then latency (CUDA events on the GPU,
perf_counter after the call on CPU: p50/p90/p99), then throughput over a steady window with an energy counter read
before and after it (NVML on CUDA, RAPL on CPU where readable; tools/energy.py enforces the minimum window a
counter needs). Results follow greenrt-results/1 (tools/results.py): one record per (runner, batch), greenrt's
records carrying their ratios to each baseline.

Latency in interleaved rounds (the default on the CPU, ``rounds``): a small shared machine drifts by tens of percent
within a minute, so timing one runner after the other compares the machine's moods, not the runners. Instead, in
each round every runner runs a block of calls on the same inputs, the order rotated each round so nobody always goes
first; a record's latency_ms_p50 is the median over rounds of its per-round median, and greenrt's
round_latency_ratio_vs is the median of the per-round ratios (greenrt's / the baseline's). Every runner uses the
same thread count (``threads``; torch's is set for the run and restored after it).

    config = BenchConfig(model="m.onnx", device="cpu", batches=[1, 8], vs=["onnxruntime", "openvino"])
    records, metadata = run_bench(config)
"""

from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..build.user_code import load_callable
from ..errors import GreenrtError
from . import energy

BASELINES = ("onnxruntime", "openvino", "openvino-bf16", "eager", "eager-cudagraph", "torch-compile")
TORCH_BASELINES = ("eager", "eager-cudagraph", "torch-compile")
DEFAULT_BATCHES = {"cuda": [1, 256], "cpu": [1, 8]}
DEFAULT_DURATION_S = {"cuda": 5.0, "cpu": 3.0}
DEFAULT_WARMUP = 10
DEFAULT_ROUNDS = {"cuda": 0, "cpu": 10}  # interleaved latency rounds; 0: each runner timed on its own, in turn
# world-average carbon intensity of electricity generation; approximate: set --grid-intensity for your grid
DEFAULT_GRID_INTENSITY = 480.0
GRID_INTENSITY_SOURCE = ("approximate world average of electricity generation, about 480 gCO2e/kWh in 2023 "
                         "(Ember, Global Electricity Review 2024; the IEA gives a similar figure); set "
                         "--grid-intensity for your grid")
LATENCY_MIN_CALLS, LATENCY_MAX_CALLS = 20, 2000
ROTATING_INPUTS = 4  # distinct random input sets the calls cycle through
MIN_BLOCK_CALLS = ROTATING_INPUTS  # calls per runner per round, at least: every input set once a round


# -- arguments ----------------------------------------------------------------------------------------------------
def parse_batches(spec: str) -> list[int]:
    """'1,256' -> [1, 256]."""
    out = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        if not item.isdigit() or int(item) < 1:
            raise GreenrtError(f"--batch: {item!r} is not a positive integer; write e.g. --batch 1,256")
        out.append(int(item))
    if not out:
        raise GreenrtError("--batch: no batch size given; write e.g. --batch 1,256")
    return list(dict.fromkeys(out))


def parse_vs(spec: str) -> list[str]:
    """'onnxruntime,eager' -> ['onnxruntime', 'eager']; unknown names are an error listing the known ones."""
    names = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [n for n in names if n not in BASELINES]
    if unknown:
        raise GreenrtError(f"--vs: unknown baseline(s) {unknown}; choose from {', '.join(BASELINES)}")
    return list(dict.fromkeys(names))


def load_factory(spec: str) -> Callable:
    """'pkg.mod:factory' -> the callable (it returns an nn.Module taking the model's inputs in order)."""
    return load_callable(spec, "--torch-module", "write pkg.module:factory")


def batch_shapes(inputs, shapes: dict[str, list[int]], batch: int) -> dict[str, list[int]]:
    """Each input's shape at ``batch``: dim 0 is the batch, other dims declared or from --shapes; a dynamic dim
    with no size is an error asking for --shapes."""
    out = {}
    for arg in inputs:
        given = shapes.get(arg.name)
        declared = given if given is not None else arg.shape
        if declared is None:
            raise GreenrtError(f"input {arg.name!r} has unknown rank: give its shape with --shapes {arg.name}:...")
        dims = list(declared)
        if not dims:
            out[arg.name] = []
            continue
        if isinstance(dims[0], int) and given is None and dims[0] != batch:
            raise GreenrtError(f"input {arg.name!r} has a fixed batch dim {dims[0]} ({arg.shape}), so it cannot run "
                               f"at batch {batch}: use --batch {dims[0]}")
        dims[0] = batch
        for i, d in enumerate(dims[1:], 1):
            if not isinstance(d, int):
                example = "x".join(str(x) if isinstance(x, int) else "N" for x in [batch, *dims[1:]])
                raise GreenrtError(f"input {arg.name!r} has dynamic dim {i} ({d!r}) with no size: give its shape "
                                   f"with --shapes {arg.name}:{example} (dim 0 is set by --batch)")
        out[arg.name] = [int(d) for d in dims]
    return out


# -- arithmetic ---------------------------------------------------------------------------------------------------
def percentiles(times_ms) -> dict[str, float]:
    """p50/p90/p99 and mean of latencies in ms (linear interpolation: always p50 <= p90 <= p99)."""
    a = np.asarray(times_ms, dtype=np.float64)
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {"latency_ms_p50": float(p50), "latency_ms_p90": float(p90), "latency_ms_p99": float(p99),
            "latency_ms_mean": float(a.mean())}


def gco2e_per_1000(joules_per_item: float | None, grid_g_per_kwh: float) -> float | None:
    """Grams of CO2e per 1,000 inferences: J/item x 1000 items / 3.6e6 J per kWh x g/kWh."""
    if joules_per_item is None:
        return None
    return joules_per_item * 1000.0 / 3.6e6 * grid_g_per_kwh


def max_rel_err(ours, reference) -> float | None:
    """max |a - b| / max |b| over the float outputs both give (in order); None if none compares."""
    worst = None
    for a, b in zip(ours, reference):
        a, b = _as_numpy(a), _as_numpy(b)
        if a is None or b is None or a.shape != b.shape or b.dtype.kind != "f" or not b.size:
            continue
        scale = float(np.max(np.abs(b))) or 1.0
        err = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) / scale
        if math.isfinite(err):
            worst = err if worst is None else max(worst, err)
    return worst


def _as_numpy(value):
    try:
        import torch

        if isinstance(value, torch.Tensor):
            value = value.detach().float().cpu().numpy() if value.is_floating_point() else value.cpu().numpy()
    except ImportError:
        pass
    return np.asarray(value) if value is not None else None


# -- runners ------------------------------------------------------------------------------------------------------
@dataclass
class Runner:
    """One thing to time: ``step(i)`` runs one inference on input set i % ROTATING_INPUTS."""

    name: str
    precision: str
    step: Callable[[int], object] | None = None
    sync: Callable[[], None] = lambda: None
    events: bool = False               # time with CUDA events (device work on the current stream)
    torch_memory: bool = False         # peak memory from torch.cuda.max_memory_allocated
    status: str = "ok"
    reason: str = ""
    note: str = ""
    device: str | None = None          # where it runs, when not the bench's device (onnxruntime without CUDA)
    fields: dict = field(default_factory=dict)  # extra record fields (its threads, session options, precision hint)


@dataclass
class BenchConfig:
    model: str
    device: str | None = None
    batches: list[int] | None = None
    shapes: dict[str, list[int]] = field(default_factory=dict)
    duration_s: float | None = None
    warmup: int = DEFAULT_WARMUP
    vs: list[str] | None = None
    torch_module: str | None = None
    reference: str | None = None
    grid_intensity: float = DEFAULT_GRID_INTENSITY
    allow_mismatch: bool = False
    seed: int = 0
    rounds: int | None = None          # interleaved latency rounds (default DEFAULT_ROUNDS[device]; 0: in turn)
    threads: int | None = None         # CPU threads for every runner (default torch's: the physical cores)


def _cuda_sync():
    import torch

    torch.cuda.synchronize()


def _skipped(name: str, precision: str, reason: str) -> Runner:
    return Runner(name, precision, status="skipped", reason=reason)


def _greenrt_runner(session, feeds_dev, device: str) -> Runner:
    kind = "engine" if session.header is not None else "onnx"
    precision = (session.header or {}).get("config", {}).get("precision") or "fp32"
    cuda = device == "cuda"
    return Runner(f"greenrt {kind} {precision}", precision, lambda i: session.run_device(feeds_dev[i % len(feeds_dev)]),
                  _cuda_sync if cuda else (lambda: None), events=cuda, torch_memory=cuda)


ORT_DEFAULT, ORT_BEST = "onnxruntime fp32", "onnxruntime-best fp32"


def _onnxruntime_runner(reference: str | None, feeds_np, device: str, threads: int | None = None,
                        best: bool = False) -> Runner:
    """onnxruntime on the source ONNX file. Default: ``SessionOptions()`` as a user makes it (intra-op threads 0,
    onnxruntime's choice: one per physical core), with ``threads`` set only when given (a --threads other than the
    machine's default, so every runner has the same count). ``best``: all graph optimizations, intra-op threads =
    ``threads``, sequential execution: what a user tuning onnxruntime for latency on this CPU would set."""
    name = ORT_BEST if best else ORT_DEFAULT
    if reference is None:
        return _skipped(name, "fp32", "this engine records no source model: pass the ONNX file with --reference")
    if not Path(reference).is_file():
        return _skipped(name, "fp32", f"source model {reference} not found: pass it with --reference")
    try:
        import onnxruntime as ort
    except ImportError:
        return _skipped(name, "fp32", "onnxruntime is not installed: pip install 'greenrt[reference]'")
    available = ort.get_available_providers()
    wanted = (["CUDAExecutionProvider"] if device == "cuda" else []) + ["CPUExecutionProvider"]
    providers = [p for p in wanted if p in available] or available
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if best:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if threads is not None:
        opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(reference), opts, providers=providers)
    used = sess.get_session_options()
    setting = ("all graph optimizations, intra-op threads set, sequential execution" if best else
               "default session options" + (", intra-op threads set to --threads" if threads is not None else ""))
    note = f"{setting}; providers {sess.get_providers()}; numpy in and out (copies included)"
    runs_on = "cuda" if "CUDAExecutionProvider" in sess.get_providers() else "cpu"
    fields = {"intra_op_num_threads": used.intra_op_num_threads,
              "graph_optimization_level": str(used.graph_optimization_level).rsplit(".", 1)[-1],
              "execution_mode": str(used.execution_mode).rsplit(".", 1)[-1]}
    return Runner(name, "fp32", lambda i: sess.run(None, feeds_np[i % len(feeds_np)]), note=note, device=runs_on,
                  fields=fields)


def _openvino_runner(reference: str | None, feeds_np, threads: int, bf16: bool = False) -> Runner:
    """OpenVINO's CPU plugin on the source ONNX file, reshaped to this batch's static shapes, INFERENCE_NUM_THREADS
    = ``threads``. ``openvino`` runs with the f32 precision hint (like for like with onnxruntime and fp32 engines);
    ``openvino-bf16`` with the bf16 hint, which is OpenVINO's own default on a CPU with bf16 instructions. The record
    carries the hint the compiled model reports and the CPU plugin's default. CPU pinning as the plugin's default
    (on: an infer call pins the calling thread while it runs; run_bench restores the thread's affinity after)."""
    precision = "bf16" if bf16 else "fp32"
    name = f"openvino{'-bf16' if bf16 else ''} {precision}"
    if reference is None or not Path(reference).is_file():
        return _skipped(name, precision, "no source ONNX model for OpenVINO: pass it with --reference")
    try:
        import openvino as ov
    except ImportError:
        return _skipped(name, precision, "openvino is not installed: pip install 'greenrt[openvino]'")
    core = ov.Core()
    if bf16 and "BF16" not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        return _skipped(name, precision, "this CPU has no bf16 instructions: OpenVINO would run f32 (--vs openvino)")
    try:
        model = core.read_model(str(reference))
        model.reshape({k: list(np.asarray(v).shape) for k, v in feeds_np[0].items()})
        compiled = core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": threads,
                                                     "INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32"})
    except Exception as exc:  # an op or a shape OpenVINO cannot take
        return _skipped(name, precision, f"OpenVINO could not compile the model: {_first_line(exc)}")
    request = compiled.create_infer_request()
    outputs = list(compiled.outputs)

    def step(i):
        result = request.infer(feeds_np[i % len(feeds_np)])
        return [result[o] for o in outputs]

    fields = {"inference_precision_hint": compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name(),
              "default_precision_hint": core.get_property("CPU", "INFERENCE_PRECISION_HINT").get_type_name(),
              "inference_num_threads": int(compiled.get_property("INFERENCE_NUM_THREADS")),
              "enable_cpu_pinning": bool(compiled.get_property("ENABLE_CPU_PINNING")),
              "performance_hint": str(compiled.get_property("PERFORMANCE_HINT")).rsplit(".", 1)[-1]}
    return Runner(name, precision, step, note=f"OpenVINO {ov.__version__} CPU plugin, static shapes; numpy in and out",
                  device="cpu", fields=fields)


def _torch_dtype(precision: str):
    import torch

    return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)


def _torch_inputs(feeds_dev, order: list[str], precision: str):
    """The inputs as positional tensors per input set; float ones cast to the engine's reduced precision."""
    dtype = _torch_dtype(precision)
    out = []
    for feeds in feeds_dev:
        args = [feeds[n] for n in order]
        if dtype is not None:
            args = [a.to(dtype) if a.is_floating_point() else a for a in args]
        out.append(args)
    return out


def _torch_runners(config: BenchConfig, names: list[str], feeds_dev, order, precision, device) -> list[Runner]:
    """eager, eager + CUDA graph and torch.compile(mode='reduce-overhead') of --torch-module's module, in the
    engine's precision. Models with 4-D float inputs (images) run channels_last, as a user tuning a CNN for a GPU or
    oneDNN would run them (NCHW eager fp16 ResNet-50 is ~1.5x slower on an H200): the baselines are torch at its
    usual best, not a strawman. The runner names say so."""
    import torch

    channels_last = any(v.dim() == 4 and v.is_floating_point() for v in feeds_dev[0].values())
    layout = " channels_last" if channels_last else ""
    label = {"eager": f"torch eager {precision}{layout}", "eager-cudagraph": f"torch eager + CUDA graph {precision}"
             f"{layout}", "torch-compile": f"torch.compile {precision}{layout} (reduce-overhead)"}
    wanted = [n for n in TORCH_BASELINES if n in names]
    if not wanted:
        return []
    if not config.torch_module:
        return [_skipped(label[n], precision, "needs --torch-module pkg.mod:factory (an nn.Module taking the "
                                              "model's inputs in order)") for n in wanted]
    module = load_factory(config.torch_module)()
    if not isinstance(module, torch.nn.Module):
        raise GreenrtError(f"--torch-module: {config.torch_module} returned {type(module).__name__}, not an nn.Module")
    module = module.eval().to(device)
    dtype = _torch_dtype(precision)
    if dtype is not None:
        module = module.to(dtype)
    args = _torch_inputs(feeds_dev, order, precision)
    if channels_last:
        module = module.to(memory_format=torch.channels_last)
        args = [[a.contiguous(memory_format=torch.channels_last) if a.dim() == 4 and a.is_floating_point() else a
                 for a in batch] for batch in args]
    cuda = device == "cuda"
    sync = _cuda_sync if cuda else (lambda: None)

    def eager(i):
        with torch.inference_mode():
            return module(*args[i % len(args)])

    runners = []
    for n in wanted:
        if n == "eager":
            runners.append(Runner(label[n], precision, eager, sync, events=cuda, torch_memory=cuda))
        elif n == "eager-cudagraph":
            if not cuda:
                runners.append(_skipped(label[n], precision, "CUDA graphs need --device cuda"))
                continue
            try:
                runners.append(Runner(label[n], precision, _cuda_graph_step(module, args), sync, events=True,
                                      torch_memory=True, note="inputs copied into the graph's static inputs"))
            except Exception as exc:  # a module that cannot be captured
                runners.append(_skipped(label[n], precision, f"capture failed: {_first_line(exc)}"))
        elif n == "torch-compile":
            runners.append(_compile_runner(label[n], precision, module, args, sync, cuda))
    return runners


def _cuda_graph_step(module, args):
    import torch

    static = [a.clone() for a in args[0]]
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream), torch.inference_mode():
        for _ in range(3):
            module(*static)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph), torch.inference_mode():
        out = module(*static)

    def step(i):
        for dst, src in zip(static, args[i % len(args)]):
            dst.copy_(src)
        graph.replay()
        return out

    return step


def _compile_runner(name, precision, module, args, sync, cuda) -> Runner:
    import torch

    try:
        compiled = torch.compile(module, mode="reduce-overhead")
        t0 = time.perf_counter()
        with torch.inference_mode():
            compiled(*args[0])  # compile now, so a machine without a compiler is a skip, not a failure
        sync()
        compile_s = time.perf_counter() - t0
    except Exception as exc:
        return _skipped(name, precision, f"torch.compile failed here: {_first_line(exc)}")

    def step(i):
        with torch.inference_mode():
            return compiled(*args[i % len(args)])

    return Runner(name, precision, step, sync, events=cuda, torch_memory=cuda, note=f"compile {compile_s:.1f} s")


def _fx_compile_runner(reference: str | None, feeds_dev, order, precision: str, device: str) -> Runner:
    """torch.compile(mode='reduce-overhead') of greenrt's FX lowering (runtime/fx_lowering.py) of the source ONNX
    graph, without greenrt's passes, in the engine's precision (greenrt's precision rewrite, weights only): what
    torch.compile makes of the graph when there is no torch source."""
    import torch

    name = f"torch.compile of greenrt's FX lowering {precision} (reduce-overhead)"
    if reference is None or not Path(reference).is_file():
        return _skipped(name, precision, "no source ONNX model to lower: pass it with --reference")
    try:
        from ..onnx.importer import load_model
        from ..plan.compile import compile_model
        from ..precision import PrecisionConfig, apply_precision
        from ..runtime.executor import Executor
        from ..runtime.fx_lowering import lower_to_fx
        from ..runtime.specialize import ShapeSpecializer

        model = load_model(reference)
        if precision in ("fp16", "bf16"):
            apply_precision(model, PrecisionConfig(precision))
        executor = Executor(*compile_model(model), device)
        with torch.inference_mode():
            spec = ShapeSpecializer(executor).prepare(feeds_dev[0])
        gm, inputs, _ = lower_to_fx(executor, specialization=spec)
    except Exception as exc:  # a graph with steps FX cannot hold (control flow, sequences): say which
        return _skipped(name, precision, f"not lowerable to FX: {_first_line(exc)}")
    args = [[feeds[n] for n in inputs] for feeds in feeds_dev]
    sync = _cuda_sync if device == "cuda" else (lambda: None)
    runner = _compile_runner(name, precision, gm, args, sync, device == "cuda")
    runner.note = "; ".join(filter(None, [runner.note, "greenrt's FX lowering of the ONNX graph, no torch source"]))
    return runner


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


# -- measuring ----------------------------------------------------------------------------------------------------
class _CallTimer:
    """Times one call of a runner in ms: CUDA events around it on the GPU, else ``clock`` after the call returned
    (and synchronized)."""

    def __init__(self, runner: Runner, clock=time.perf_counter):
        self.runner, self.clock = runner, clock
        if runner.events:
            import torch

            self._evts = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def __call__(self, i: int) -> float:
        runner = self.runner
        if runner.events:
            start_evt, end_evt = self._evts
            start_evt.record()
            runner.step(i)
            end_evt.record()
            end_evt.synchronize()
            return float(start_evt.elapsed_time(end_evt))
        t0 = self.clock()
        runner.step(i)
        runner.sync()
        return (self.clock() - t0) * 1e3


def measure_latency(runner: Runner, budget_s: float, min_calls: int = LATENCY_MIN_CALLS,
                    max_calls: int = LATENCY_MAX_CALLS) -> list[float]:
    """Per-call latency in ms (_CallTimer). At least ``min_calls`` calls, then until ``budget_s`` or ``max_calls``."""
    times: list[float] = []
    timer = _CallTimer(runner)
    runner.sync()
    t_start = time.perf_counter()
    i = 0
    while len(times) < min_calls or (time.perf_counter() - t_start < budget_s and len(times) < max_calls):
        times.append(timer(i))
        i += 1
    return times


@dataclass
class RoundTimes:
    """One runner's latency over interleaved rounds."""

    rounds_ms: list[float]             # each round's median per-call latency
    times_ms: list[float]              # every timed call, in order
    block_calls: int                   # calls per round


def round_orders(n_runners: int, rounds: int) -> list[list[int]]:
    """Runner indices in the order each round runs them: rotated by one each round, so each goes first equally."""
    base = list(range(n_runners))
    return [base[r % n_runners:] + base[:r % n_runners] for r in range(rounds)] if n_runners else []


def run_rounds(runners: list[Runner], rounds: int, budget_s: float, warmup: int, block_calls: int | None = None,
               required: Runner | None = None, clock=time.perf_counter,
               on_round=lambda r: None) -> tuple[dict[str, RoundTimes], dict[str, str]]:
    """Warm every runner up, then ``rounds`` rounds in which each runs ``block_calls`` calls (default: enough for
    the slowest runner to spend ``budget_s / rounds`` a round, at least MIN_BLOCK_CALLS), in round_orders' order.
    Call j of round r is input set (r * block_calls + j) % ROTATING_INPUTS for every runner, so all see the same
    inputs in a round. Returns (runner name -> RoundTimes, runner name -> why it failed); a failure of
    ``required`` (greenrt's runner) is raised instead."""
    failed: dict[str, str] = {}

    def attempt(runner, fn):
        try:
            return fn()
        except Exception as exc:
            if runner is required:
                raise
            failed[runner.name] = _first_line(exc)
            return None

    timers = {r.name: _CallTimer(r, clock) for r in runners}
    estimates = {}
    for runner in runners:
        timer = timers[runner.name]
        first = attempt(runner, lambda: [timer(i) for i in range(max(1, warmup))])
        if first is not None:
            estimates[runner.name] = float(np.median(first[len(first) // 2:]))  # the warmer half
    live = [r for r in runners if r.name in estimates]
    if block_calls is None:
        slowest_ms = max(estimates.values(), default=1.0)
        block_calls = math.ceil(round(budget_s * 1e3 / rounds / max(slowest_ms, 1e-6), 6))
        block_calls = max(MIN_BLOCK_CALLS, min(block_calls, LATENCY_MAX_CALLS // rounds))
    out = {r.name: RoundTimes([], [], block_calls) for r in live}
    for r, order in enumerate(round_orders(len(live), rounds)):
        on_round(r)
        for k in order:
            runner = live[k]
            if runner.name in failed:
                continue
            timer = timers[runner.name]
            times = attempt(runner, lambda: [timer(r * block_calls + j) for j in range(block_calls)])
            if times is not None:
                out[runner.name].rounds_ms.append(float(np.median(times)))
                out[runner.name].times_ms += times
    return {k: v for k, v in out.items() if k not in failed}, failed


class UtilSampler:
    """Mean GPU utilization (NVML, percent) sampled every ``period_s`` on a thread while the window runs."""

    def __init__(self, counter, period_s: float = 0.05):
        self._counter, self._period = counter, period_s
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = None

    def __enter__(self):
        if hasattr(self._counter, "utilization"):
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def _loop(self):
        while not self._stop.wait(self._period):
            value = self._counter.utilization()
            if value is not None:
                self.samples.append(value)

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return False

    @property
    def mean(self) -> float | None:
        return float(np.mean(self.samples)) if self.samples else None


def measure(runner: Runner, batch: int, config: BenchConfig, device: str, counter, duration_s: float,
            rounds: RoundTimes | None = None) -> dict:
    """Warm-up, latency percentiles, then the steady window's throughput, energy, utilization and peak memory.
    With ``rounds`` (its latency from run_rounds, already warm) only the window runs here."""
    torch_memory = runner.torch_memory and device == "cuda"
    if torch_memory:
        import torch

        runner.sync()
        torch.cuda.reset_peak_memory_stats()
    if rounds is None:
        for i in range(config.warmup):
            runner.step(i)
        runner.sync()
        times = measure_latency(runner, budget_s=min(2.0, max(duration_s / 2, 0.05)))
    else:
        times = rounds.times_ms
    if runner.device is not None and runner.device != device:  # e.g. NVML would see an idle GPU
        counter = energy.NoCounter(f"runs on {runner.device}; the {counter.source or 'energy'} counter measures "
                                   f"{device}")
    with UtilSampler(counter) as util:
        window = energy.run_window(runner.step, runner.sync, counter, duration_s)
    fields = percentiles(times)
    if rounds is not None:  # the median over rounds of each round's median: the figure the round ratios compare
        fields |= {"latency_ms_p50": float(np.median(rounds.rounds_ms)), "rounds_ms": rounds.rounds_ms,
                   "rounds": len(rounds.rounds_ms), "round_calls": rounds.block_calls}
    items = window.calls * batch
    joules_per_item = window.joules / items if window.joules is not None else None
    fields |= {
        "items_per_s": items / window.seconds,
        "joules_per_item": joules_per_item,
        "watts": window.joules / window.seconds if window.joules is not None else None,
        "gco2e_per_1000": gco2e_per_1000(joules_per_item, config.grid_intensity),
        "gpu_util": util.mean,
        "latency_calls": len(times),
        "timing": "cuda events" if runner.events else "perf_counter",
        "window_s": window.seconds,
        "window_calls": window.calls,
        "window_extended_to_minimum": window.extended,
        "energy_source": counter.source if window.joules is not None else None,
    }
    if window.joules is None:
        fields["energy_reason"] = window.reason or counter.reason
    if torch_memory:
        import torch

        fields["peak_mem_bytes"] = int(torch.cuda.max_memory_allocated())
    return fields


# -- the whole run ------------------------------------------------------------------------------------------------
def _feeds(session, shapes: dict[str, list[int]], seed: int, n: int) -> list[dict]:
    from ..build.inputs import index_bounds, random_feeds

    bounds = index_bounds(session.plan, session.executor.constants)
    return [random_feeds(session.get_inputs(), shapes, seed=seed + k, int_bounds=bounds).arrays for k in range(n)]


def _to_device(feeds_np: list[dict], device: str) -> list[dict]:
    from ..onnx.dtypes import numpy_to_torch

    return [{k: numpy_to_torch(np.asarray(v), device) for k, v in f.items()} for f in feeds_np]


def run_bench(config: BenchConfig, progress=None, log=lambda msg: None) -> tuple[list[dict], dict]:
    """Records (greenrt-results/1, greenrt's with ratios to every baseline that ran) and metadata extras. torch's
    thread count is ``config.threads`` for the run and the caller's again afterwards."""
    import torch

    if config.threads is not None and config.threads < 1:
        raise GreenrtError(f"--threads: {config.threads} (expected a positive number of CPU threads, e.g. "
                           f"--threads {torch.get_num_threads()})")
    if config.rounds is not None and config.rounds < 0:
        raise GreenrtError(f"--rounds: {config.rounds} (expected >= 0; 0 times each runner on its own, in turn)")
    threads_before = torch.get_num_threads()
    affinity = _affinity()  # OpenVINO pins the thread that calls it while the call runs: put it back afterwards
    threads = config.threads if config.threads is not None else threads_before
    torch.set_num_threads(threads)
    try:
        return _run_bench(config, threads, progress, log)
    finally:
        torch.set_num_threads(threads_before)
        if affinity is not None and _affinity() != affinity:
            os.sched_setaffinity(0, affinity)


def _load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):  # not on this platform
        return None


def _load_fields(load_s: float, compiled, before: set) -> dict:
    """The engine's load time, and for an engine run compiled by Inductor its first run at this batch's shape
    (lowering, compile or a load from the compiled-code cache, the first call) and whether that cache held the
    code already (a warm load) or it was compiled (a cold one)."""
    out = {"load_s": round(load_s, 3)}
    if compiled is not None:
        new = [k for k in compiled.compile_seconds if k not in before]
        if new:
            out["first_run_s"] = round(compiled.compile_seconds[new[0]], 3)
            out["compiled_cache_warm"] = compiled.compile_cache_warm.get(new[0])
        if compiled.failed:
            out["compiled_failed"] = compiled.failed
    return out


def _affinity():
    return os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None


def _run_bench(config: BenchConfig, threads: int, progress, log) -> tuple[list[dict], dict]:
    import torch

    from ..runtime.session import InferenceSession
    from .results import make_record

    load_start = _load_average()
    t_load = time.perf_counter()
    session = InferenceSession(config.model, device=config.device, allow_mismatch=config.allow_mismatch)
    load_s = time.perf_counter() - t_load
    compiled = getattr(getattr(session, "runner", None), "compiled", None)  # an engine run compiled by Inductor
    device = session.device.type
    device_index = 0
    if device == "cuda":
        device_index = session.device.index if session.device.index is not None else torch.cuda.current_device()
        torch.cuda.set_device(device_index)  # events, memory stats and NVML all on the session's GPU
    batches = config.batches or _default_batches(session, device)
    duration_s = config.duration_s if config.duration_s is not None else DEFAULT_DURATION_S[device]
    rounds = config.rounds if config.rounds is not None else DEFAULT_ROUNDS[device]
    vs = config.vs if config.vs is not None else (["onnxruntime", *TORCH_BASELINES] if config.torch_module
                                                  else ["onnxruntime"])
    if session.header is not None:
        reference = config.reference or session.header.get("config", {}).get("model")
    else:
        reference = config.reference or config.model
    unknown = set(config.shapes) - {a.name for a in session.get_inputs()}
    if unknown:
        raise GreenrtError(f"--shapes names unknown input(s) {sorted(unknown)}; inputs are "
                           f"{[a.name for a in session.get_inputs()]}")
    all_shapes = {b: batch_shapes(session.get_inputs(), config.shapes, b) for b in batches}  # errors before any run
    # onnxruntime's default session picks one thread per physical core, torch's default count: set its count only
    # where ours came from elsewhere (--threads, OMP_NUM_THREADS), so every runner has the same
    ort_default_threads = threads if config.threads is not None or "OMP_NUM_THREADS" in os.environ else None
    counter = energy.energy_counter(device, device_index)
    model_name = Path(config.model).stem
    order = [a.name for a in session.get_inputs()]
    records: list[dict] = []
    notes: dict[str, str] = {}
    task = progress.add_task("bench", total=None) if progress is not None else None
    steps = 0  # the progress bar's total, known once each batch's runners are
    for batch in batches:
        compiled_before = set(compiled.compile_seconds) if compiled is not None else set()
        feeds_np = _feeds(session, all_shapes[batch], config.seed, ROTATING_INPUTS)
        feeds_dev = _to_device(feeds_np, device)
        ours = _greenrt_runner(session, feeds_dev, device)
        runners = [ours]
        if "onnxruntime" in vs:
            runners.append(_onnxruntime_runner(reference, feeds_np, device, ort_default_threads))
            if device == "cpu":
                runners.append(_onnxruntime_runner(reference, feeds_np, device, threads, best=True))
        for name in ("openvino", "openvino-bf16"):
            if name in vs:
                runners.append(_openvino_runner(reference, feeds_np, threads, bf16=name.endswith("bf16")))
        if config.torch_module or "torch-compile" not in vs:
            runners += _torch_runners(config, vs, feeds_dev, order, ours.precision, device)
        else:  # an ONNX-only model: torch.compile of greenrt's FX lowering of the graph, labelled as such
            runners += _torch_runners(config, [n for n in vs if n != "torch-compile"], feeds_dev, order,
                                      ours.precision, device)
            runners.append(_fx_compile_runner(reference, feeds_dev, order, ours.precision, device))
        steps += len(runners) + (rounds > 0)
        if progress is not None:
            progress.update(task, total=steps)
        expected = None
        ort_runner = next((r for r in runners if r.name.startswith("onnxruntime") and r.status == "ok"), None)
        if ort_runner is not None:
            expected = ort_runner.step(0)
        # a CPU runner next to a GPU engine: timed at the smallest batch, otherwise only the reference for the
        # accuracy figures (one call at a large batch takes seconds; 50 of them would be minutes)
        reference_only = {r.name for r in runners if r.status == "ok" and r.device not in (None, device)
                          and batch != min(batches)}
        timed, failed = {}, {}
        if rounds > 0:
            def on_round(r):
                if progress is not None:
                    progress.update(task, description=f"batch {batch}: latency round {r + 1}/{rounds}")

            timed, failed = run_rounds([r for r in runners if r.status == "ok" and r.name not in reference_only],
                                       rounds, duration_s, config.warmup, required=ours, on_round=on_round)
            if progress is not None:
                progress.advance(task)
        batch_records = []
        for runner in runners:
            if progress is not None:
                progress.update(task, description=f"batch {batch}: {runner.name}")
            rec = make_record(model_name, runner.name, runner.precision, batch, runner.device or device,
                              status=runner.status, threads=threads)
            if runner.precision in ("fp16", "bf16", "fp8", "int8", "tf32"):
                rec["max_rel_err_vs_onnxruntime"] = None  # filled below where onnxruntime ran
            if runner.name in reference_only:
                rec["status"] = "reference only"
                rec["reason"] = (f"runs on {runner.device}, not {device}: timed at batch {min(batches)} only; "
                                 f"its outputs are the accuracy reference here")
            elif runner.name in failed:
                rec["status"], rec["reason"] = "failed", failed[runner.name]
            elif runner.status == "ok":
                try:
                    rec |= measure(runner, batch, config, device, counter, duration_s, timed.get(runner.name))
                    if expected is not None and runner is not ort_runner:  # on the same first input set
                        rec["max_rel_err_vs_onnxruntime"] = max_rel_err(_outputs(runner.step(0)), expected)
                except Exception as exc:
                    if runner is ours:
                        raise
                    rec["status"], rec["reason"] = "failed", _first_line(exc)
            else:
                rec["reason"] = runner.reason
            rec |= runner.fields
            if runner is ours:
                rec |= _load_fields(load_s, compiled, compiled_before)
            if runner.note:
                rec["note"] = runner.note
            if rec["status"] != "ok":
                log(f"{runner.name} at batch {batch}: {rec['status']}: {rec.get('reason')}")
            batch_records.append(rec)
            if progress is not None:
                progress.advance(task)
        _add_ratios(batch_records[0], batch_records[1:])
        _add_headline(batch_records[0], batch_records[1:])
        records += batch_records
    notes["energy"] = (f"{counter.source} counter, steady window at least {energy.MIN_WINDOW_S:g} s and "
                       f"{energy.MIN_WINDOW_CALLS} calls" if counter.available else counter.reason)
    if counter.source == "rapl":
        notes["energy"] += "; RAPL counts the whole CPU package, every process on it"
    extras = {
        "grid_intensity_g_per_kwh": config.grid_intensity,
        "grid_intensity_source": (GRID_INTENSITY_SOURCE if config.grid_intensity == DEFAULT_GRID_INTENSITY
                                  else "--grid-intensity (given by the user)"),
        "energy": notes["energy"],
        "energy_min_window_s": energy.MIN_WINDOW_S,
        "energy_min_window_calls": energy.MIN_WINDOW_CALLS,
        "duration_s": duration_s,
        "warmup": config.warmup,
        "rounds": rounds,
        "threads": threads,
        # what else ran on the machine: the 1/5/15-minute run-queue averages (this process included) at start and end
        "load_average": {"start": load_start, "end": _load_average()},
        "latency": (f"{rounds} interleaved rounds: in each, every runner runs a block of calls (round_calls) on the "
                    f"same inputs, the order rotated each round; latency_ms_p50 is the median of the rounds' "
                    f"medians (rounds_ms), p90/p99 over every call; round_latency_ratio_vs is the median of the "
                    f"per-round ratios (greenrt's / the baseline's); headline_vs names the onnxruntime "
                    f"configuration greenrt compares worst against (the faster one in the same rounds)"
                    if rounds else "each runner timed on its own, one after the other (--rounds 0); headline_vs "
                                   "names the onnxruntime configuration with the lower latency_ms_p50"),
        "threads_note": (f"{threads} CPU threads for every runner: torch.set_num_threads (restored after the run), "
                         f"onnxruntime-best's intra_op_num_threads, OpenVINO's INFERENCE_NUM_THREADS"
                         + ("; onnxruntime's default session too" if ort_default_threads is not None else
                            "; onnxruntime's default session keeps intra_op_num_threads 0 (its own choice: one per "
                            "physical core, as torch's default)")),
        "model_path": str(config.model),
        "reference": reference,
        "shapes": {str(b): s for b, s in all_shapes.items()},
    }
    return records, extras


def _outputs(value) -> list:
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _default_batches(session, device: str) -> list[int]:
    dims0 = {a.shape[0] for a in session.get_inputs() if a.shape}
    if len(dims0) == 1 and isinstance(next(iter(dims0)), int):
        return [next(iter(dims0))]  # a fixed batch: that one
    return list(DEFAULT_BATCHES[device])


def _add_ratios(ours: dict, others: list[dict]) -> None:
    """greenrt's latency speedup, throughput ratio and (after rounds) median per-round latency ratio against every
    baseline of the same batch that has figures."""
    from .results import RATIO_FIELDS

    for field_name, (_, compute) in RATIO_FIELDS.items():
        values = {o["runner"]: compute(ours, o) for o in others if o.get("status", "ok") == "ok"}
        values = {k: v for k, v in values.items() if v is not None and math.isfinite(v)}
        if values:
            ours[field_name] = values


def _add_headline(ours: dict, others: list[dict]) -> None:
    """``headline_vs``: the onnxruntime configuration (default or best) greenrt's headline ratio is against, the
    faster of the two: after rounds the one greenrt's per-round ratio is highest against, else the lower p50."""
    names = {o["runner"] for o in others if o["runner"] in (ORT_DEFAULT, ORT_BEST)}
    rounds = {k: v for k, v in ours.get("round_latency_ratio_vs", {}).items() if k in names}
    if rounds:
        ours["headline_vs"] = max(rounds, key=rounds.get)
        return
    speedups = {k: v for k, v in ours.get("latency_speedup_vs", {}).items() if k in names}
    if speedups:  # theirs / ours: the faster onnxruntime is the one greenrt's speedup is lowest against
        ours["headline_vs"] = min(speedups, key=speedups.get)


def headline_ratio(ours: dict) -> float | None:
    """greenrt's latency / the faster onnxruntime's (the per-round median where rounds ran); None without one."""
    vs = ours.get("headline_vs")
    if vs is None:
        return None
    if vs in ours.get("round_latency_ratio_vs", {}):
        return ours["round_latency_ratio_vs"][vs]
    speedup = ours.get("latency_speedup_vs", {}).get(vs)
    return 1.0 / speedup if speedup else None


# -- output -------------------------------------------------------------------------------------------------------
def _fmt(value, unit: str = "", digits: int = 3) -> str:
    if value is None:
        return "n/a"
    return f"{value:.{digits}g}{unit}" if abs(value) < 10 ** digits else f"{value:,.0f}{unit}"


def results_table(records: list[dict]):
    """One row per (batch, runner); columns nobody measured (energy on a CPU without RAPL, GPU memory) left out."""
    from rich.markup import escape
    from rich.table import Table

    ok = [r for r in records if r.get("status", "ok") == "ok"]
    columns = [("p50 ms", lambda r: r["latency_ms_p50"]), ("p90 ms", lambda r: r.get("latency_ms_p90")),
               ("p99 ms", lambda r: r["latency_ms_p99"]), ("items/s", lambda r: r["items_per_s"]),
               ("mJ/item", lambda r: r["joules_per_item"] * 1e3 if r["joules_per_item"] is not None else None),
               ("W", lambda r: r["watts"]), ("gCO2e/1k", lambda r: r.get("gco2e_per_1000")),
               ("GPU %", lambda r: r.get("gpu_util")),
               ("peak MiB", lambda r: r["peak_mem_bytes"] / 2**20 if r["peak_mem_bytes"] is not None else None)]
    columns = [(name, get) for name, get in columns if any(get(r) is not None for r in ok)]
    table = Table(title="greenrt bench (ratios: greenrt's latency speedup / throughput ratio vs that runner)")
    table.add_column("batch", justify="right")
    table.add_column("runner")
    for name, _ in columns:
        table.add_column(name, justify="right")
    table.add_column("greenrt vs it", justify="right")
    rounds = any("round_latency_ratio_vs" in r for r in records)
    if rounds:
        table.add_column("greenrt / it, rounds", justify="right")
    ours_by_batch = {r["batch"]: r for r in records if r["runner"].startswith("greenrt")}
    for r in records:
        if r.get("status", "ok") != "ok":
            table.add_row(str(r["batch"]), escape(r["runner"]),
                          f"[yellow]{escape(r['status'] + ': ' + str(r.get('reason', '')))}[/yellow]",
                          *[""] * (len(columns) + rounds))
            continue
        ours = ours_by_batch.get(r["batch"], {})
        speed = ours.get("latency_speedup_vs", {}).get(r["runner"])
        thr = ours.get("throughput_ratio_vs", {}).get(r["runner"])
        ratio = f"{_fmt(speed)}x / {_fmt(thr)}x" if speed is not None or thr is not None else ""
        cells = [_fmt(get(r)) for _, get in columns] + [ratio]
        if rounds:
            per_round = ours.get("round_latency_ratio_vs", {}).get(r["runner"])
            mark = " (headline)" if ours.get("headline_vs") == r["runner"] else ""
            cells.append(f"{_fmt(per_round)}{mark}" if per_round is not None else "")
        table.add_row(str(r["batch"]), escape(r["runner"]), *cells)
    return table


def write_plot(path, records: list[dict]) -> bool:
    """Bar charts of latency p50 per batch, throughput and joules per item, one bar per runner; False (after
    saying what to install) where matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    ok = [r for r in records if r.get("status", "ok") == "ok"]
    batches = sorted({r["batch"] for r in ok})
    runners = list(dict.fromkeys(r["runner"] for r in ok))
    panels = (("latency_ms_p50", "latency p50 (ms)", 1.0), ("items_per_s", "throughput (items/s)", 1.0),
              ("joules_per_item", "energy (mJ/item)", 1e3))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    width = 0.8 / max(1, len(runners))
    for ax, (key, title, scale) in zip(axes, panels):
        for k, runner in enumerate(runners):
            values = []
            for b in batches:
                rec = next((r for r in ok if r["runner"] == runner and r["batch"] == b), None)
                v = rec.get(key) if rec else None
                values.append(v * scale if v is not None else 0.0)
            ax.bar(np.arange(len(batches)) + k * width, values, width, label=runner)
        ax.set_xticks(np.arange(len(batches)) + width * (len(runners) - 1) / 2)
        ax.set_xticklabels([f"batch {b}" for b in batches])
        ax.set_title(title + ("" if any(r.get(key) is not None for r in ok) else " - not measured"))
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def run_bench_command(args, console, err_console) -> int:
    """`greenrt bench` from parsed arguments: run, print the table, write --json and --plot; 0 on success (errors
    are GreenrtError, which the CLI turns into exit 2 with the reason)."""
    import shlex

    from rich.markup import escape
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from ..build.inputs import parse_shapes
    from .results import collect_metadata, write_results

    if args.warmup < 0:
        raise GreenrtError(f"--warmup: {args.warmup} (expected >= 0)")
    if args.threads is not None and args.threads < 1:
        raise GreenrtError(f"--threads: {args.threads} (expected a positive number of CPU threads)")
    if args.rounds is not None and args.rounds < 0:
        raise GreenrtError(f"--rounds: {args.rounds} (expected >= 0; 0 times each runner on its own, in turn)")
    config = BenchConfig(
        model=args.model, device=args.device, rounds=args.rounds, threads=args.threads,
        batches=parse_batches(args.batch) if args.batch.strip() else None,
        shapes=parse_shapes(args.shapes), duration_s=args.duration, warmup=args.warmup,
        vs=parse_vs(args.vs) if args.vs is not None else None, torch_module=args.torch_module,
        reference=args.reference,
        grid_intensity=args.grid_intensity if args.grid_intensity is not None else DEFAULT_GRID_INTENSITY,
        allow_mismatch=args.allow_mismatch, seed=args.seed,
    )
    if not Path(config.model).is_file():
        raise GreenrtError(f"{config.model}: no such file")
    if config.torch_module:
        load_factory(config.torch_module)  # a bad spec fails before any timing
    logs: list[str] = []
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=err_console, transient=True) as progress:
        records, extras = run_bench(config, progress=progress, log=logs.append)
    for line in logs:
        err_console.print(escape(line), highlight=False)
    console.print(results_table(records))
    for ours in (r for r in records if r["runner"].startswith("greenrt") and r.get("headline_vs")):
        console.print(f"batch {ours['batch']}: greenrt's latency / {escape(ours['headline_vs'])}'s (the faster "
                      f"onnxruntime): {_fmt(headline_ratio(ours))}x", highlight=False)
    ours_records = [r for r in records if r["runner"].startswith("greenrt") and "load_s" in r]
    for ours in ours_records:
        if ours.get("first_run_s") is not None:
            held = "held" if ours.get("compiled_cache_warm") else "did not hold"
            console.print(f"batch {ours['batch']}: first run {_fmt(ours['first_run_s'])} s (Inductor: lowering, "
                          f"compile or a load from the compiled-code cache, the first call; that cache {held} code "
                          f"for this engine before)", highlight=False)
    if ours_records:
        console.print(f"engine load {_fmt(ours_records[0]['load_s'])} s", highlight=False)
    console.print(f"{extras['threads']} CPU threads for every runner; "
                  + (f"latency over {extras['rounds']} interleaved rounds" if extras["rounds"] else
                     "each runner timed in turn (--rounds 0)"), highlight=False)
    device = records[0]["device"]
    if device == "cuda" and any(r["batch"] == 1 and r.get("watts") is not None for r in records):
        console.print("note: at batch 1 the GPU's idle power dominates the energy per item", highlight=False)
    if not any(r.get("joules_per_item") is not None for r in records):
        console.print(f"energy: n/a ({escape(extras['energy'])})", highlight=False)
    if args.json:
        command = "greenrt " + shlex.join(getattr(args, "argv", None) or ["bench", args.model])
        notes = ("greenrt bench: every runner in one process on the same rotating random inputs; latency p50/p90/"
                 "p99 over single calls, throughput and energy over the steady window; ratios compare records of "
                 "this file. Latency: " + extras["latency"] + ". Threads: " + extras["threads_note"] + ". Energy: "
                 + extras["energy"])
        metadata = collect_metadata(command, device=device, notes=notes, **extras)
        write_results(args.json, metadata, records)
        console.print(f"wrote {escape(args.json)}", highlight=False)
    if args.plot:
        if write_plot(args.plot, records):
            console.print(f"wrote {escape(args.plot)}", highlight=False)
        else:
            err_console.print("--plot needs matplotlib: pip install matplotlib (skipped the plot)", highlight=False)
    return 0
