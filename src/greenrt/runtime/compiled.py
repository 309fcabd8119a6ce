"""The compiled runner: an engine's data steps as one Inductor-compiled graph per input shape.

Where the builder's timing says so (``Plan.compiled == "inductor"``, build/tactics.py), a runner lowers the plan's
data steps for each input shape to FX (runtime/fx_lowering.py, the shape math baked in) and compiles them with
Inductor: fused pointwise and reduction kernels on the GPU; on the CPU, weights frozen into the graph (oneDNN
prepacking, constant folding) and the C++ wrapper. It has the ShapeSpecializer's interface, so CUDA graphs capture
it as they capture the executor.

The engine file holds the choice, never code. What Inductor writes (generated kernels, compiled modules) goes to
a local compiled-code cache, one folder per engine and library versions (``compiled_code_dir``): built on the first
run of each shape, reused by later sessions, wiped and rebuilt when the versions it was built with differ from
this process's. Where compiling fails (no C++ compiler in a lean install, an op Inductor cannot take) the runner
says so once and runs the executor: a compiled engine always runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from .specialize import ShapeSpecializer, Specialization, shape_key

COMPILED_FORMAT = "greenrt-compiled-code/1"


def cache_root() -> Path:
    return Path(os.environ.get("GREENRT_CACHE", Path.home() / ".cache" / "greenrt")) / "compiled"


def _versions(device: torch.device) -> dict:
    from ..plan.engine_file import current_versions

    out = {k: str(v) for k, v in current_versions().items()}
    out["device"] = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return out


def compiled_code_path(key: str, device: torch.device) -> Path:
    """Where one engine's compiled code for ``device`` lives on this machine (nothing created)."""
    return cache_root() / f"{key}-{device.type}"


def compiled_code_dir(key: str, device: torch.device) -> Path:
    """The folder of one engine's compiled code on this machine: created with a record of the versions it is for;
    wiped first when that record names other versions (a stale cache is rebuilt, never reused)."""
    folder = compiled_code_path(key, device)
    meta_path = folder / "greenrt.json"
    want = {"format": COMPILED_FORMAT, "key": key, "versions": _versions(device)}
    try:
        have = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        have = None
    if have != want:
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)
        meta_path.write_text(json.dumps(want, indent=1) + "\n")
    return folder


@contextlib.contextmanager
def _inductor_cache(folder: Path):
    """Inductor's caches pointed at ``folder`` for the compile, the caller's setting restored after."""
    try:
        from torch._inductor.runtime.cache_dir_utils import temporary_cache_dir
    except ImportError:  # pragma: no cover  (older torch)
        temporary_cache_dir = None
    if temporary_cache_dir is not None:
        with temporary_cache_dir(str(folder)):
            yield
        return
    old = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
        else:
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = old


def _options(device: torch.device) -> dict:
    """Inductor settings per device: on the CPU, weights frozen into the graph and the C++ wrapper (no Python per
    call); on the GPU, Inductor's defaults (greenrt's own CUDA graphs replay the result)."""
    if device.type == "cpu":
        return {"freezing": True, "cpp_wrapper": True}
    return {}


def plan_key(plan, weights: Mapping[str, Any]) -> str:
    """A key for an in-memory plan (the builder's candidates): its JSON and its weights' shapes and bytes."""
    h = hashlib.sha256(json.dumps(plan.to_json(), sort_keys=True, default=str).encode())
    for name in sorted(weights):
        value = weights[name]
        if isinstance(value, torch.Tensor):
            h.update(name.encode())
            flat = value.detach().cpu().reshape(-1).clone()  # 0-d and broadcast (stride 0) tensors too
            h.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
    return h.hexdigest()[:24]


class CompiledSpecializer:
    """A ShapeSpecializer whose data steps run as an Inductor-compiled FX graph per input shape."""

    def __init__(self, specializer: ShapeSpecializer, key: str,
                 compile_fn: Callable[..., Any] | None = None):
        self.specializer = specializer
        self.executor = specializer.executor
        self.data_steps = specializer.data_steps
        self.key = key
        self._compile_fn = compile_fn or torch.compile
        self._compiled: dict[tuple, tuple[Callable, list[str], list] | None] = {}
        self.failed = ""  # why compiling failed (the executor runs instead), once it has
        self.compiles = 0
        # per input shape: seconds the first run took (lowering, Inductor, the first call) and whether Inductor's
        # cache for this engine already held code then (a warm load reuses it; a cold one compiles)
        self.compile_seconds: dict[tuple, float] = {}
        self.compile_cache_warm: dict[tuple, bool] = {}

    def prepare(self, feeds: Mapping[str, Any]) -> Specialization:
        return self.specializer.prepare(feeds)

    def run(self, feeds: Mapping[str, Any], spec: Specialization | None = None) -> list[Any]:
        spec = spec or self.prepare(feeds)
        key = shape_key(feeds)
        if key not in self._compiled:
            t0 = time.perf_counter()
            self._compiled[key] = self._compile(feeds, spec, key)
            self.compile_seconds[key] = time.perf_counter() - t0
        entry = self._compiled[key]
        if entry is None:
            return self.specializer.run(feeds, spec)
        fn, names, inference = entry
        return list(fn(*[_as_kind(feeds[n], k) for n, k in zip(names, inference)]))

    def _compile(self, feeds: Mapping[str, Any], spec: Specialization,
                 key: tuple = ()) -> tuple[Callable, list[str], list] | None:
        """Lower and compile for these shapes (and run once: Inductor compiles at the first call); None, with a
        warning the first time, where it cannot."""
        if self.failed:
            return None
        from .fx_lowering import lower_to_fx

        device = self.executor.device
        try:
            gm, names, _ = lower_to_fx(self.executor, specialization=spec)
            import torch._inductor.config as inductor_config

            folder = compiled_code_dir(self.key, device)
            self.compile_cache_warm[key] = any(p.name != "greenrt.json" for p in folder.iterdir())
            args = [feeds[n] for n in names]
            with _inductor_cache(folder), inductor_config.patch(_options(device)):
                fn = self._compile_fn(gm, backend="inductor", dynamic=False)
                fn(*args)
        except Exception as exc:  # noqa: BLE001  (any failure: the executor runs this engine)
            self.failed = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
            warnings.warn(f"greenrt: this engine was built to run compiled by Inductor, which failed here "
                          f"({self.failed}); running it on greenrt's executor instead", stacklevel=4)
            return None
        self.compiles += 1
        return fn, names, [a.is_inference() if isinstance(a, torch.Tensor) else None for a in args]


def _as_kind(value: Any, inference: bool | None) -> Any:
    """``value`` as the kind of tensor (inference or not) the graph was compiled for. Dynamo guards on it: a call
    with the other kind would compile again, outside this module's Inductor settings (on the CPU that second graph,
    without frozen weights, ran 1.6x slower: bench/NOTES.md 2026-12-07). A copy only where the caller's mode
    differs from the first run's."""
    if inference is None or not isinstance(value, torch.Tensor) or value.is_inference() == inference:
        return value
    with torch.inference_mode(inference):
        return value.clone()
