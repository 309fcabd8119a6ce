"""Optimization profiles: per input, the min / opt / max shape an engine accepts (several profiles allowed).

CLI form, one profile per ``--shapes``:  ``image:1x3x224x224/8x3x224x224/32x3x224x224,mask:1x128``
(a single shape means min = opt = max). A run whose shapes fit no profile is refused, naming the input and ranges.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping, Sequence

from ..errors import GreenrtError, InvalidInputError

_DIMS = r"\d+(?:x\d+)*"


class ProfileFormatError(GreenrtError, ValueError):
    """A profile (from an engine header) that is not one; the message says what is wrong."""


@dataclass
class Profile:
    shapes: dict[str, tuple[list[int], list[int], list[int]]]  # name -> (min, opt, max)

    def to_json(self) -> dict:
        return {name: {"min": mn, "opt": op, "max": mx} for name, (mn, op, mx) in self.shapes.items()}

    @classmethod
    def from_json(cls, data: dict) -> "Profile":
        """The profile ``data`` describes ({name: {"min", "opt", "max"}}); ProfileFormatError where it is not one:
        dims that are not integers >= 0, ranks that differ, or min <= opt <= max broken."""
        if not isinstance(data, dict) or not data:
            raise ProfileFormatError(f"expected an object of input name -> min/opt/max, got {data!r:.60}")
        shapes = {}
        for name, d in data.items():
            if not isinstance(d, dict) or set(d) != {"min", "opt", "max"}:
                raise ProfileFormatError(f"input {name!r}: expected min, opt and max shapes, got {d!r:.60}")
            mn, op, mx = (d[k] for k in ("min", "opt", "max"))
            for k, dims in (("min", mn), ("opt", op), ("max", mx)):
                if not isinstance(dims, list) or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0
                                                         for x in dims):
                    raise ProfileFormatError(f"input {name!r}: {k} {dims!r:.60} is not a list of dims >= 0")
            if not len(mn) == len(op) == len(mx):
                raise ProfileFormatError(f"input {name!r}: min, opt and max have different ranks")
            if any(not a <= b <= c for a, b, c in zip(mn, op, mx)):
                raise ProfileFormatError(f"input {name!r}: not min <= opt <= max ({_fmt(mn)} / {_fmt(op)} / "
                                         f"{_fmt(mx)})")
            shapes[name] = (mn, op, mx)
        return cls(shapes)

    def describe(self) -> str:
        return ", ".join(f"{n}: {_fmt(a)} .. {_fmt(c)} (opt {_fmt(b)})" for n, (a, b, c) in self.shapes.items())

    def fits(self, shapes: Mapping[str, Sequence[int]]) -> str:
        """'' if every input named by the profile is within its range, else the first reason it is not."""
        for name, (mn, _, mx) in self.shapes.items():
            got = list(shapes.get(name, ()))
            if len(got) != len(mn):
                return f"input {name!r} has shape {_fmt(got)}, rank {len(got)}; the profile has rank {len(mn)}"
            if any(g < a or g > b for g, a, b in zip(got, mn, mx)):
                return f"input {name!r} has shape {_fmt(got)}, outside {_fmt(mn)} .. {_fmt(mx)}"
        return ""


def _fmt(dims: Sequence[int]) -> str:
    return "x".join(str(d) for d in dims)


def parse_profile(spec: str) -> Profile:
    shapes = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, sep, ranges = item.rpartition(":")
        parts = ranges.split("/")
        if not sep or not name or len(parts) not in (1, 3) or not all(re.fullmatch(_DIMS, p) for p in parts):
            raise GreenrtError(
                f"--shapes: cannot parse {item!r}; write NAME:MIN/OPT/MAX like image:1x3x224x224/8x3x224x224/"
                "32x3x224x224, or NAME:1x3x224x224 for a fixed shape"
            )
        dims = [[int(d) for d in p.split("x")] for p in parts]
        mn, op, mx = (dims * 3)[:3] if len(dims) == 1 else dims
        if not (len(mn) == len(op) == len(mx)):
            raise GreenrtError(f"--shapes: {item!r}: min, opt and max must have the same rank")
        if any(not (a <= b <= c) for a, b, c in zip(mn, op, mx)):
            raise GreenrtError(f"--shapes: {item!r}: need min <= opt <= max in every dimension")
        shapes[name] = (mn, op, mx)
    if not shapes:
        raise GreenrtError("--shapes: empty profile")
    return Profile(shapes)


def check_profiles(profiles: Sequence[Profile], input_specs, model_inputs: Sequence[str]) -> None:
    """Build-time check: profiles name real inputs with the right rank and agree with static dims."""
    specs = {s.name: s for s in input_specs}
    for i, profile in enumerate(profiles):
        for name, (mn, _, mx) in profile.shapes.items():
            if name not in specs:
                raise GreenrtError(f"profile {i}: unknown input {name!r}; inputs are {list(model_inputs)}")
            shape = specs[name].shape
            if shape is None:
                continue
            if len(shape) != len(mn):
                raise GreenrtError(f"profile {i}: input {name!r} has rank {len(shape)} in the model, {len(mn)} here")
            for axis, (d, a, b) in enumerate(zip(shape, mn, mx)):
                if isinstance(d, int) and not (a == d == b):
                    raise GreenrtError(f"profile {i}: input {name!r} dimension {axis} is fixed at {d} in the model")


def select_profile(profiles: Sequence[Profile], shapes: Mapping[str, Sequence[int]]) -> int:
    """Index of the first profile the run's shapes fit; InvalidInputError naming inputs and ranges otherwise."""
    if not profiles:
        return -1
    reasons = []
    for i, profile in enumerate(profiles):
        why = profile.fits(shapes)
        if not why:
            return i
        reasons.append(f"profile {i} ({profile.describe()}): {why}")
    raise InvalidInputError(
        "input shapes fit none of the engine's optimization profiles; rebuild with a profile that covers them "
        "(greenrt build --shapes ...):\n" + "\n".join(f"  - {r}" for r in reasons)
    )


def opt_shapes(profile: Profile) -> dict[str, list[int]]:
    return {name: op for name, (_, op, _) in profile.shapes.items()}


def max_shapes(profile: Profile) -> dict[str, list[int]]:
    return {name: mx for name, (_, _, mx) in profile.shapes.items()}
