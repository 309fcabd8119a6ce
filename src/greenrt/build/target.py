"""Which machine a build runs on, and which it builds for.

Usually the same: a CUDA engine is built on its GPU, where the tactic stage times the candidates. A timing cache
taken on a GPU (a build there with ``--timing-cache``) holds each layer's winner for that GPU and its library
versions, so an engine for that GPU can also be built where there is none (a CPU-only machine, a CI runner):

    greenrt build model.onnx --device cuda --fp16 --timing-cache h200.json      # on a machine without a GPU

The model then runs on the CPU for everything a build runs it for (range observation, the accuracy checks, the
memory report) with the ops' default implementations; the tactic stage only looks each layer up in the cache
(nothing can be timed for a device that is not here); and the engine header records the target's device and
versions from the cache, not this machine's, so the engine loads on the target and is refused elsewhere.
Neither TensorRT, onnxruntime nor torch.compile can build for a GPU they do not run on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import torch

from ..errors import GreenrtError
from ..runtime.session import resolve_device


@dataclass
class BuildTarget:
    run_on: torch.device  # where this build runs the model
    target: dict | None = None  # the timing cache's target, for a build for a device this machine lacks

    @property
    def cross(self) -> bool:
        return self.target is not None

    def describe(self) -> str:
        t = self.target or {}
        return (f"{t.get('device')} (compute capability {t.get('capability')}; torch {t.get('torch')}, cuDNN "
                f"{t.get('cudnn')}, Triton {t.get('triton')})")


def cache_targets(cache, device_type: str) -> list[dict]:
    """The distinct targets of ``device_type`` that ``cache``'s entries were timed on."""
    seen: dict[str, dict] = {}
    for entry in cache.entries.values():
        target = entry.get("target")
        if isinstance(target, dict) and target.get("device_type") == device_type:
            seen.setdefault(json.dumps(target, sort_keys=True), target)
    return list(seen.values())


def resolve_target(device: str, cache, cache_path: str | None) -> BuildTarget:
    """Run on ``device`` where this machine has it; a CUDA build on a machine without a GPU builds for the GPU
    its timing cache was taken on."""
    dev = torch.device(device)
    if dev.type != "cuda" or torch.cuda.is_available():
        return BuildTarget(resolve_device(dev))
    if cache_path is None:
        raise GreenrtError("device 'cuda' requested but torch sees no CUDA GPU here. To build a CUDA engine on a "
                           "machine without one, pass --timing-cache FILE taken on the target GPU (a build there "
                           "with --timing-cache FILE writes it); else build with --device cpu")
    targets = cache_targets(cache, "cuda")
    if not targets:
        raise GreenrtError(f"device 'cuda' requested but torch sees no CUDA GPU here, and the timing cache "
                           f"{cache_path} holds no timings taken on a GPU to build for: take it on the target GPU "
                           "(a build there with --timing-cache) or build with --device cpu")
    if len(targets) > 1:
        names = "; ".join(f"{t.get('device')} torch {t.get('torch')} cuDNN {t.get('cudnn')}" for t in targets)
        raise GreenrtError(f"the timing cache {cache_path} holds timings of {len(targets)} GPU targets ({names}), so "
                           "it does not say which GPU to build for: use a cache taken on the target alone")
    target = targets[0]
    for key in ("device", "capability", "torch"):
        if not target.get(key):
            raise GreenrtError(f"the timing cache {cache_path} does not record its GPU's {key}: take it again on the "
                               "target GPU with this greenrt")
    return BuildTarget(torch.device("cpu"), target)


def target_device_info(target: dict) -> dict:
    """The engine header's ``device`` for a target from a timing cache (as current_device_info gives it there)."""
    try:
        capability = [int(x) for x in str(target["capability"]).split(".")]
    except ValueError:
        raise GreenrtError(f"the timing cache's target has an unreadable compute capability "
                           f"{target['capability']!r}: take it again on the target GPU") from None
    return {"type": target["device_type"], "name": target["device"], "capability": capability}


def target_versions(target: dict, here: dict) -> dict:
    """The engine header's ``versions`` for a target: greenrt's own (the same code builds and runs it), the
    target's torch, Triton and CUDA."""
    return here | {"torch": target["torch"], "triton": target.get("triton"), "cuda": target.get("cuda")}
