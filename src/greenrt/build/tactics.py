"""The tactic stage: for every layer with a choice of implementations, time the candidates on the target device and
keep the fastest (what TensorRT calls tactic selection).

The plan runs once at the profile's opt shape (the runner a session of the engine will use: layout, precision and
math settings included). Just before each step runs, its candidates (ops/tactics.py: the variants whose
``supports`` accepts these very arguments) are

1. checked: each candidate's output against the op's default on the same arguments (a candidate that disagrees
   beyond the engine precision's tolerance is dropped and reported, never kept);
2. timed: a median over ``RUNS[opt_level]`` runs after warm-up, with CUDA events on a GPU and a wall clock after a
   sync on the CPU (so CPU candidates are tactics too);

and the fastest is written into the step (``PlanStep.tactic``). A reformat a candidate needs (e.g. NCHW inside an
NHWC engine) happens inside that candidate, so its time counts in its own timing.

The timing cache (``TimingCache``) keys each layer by what decides its speed: op, attributes (weights by shape and
dtype), argument shapes, dtypes and memory layout, and the target (device name, compute capability, torch, cuDNN
and Triton versions). A layer found in it is not timed again; caches merge; the file is JSON (data, never code).
A build for a GPU this machine lacks (build/target.py) times nothing: it looks every layer up in a cache taken on
that GPU, keys made with the cache's target, and a layer the cache lacks keeps the op's default.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ..errors import GreenrtError
from ..ops.tactics import TACTICS, Tactic, candidates
from ..host import cpu_name
from ..plan.engine_file import current_device_info, current_versions
from .accuracy import default_rtol, max_rel_error, worst_error
from .jsonfile import read_json, write_json

CACHE_FORMAT = "greenrt-timing-cache/1"
RUNS = {1: 3, 2: 5, 3: 10, 4: 20, 5: 50}  # timed runs per candidate at each --opt-level
WARMUP = 2
# a checked candidate this many times slower than the fastest in one warm call is not timed further: its one call is
# its timing (greenrt's exact INT8 reference in float64 on the GPU next to cuDNN's INT8 plans: a full timing of it
# cost seconds a layer and decided nothing)
SLOW_FACTOR = 20.0


# -- the target and the layer signature -----------------------------------------------------------------------
def target_of(device: torch.device) -> dict[str, Any]:
    """What a timing is valid for: the device (as the engine file records it) and the libraries that pick and run
    its kernels."""
    info = current_device_info(device) or {}
    versions = current_versions()
    target: dict[str, Any] = {"device_type": device.type, "torch": str(versions["torch"]).split("+")[0]}
    if device.type == "cuda":
        capability = info.get("capability") or []
        target |= {"device": info.get("name"), "capability": ".".join(map(str, capability)),
                   "cudnn": str(torch.backends.cudnn.version()), "triton": versions.get("triton")}
    else:
        target |= {"device": cpu_name(), "threads": torch.get_num_threads()}
    return target


def _describe(value: Any) -> Any:
    """An argument or attribute as the signature sees it: tensors by shape, dtype and layout, never by value."""
    if isinstance(value, torch.Tensor):
        layout = "nhwc" if value.dim() == 4 and value.is_contiguous(memory_format=torch.channels_last) \
            and not value.is_contiguous() else "contiguous" if value.is_contiguous() else "strided"
        return {"shape": list(value.shape), "dtype": str(value.dtype).removeprefix("torch."), "layout": layout}
    if isinstance(value, (list, tuple)):
        return [_describe(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return type(value).__name__


def layer_signature(step, args: list, kwargs: dict) -> dict[str, Any]:
    attrs = {k: _describe(v) for k, v in sorted(kwargs.items()) if k != "ctx"}
    return {"op": f"{step.domain + '.' if step.domain else ''}{step.op_type}", "attrs": attrs,
            "args": [_describe(a) for a in args]}


def cache_key(signature: dict, target: dict) -> str:
    text = json.dumps({"signature": signature, "target": target}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


# -- the timing cache -------------------------------------------------------------------------------------------
@dataclass
class TimingCache:
    entries: dict[str, dict] = field(default_factory=dict)
    path: Path | None = None

    @classmethod
    def load(cls, path: str | Path | None) -> "TimingCache":
        """The cache in ``path`` (an empty one if the file does not exist yet)."""
        if path is None:
            return cls()
        path = Path(path)
        if not path.exists():
            return cls(path=path)
        data = read_json(path, "timing cache", "delete it or pass another --timing-cache")
        if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT or not isinstance(data.get("entries"), dict):
            raise GreenrtError(f"timing cache {path}: not a {CACHE_FORMAT} file; delete it or pass another "
                               "--timing-cache")
        for key, entry in data["entries"].items():
            if not (isinstance(entry, dict) and isinstance(entry.get("winner"), str)
                    and isinstance(entry.get("timings_ms"), dict)):
                raise GreenrtError(f"timing cache {path}: entry {key!r} lacks a winner or its timings; delete the "
                                   "file or pass another --timing-cache")
        return cls(dict(data["entries"]), path)

    def merge(self, other: "TimingCache") -> int:
        """Add ``other``'s entries (an entry both hold keeps this cache's); returns how many were added."""
        added = 0
        for key, entry in other.entries.items():
            if key not in self.entries:
                self.entries[key] = entry
                added += 1
        return added

    def save(self, path: str | Path | None = None) -> Path:
        return write_json(Path(path or self.path),
                          {"format": CACHE_FORMAT, "entries": dict(sorted(self.entries.items()))})


# -- timing -----------------------------------------------------------------------------------------------------
def _timer(device: torch.device) -> Callable[[Callable[[], Any], int], float]:
    def median_ms(run: Callable[[], Any], runs: int) -> float:
        for _ in range(WARMUP):
            run()
        times = []
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            for _ in range(runs):
                start.record()
                run()
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end))
        else:
            for _ in range(runs):
                t0 = time.perf_counter()
                run()
                times.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(times)

    return median_ms


def _clone_args(args: list) -> list:
    """Fresh copies of tensor arguments: a candidate may write its output into a residual input in place."""
    return [a.clone(memory_format=torch.preserve_format) if isinstance(a, torch.Tensor) else a for a in args]


def _max_rel_error(got: Any, want: Any) -> float:
    """The worst max relative error over an op's tensor outputs (one value or a tuple)."""
    got = got if isinstance(got, tuple) else (got,)
    want = want if isinstance(want, tuple) else (want,)
    if len(got) != len(want):
        return float("inf")
    return worst_error([max_rel_error(g, w) for g, w in zip(got, want)
                        if isinstance(g, torch.Tensor) or isinstance(w, torch.Tensor)])


@dataclass
class LayerChoice:
    layer: str
    op: str
    winner: str
    timings_ms: dict[str, float]
    cached: bool = False
    rejected: dict[str, str] = field(default_factory=dict)
    timed_once: list[str] = field(default_factory=list)  # over SLOW_FACTOR x the fastest: one call's time

    def to_json(self) -> dict:
        out = {"layer": self.layer, "op": self.op, "winner": self.winner,
               "timings_ms": {k: round(v, 5) for k, v in self.timings_ms.items()}, "cached": self.cached}
        if self.rejected:
            out["rejected"] = self.rejected
        if self.timed_once:
            out["timed_once"] = self.timed_once
        return out


@dataclass
class TacticReport:
    opt_level: int
    target: dict
    layers: list[LayerChoice] = field(default_factory=list)
    timed: int = 0  # layers timed on this build
    cached: int = 0  # layers whose choice came from the timing cache
    seconds: float = 0.0  # wall time of this build's timing (returned and logged, not written into the engine)
    shapes: dict[str, list[int]] = field(default_factory=dict)
    reason: str = ""  # why nothing was timed, where nothing was
    missing: list[str] = field(default_factory=list)  # a build for another device: layers its cache lacks
    engine: Any = None  # CompiledChoice: the executor or Inductor for the engine as a whole

    def to_json(self) -> dict:
        out = {"opt_level": self.opt_level, "target": self.target, "timed": self.timed, "cached": self.cached,
               "shapes": self.shapes, "reason": self.reason,
               "layers": [c.to_json() for c in self.layers]}
        if self.missing:
            out["missing_from_cache"] = self.missing
        if self.engine is not None:
            out["engine"] = self.engine.to_json()
        return out


def choose_tactics(runner, feeds: dict[str, torch.Tensor] | None, opt_level: int, cache: TimingCache,
                   precision: str, progress: Callable[[int, int], None] | None = None,
                   timer: Callable[[Callable[[], Any], int], float] | None = None,
                   target: dict | None = None) -> TacticReport:
    """Time the candidates of every layer that has a choice, on ``runner`` at ``feeds``; set each step's tactic
    to the fastest; return what was timed and chosen. ``timer(run, runs) -> ms`` is injectable for tests.

    ``target``: another device's target from ``cache`` (a build for a GPU this machine lacks): ``runner`` runs
    here only to see each layer's arguments, every layer's winner comes from the cache, nothing is timed."""
    device = runner.device
    cross = target is not None
    target = target or target_of(device)
    report = TacticReport(opt_level, target)
    if opt_level == 0:
        report.reason = "--opt-level 0: the ops' heuristics, nothing timed"
        return report
    if feeds is None:
        report.reason = "no inputs at a shape known to suit the model (give --shapes or --inputs): nothing timed"
        return report
    report.shapes = {k: list(v.shape) for k, v in feeds.items()}
    timer = timer or _timer(device)
    runs = RUNS[opt_level]
    tol = default_rtol(precision)
    t_start = time.perf_counter()
    with_tactics = _ops_with_tactics()
    total = sum(1 for b in runner.executor.steps if (b.step.domain, b.step.op_type) in with_tactics)
    seen = 0

    def before(bound, args, kwargs):
        nonlocal seen
        step = bound.step
        if (step.domain, step.op_type) not in with_tactics:
            return
        seen += 1
        if progress is not None:
            progress(seen, total)
        if cross:
            _look_up(step, args, kwargs, cache, target, report)
            return
        found = candidates(step.domain, step.op_type, args, kwargs)
        if not found:
            return
        signature = layer_signature(step, args, kwargs)
        key = cache_key(signature, target)
        if len(found) < 2:  # nothing to choose: the op's default runs. Recorded, untimed, so that a build for
            # this device elsewhere (build/target.py) knows the layer has no choice here rather than missing it
            cache.entries.setdefault(key, {"signature": signature, "target": target, "winner": found[0].name,
                                           "timings_ms": {}, "opt_level": opt_level})
            return
        entry = cache.entries.get(key)
        # an entry without timings says the layer had one candidate when it was written: time the choice now
        if entry is not None and entry["timings_ms"] and entry["winner"] in {t.name for t in found}:
            step.tactic = entry["winner"]
            report.layers.append(LayerChoice(step.name, step.op_type, entry["winner"],
                                             dict(entry["timings_ms"]), cached=True))
            report.cached += 1
            return
        choice = _time_candidates(step, found, args, kwargs, bound.impl.fn, timer, runs, tol)
        step.tactic = choice.winner
        report.layers.append(choice)
        report.timed += 1
        cache.entries[key] = {"signature": signature, "target": target, "winner": choice.winner,
                              "timings_ms": choice.to_json()["timings_ms"], "opt_level": opt_level}

    with torch.inference_mode():
        runner.run(feeds, before=before)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    report.seconds = time.perf_counter() - t_start
    return report


def _look_up(step, args, kwargs, cache: TimingCache, target: dict, report: TacticReport) -> None:
    """A build for another device: the layer's winner from the cache taken there (its candidates were checked
    against the op's default and timed on that device), else the op's default, reported as missing."""
    entry = cache.entries.get(cache_key(layer_signature(step, args, kwargs), target))
    known = TACTICS.get((step.domain, step.op_type), {})
    if entry is None or entry["winner"] not in known:
        report.missing.append(step.name)
        return
    if not entry["timings_ms"]:  # one candidate there: the op's default runs, as in a build on the target
        return
    step.tactic = entry["winner"]
    report.layers.append(LayerChoice(step.name, step.op_type, entry["winner"], dict(entry["timings_ms"]),
                                     cached=True))
    report.cached += 1


def _one_call_ms(run: Callable[[], Any], cuda: bool) -> float:
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    run()
    if cuda:
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) * 1e3


def _time_candidates(step, found: list[Tactic], args, kwargs, default_fn, timer, runs: int, tol: float) -> LayerChoice:
    """Check every candidate against the op's default, time one warm call of each that passes, then time fully
    (``timer``) those within SLOW_FACTOR of the fastest one call; the fastest median wins."""
    want = default_fn(*_clone_args(args), **kwargs)
    cuda = any(isinstance(a, torch.Tensor) and a.is_cuda for a in args)
    passed: dict[str, Tactic] = {}
    rejected: dict[str, str] = {}
    for t in found:
        try:
            err = _max_rel_error(t.fn(*_clone_args(args), **kwargs), want)
        except Exception as exc:  # noqa: BLE001  (a candidate that fails on these arguments is not kept)
            rejected[t.name] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
            continue
        if not err <= tol:
            rejected[t.name] = f"max rel error {err:.2e} vs the op's default exceeds {tol:g}"
            continue
        passed[t.name] = t
    if not passed:
        raise GreenrtError(f"{step.label}: every implementation candidate failed its check ({rejected}); please "
                           "report it")
    copies = {name: itertools.cycle([_clone_args(args) for _ in range(2)]) for name in passed}  # in-place writes
    one_call = {name: _one_call_ms(lambda t=t, c=copies[name]: t.fn(*next(c), **kwargs), cuda)
                for name, t in passed.items()}
    fastest = min(one_call.values())
    timings: dict[str, float] = {}
    timed_once: list[str] = []
    for name, t in passed.items():
        if len(passed) > 1 and one_call[name] > SLOW_FACTOR * fastest:
            timings[name] = one_call[name]
            timed_once.append(name)
            continue
        timings[name] = timer(lambda t=t, c=copies[name]: t.fn(*next(c), **kwargs), runs)
    winner = min(timings, key=timings.get)
    return LayerChoice(step.name, step.op_type, winner, timings, rejected=rejected, timed_once=timed_once)


def _ops_with_tactics() -> set[tuple[str, str]]:
    from ..ops import load_all

    load_all()
    return {k for k, v in TACTICS.items() if v}


# -- the engine as a whole: greenrt's executor or Inductor's compiled graph -------------------------------------
COMPILED_OPT_LEVEL = 4  # compiling costs tens of seconds at build and at each shape's first run: a wider search
COMPILED_MIN_GAIN = 0.05  # kept only where it is at least this much faster (it costs a compile at first load)


@dataclass
class CompiledChoice:
    winner: str  # "executor" | "inductor"
    timings_ms: dict[str, float] = field(default_factory=dict)
    cached: bool = False
    reason: str = ""
    compile_seconds: float | None = None

    def to_json(self) -> dict:
        return {"winner": self.winner, "timings_ms": {k: round(v, 5) for k, v in self.timings_ms.items()},
                "cached": self.cached, "reason": self.reason, "compile_seconds": self.compile_seconds}


def choose_compiled(make_runner: Callable[[str], Any], plan, feeds: dict[str, torch.Tensor] | None,
                    opt_level: int, cache: TimingCache, precision: str, target: dict | None = None,
                    timer: Callable[[Callable[[], Any], int], float] | None = None,
                    reference: list | None = None) -> CompiledChoice:
    """Time the whole engine on greenrt's executor and compiled by Inductor (``make_runner(compiled)`` gives a
    session's runner for either) at ``feeds``; set ``plan.compiled`` to the faster where it wins by
    COMPILED_MIN_GAIN. ``target``: another device's (a build without that GPU: the cache decides, or nothing).

    The compiled graph's accuracy is judged against ``reference`` (the fp32 graph's outputs at ``feeds``) where
    given, next to the executor's own error: it passes within the precision's tolerance or twice the executor's
    error, whichever is larger (in fp16 both round, differently; comparing the two with each other would reject a
    compiled graph as accurate as the executor). Without a reference, against the executor's outputs."""
    plan.compiled = ""
    if feeds is None:
        return CompiledChoice("executor", reason="no inputs at a shape known to suit the model")
    if opt_level < COMPILED_OPT_LEVEL:
        return CompiledChoice("executor", reason=f"Inductor is a candidate from --opt-level {COMPILED_OPT_LEVEL}")
    from ..runtime.fx_lowering import why_not_lowerable

    for step in plan.steps:
        reason = why_not_lowerable(step)
        if reason is not None:
            return CompiledChoice("executor", reason=f"{step.label} cannot be lowered to FX: it {reason}")
    runner = make_runner("")
    signature = {"op": "engine", "plan": _plan_digest(plan), "args": {k: _describe(v) for k, v in feeds.items()}}
    key = cache_key(signature, target or target_of(runner.device))
    entry = cache.entries.get(key)
    if entry is not None and entry["winner"] in ("executor", "inductor"):
        plan.compiled = "" if entry["winner"] == "executor" else "inductor"
        return CompiledChoice(entry["winner"], dict(entry["timings_ms"]), cached=True)
    if target is not None:
        return CompiledChoice("executor", reason="not in the timing cache taken on the target")
    timer = timer or _timer(runner.device)
    runs = RUNS[opt_level]
    timings = {"executor": timer(lambda: runner.run(feeds), runs)}
    plan.compiled = "inductor"
    compiled = make_runner("inductor")
    t0 = time.perf_counter()
    try:
        want = runner.run(feeds)
        got = compiled.run(feeds)
    finally:
        plan.compiled = ""
    compile_seconds = round(time.perf_counter() - t0, 2)
    if compiled.compiled is None or compiled.compiled.failed:
        failed = compiled.compiled.failed if compiled.compiled is not None else "the runner did not compile"
        return CompiledChoice("executor", timings, reason=f"Inductor failed: {failed}")
    tol = default_rtol(precision)
    if reference is not None:
        err = _max_rel_error(tuple(got), tuple(reference))
        allowed = max(tol, 2 * _max_rel_error(tuple(want), tuple(reference)))
        judged = "vs the fp32 graph"
    else:
        err, allowed, judged = _max_rel_error(tuple(got), tuple(want)), tol, "vs the executor"
    if not err <= allowed:
        return CompiledChoice("executor", timings, reason=f"Inductor's output differs: max rel error {err:.2e} "
                                                          f"{judged}, over {allowed:.2e}")
    timings["inductor"] = timer(lambda: compiled.run(feeds), runs)
    winner = "inductor" if timings["inductor"] < timings["executor"] * (1 - COMPILED_MIN_GAIN) else "executor"
    plan.compiled = "inductor" if winner == "inductor" else ""
    cache.entries[key] = {"signature": signature, "target": target or target_of(runner.device), "winner": winner,
                          "timings_ms": {k: round(v, 5) for k, v in timings.items()}, "opt_level": opt_level}
    return CompiledChoice(winner, timings, compile_seconds=compile_seconds)


def _plan_digest(plan) -> str:
    data = plan.to_json()
    data.pop("compiled", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:32]
