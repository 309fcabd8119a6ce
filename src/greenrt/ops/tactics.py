"""Tactics: alternative implementations of one op, of which the builder times the candidates and keeps the fastest.

An op's registered function is its default (a heuristic choice among paths). A tactic is a named variant with the
same signature that takes one path on purpose, plus a ``supports`` test on the actual arguments (device, dtype,
attributes), so a candidate is only ever timed where it can run. The builder's tactic stage (build/tactics.py)
writes the winner's name into the plan step (``PlanStep.tactic``); the executor binds that variant instead of the
default. A plan names tactics, never code: loading an engine only looks names up here.

    @tactic("greenrt", "FusedConv", "cudnn-fused", supports=_cudnn_fusable,
            doc="one cuDNN call: conv + bias [+ residual] + ReLU epilogue")
    def _conv_cudnn(x, w, b=None, z=None, **attrs): ...

Every variant of an op must compute the same function as the op (the tactic stage also checks each candidate's
output against the default's before timing it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence


@dataclass(frozen=True)
class Tactic:
    domain: str
    op_type: str
    name: str
    fn: Callable[..., Any]
    supports: Callable[[Sequence[Any], dict], bool]
    doc: str = ""


TACTICS: dict[tuple[str, str], dict[str, Tactic]] = {}


def tactic(domain: str, op_type: str, name: str, supports: Callable[[Sequence[Any], dict], bool] = lambda a, k: True,
           doc: str = ""):
    """Register ``fn`` as the variant ``name`` of (domain, op_type)."""

    def register(fn):
        variants = TACTICS.setdefault((domain, op_type), {})
        if name in variants:
            raise ValueError(f"tactic {name!r} of {domain}.{op_type} registered twice")
        variants[name] = Tactic(domain, op_type, name, fn, supports, doc)
        return fn

    return register


def lookup(domain: str, op_type: str, name: str) -> Tactic | None:
    from . import load_all

    load_all()
    return TACTICS.get((domain, op_type), {}).get(name)


def candidates(domain: str, op_type: str, args: Sequence[Any], attrs: dict) -> list[Tactic]:
    """The variants of this op that can run these arguments (empty: the op has no choice to make)."""
    from . import load_all

    load_all()
    found = []
    for t in TACTICS.get((domain, op_type), {}).values():
        try:
            ok = t.supports(args, attrs)
        except Exception:  # noqa: BLE001  (a supports test that cannot judge these arguments says no)
            ok = False
        if ok:
            found.append(t)
    return found
