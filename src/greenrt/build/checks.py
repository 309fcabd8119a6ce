"""What the builder runs to check an engine: sample inputs, random inputs at shapes known to be valid, and the
reason when a check cannot run.

A build never fails because a made-up shape does not suit the model. Random inputs are drawn only at shapes the
user or the model vouched for: each profile's opt shape, the shapes of the sample inputs, or the model's own
static shapes. A random check that the unoptimized model itself cannot run (random values a model rejects) is
skipped and reported; the build fails only where the engine fails on inputs the unoptimized model runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import GreenrtError, InvalidInputError
from ..onnx.dtypes import numpy_to_torch
from ..plan.profiles import Profile, max_shapes, opt_shapes, select_profile
from ..runtime.runner import Runner
from ..runtime.session import NodeArg, check_input, node_arg
from .inputs import index_bounds, random_feeds


@dataclass
class CheckInputs:
    """One set of feeds to check the engine on: 'sample' (given) or 'random' (at a valid shape)."""

    kind: str
    label: str  # "sample 0", "profile 1 opt shapes", "static shapes"
    feeds: dict[str, torch.Tensor]


def check_samples(samples: list[dict[str, Any]], specs, profiles: list[Profile]) -> None:
    """Sample feeds name exactly the model's inputs, pass the session's input checks and fit a profile."""
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


def dynamic_inputs(specs) -> dict[str, list]:
    """Inputs whose shape is unknown or has a dim that is not a fixed number: name -> declared shape."""
    return {s.name: (list(s.shape) if s.shape is not None else None) for s in specs
            if s.shape is None or any(not isinstance(d, int) for d in s.shape)}


def valid_shapes(profiles: list[Profile], specs, samples: list[dict[str, Any]] | None,
                 which: str = "opt") -> tuple[list[tuple[str, dict[str, list[int]]]], str]:
    """Shapes random inputs may be drawn at, each with a label, or ([], why there are none).

    ``which``: "opt" (checks) or "max" (the memory report) for profiles."""
    if profiles:
        pick = opt_shapes if which == "opt" else max_shapes
        return [(f"profile {i} {which} shapes", pick(p)) for i, p in enumerate(profiles)], ""
    dynamic = dynamic_inputs(specs)
    if not dynamic:
        return [("static shapes", {s.name: list(s.shape) for s in specs})], ""
    if samples:
        biggest = max(samples, key=lambda f: sum(np.asarray(v).size for v in f.values()))
        return [("sample shapes", {k: list(np.asarray(v).shape) for k, v in biggest.items()})], ""
    desc = ", ".join(f"{n}: {shape}" for n, shape in dynamic.items())
    return [], (f"dynamic dims ({desc}) and no --inputs or --shapes: no shape is known to suit the model; give "
                "sample inputs with --inputs or a profile with --shapes")


def device_random_feeds(runner: Runner, shapes: dict[str, list[int]], seed: int) -> dict[str, torch.Tensor]:
    """Random inputs for ``runner``'s plan at ``shapes``, on its device (ids kept inside their embedding tables)."""
    args = [NodeArg(s.name, s.shape, "", s.dtype) for s in runner.plan.inputs]
    bounds = index_bounds(runner.plan, runner.executor.constants)
    arrays = random_feeds(args, shapes, seed=seed, int_bounds=bounds).arrays
    return {k: numpy_to_torch(v, runner.device) for k, v in arrays.items()}


def run_reference(reference: Runner, check: CheckInputs) -> tuple[list[Any] | None, str]:
    """The unoptimized model's outputs on a check's feeds, or (None, why it could not run them)."""
    try:
        return reference.run(check.feeds), ""
    except GreenrtError as exc:
        if check.kind == "sample":
            raise GreenrtError(f"the unoptimized model fails on {check.label}, so it cannot check the engine: "
                               f"{exc}\ncheck the sample inputs (names, shapes, value ranges)") from None
        shapes = {k: list(v.shape) for k, v in check.feeds.items()}
        return None, f"the unoptimized model rejects random inputs at {check.label} {shapes}: {exc}"
