"""--max-accuracy-drop: the INT8 engine with the most INT8 work whose accuracy metric stays within a budget.

    greenrt build m.onnx --int8 --calib calib/ --max-accuracy-drop 0.01 --metric top1-agreement [--accuracy-data tune/]

1. Sensitivity: for every INT8 layer, a trial engine with only that layer kept float, measured on the tuning data
   against the fp32 model: how much of the all-INT8 engine's drop that layer alone accounts for.
2. Cost: a layer kept float costs its multiply-accumulates plus the weight values it reads, the stated proxy (an INT8 MAC runs at about twice an
   fp16 one on tensor cores and four times fp32's SIMD on CPUs); until the INT8 kernels can be timed by the tactic
   stage (the Hopper issue), MACs are what the search trades against.
3. Order and bisection: layers in order of output error recovered per MAC (a knapsack's greedy order; the smooth
   error, measured on the first tuning batch, orders better than top-1 agreement, which one layer barely moves),
   then the shortest prefix of that order whose engine meets the budget on the whole tuning set, found by bisection
   (about log2(layers) trial engines), or every layer float: then the build says the budget cannot be met.

Each trial is the real engine (the same optimized graph, quantization and runner as the build), never a simulation.
The chosen layers are written as a --layer-precision rule, which reproduces the build without the search.

Metrics (the drop: 0 = the fp32 model's own outputs), over the first float output:
- ``top1-agreement``: 1 - the fraction of samples whose argmax over the last axis agrees with fp32's;
- ``kl``: mean KL divergence of softmax(last axis) from fp32's;
- ``cosine``: 1 - the mean cosine similarity of each sample's output (flattened) to fp32's;
- ``module:function``: ``function(ours: list[np.ndarray], reference: list[np.ndarray]) -> float`` (a drop, lower is
  better), over the first float output of each batch.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .user_code import load_callable

METRICS = ("top1-agreement", "kl", "cosine")


def _flat(a: np.ndarray) -> np.ndarray:
    return a.reshape(a.shape[0], -1).astype(np.float64) if a.ndim > 1 else a.reshape(1, -1).astype(np.float64)


def _softmax(a: np.ndarray) -> np.ndarray:
    e = np.exp(a - a.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def top1_drop(ours: list[np.ndarray], ref: list[np.ndarray]) -> float:
    agree = [np.argmax(o, -1) == np.argmax(r, -1) for o, r in zip(ours, ref)]
    return 1.0 - float(np.concatenate([a.reshape(-1) for a in agree]).mean())


def kl_drop(ours: list[np.ndarray], ref: list[np.ndarray]) -> float:
    kls = []
    for o, r in zip(ours, ref):
        p, q = _softmax(r.astype(np.float64)), _softmax(o.astype(np.float64))
        kls.append(np.sum(p * (np.log(p + 1e-30) - np.log(q + 1e-30)), axis=-1).reshape(-1))
    return float(np.concatenate(kls).mean())


def cosine_drop(ours: list[np.ndarray], ref: list[np.ndarray]) -> float:
    cos = []
    for o, r in zip(ours, ref):
        a, b = _flat(o), _flat(r)
        cos.append(np.sum(a * b, 1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30))
    return 1.0 - float(np.concatenate(cos).mean())


def resolve_metric(name: str) -> Callable[[list, list], float]:
    builtin = {"top1-agreement": top1_drop, "kl": kl_drop, "cosine": cosine_drop}
    if name in builtin:
        return builtin[name]
    return load_callable(name, "--metric", f"one of {', '.join(METRICS)}, or module:function taking (ours, "
                         "reference) lists of arrays and returning the drop")


@dataclass
class Int8SearchResult:
    metric: str
    budget: float
    all_int8: float  # the drop with every candidate layer INT8
    final: float
    kept_float: list[str]  # node names, in the order they were kept
    sensitivity: dict[str, float] = field(default_factory=dict)  # layer -> output error with only it float
    cost: dict[str, int] = field(default_factory=dict)  # the cost proxy of layer_cost
    trials: int = 0
    met: bool = True

    @property
    def layer_precision(self) -> str:
        return ",".join(f"{glob.escape(name)}=fp32" for name in self.kept_float)  # names as exact patterns

    def to_json(self) -> dict:
        return {"metric": self.metric, "budget": self.budget, "all_int8_drop": self.all_int8,
                "final_drop": self.final, "met": self.met, "kept_float": list(self.kept_float),
                "layer_precision": self.layer_precision, "trials": self.trials,
                "sensitivity": {k: {"mean_rel_err_with_only_it_float": v, "cost": self.cost.get(k, 0)}
                                for k, v in self.sensitivity.items()},
                "cost_proxy": "multiply-accumulates per sample plus weight values read (the INT8 kernels are not timed "
                              "yet)"}


def search_int8(layers: list[str], cost: dict[str, int], evaluate: Callable[..., tuple[float, float]],
                budget: float, metric: str, log=print, progress=None) -> Int8SearchResult:
    """``evaluate(kept_float, quick=False)`` -> (the metric's drop, the mean relative error of the output) of the
    engine with those layers float and the rest INT8; ``quick`` runs it on the first batch only (the per-layer
    sensitivities, where the smooth error orders the layers and one batch is enough)."""
    base, _ = evaluate([])
    log(f"int8 search: all {len(layers)} layers INT8: {metric} drop {base:.4g} (budget {budget:g})")
    result = Int8SearchResult(metric, budget, base, base, [], cost=dict(cost), trials=1)
    if base <= budget:
        return result
    _, base_err = evaluate([], quick=True)
    gain = {}
    for i, name in enumerate(layers):
        _, err = evaluate([name], quick=True)
        gain[name] = base_err - err
        result.sensitivity[name] = err
        if progress:
            progress(i + 1, len(layers))
    result.trials += 1 + len(layers)
    # knapsack's greedy order: error recovered per unit of cost kept float, the layers that recover nothing last
    order = sorted(layers, key=lambda n: (gain[n] <= 0, -gain[n] / max(cost.get(n, 1), 1), n))
    drops: dict[int, float] = {}

    def drop_at(k: int) -> float:
        if k not in drops:
            drops[k], _ = evaluate(order[:k])
            result.trials += 1
            log(f"int8 search: {k} layer(s) float (cost {sum(cost.get(n, 0) for n in order[:k]) / 1e6:.1f} M "
                f"MACs + weights): "
                f"{metric} drop {drops[k]:.4g}")
        return drops[k]

    lo, hi = 0, len(order)  # drop_at(lo) over budget; the smallest k within it is in (lo, hi]
    if drop_at(hi) > budget:
        result.kept_float, result.final, result.met = list(order), drops[hi], False
        return result
    while hi - lo > 1:  # bisection, taking the drop as falling with k (each step re-measured, not assumed)
        mid = (lo + hi) // 2
        if drop_at(mid) <= budget:
            hi = mid
        else:
            lo = mid
    result.kept_float, result.final = order[:hi], drops[hi]
    return result


def layer_cost(model) -> dict[str, int]:
    """The cost proxy per INT8 candidate of an optimized onnx-ir model: multiply-accumulates per sample at the graph's
    static shapes (the batch dim counts as 1) plus the weight values it reads (bytes moved: for an embedding lookup,
    whose MACs are none, its table's size, so keeping a large table float is not taken as free)."""
    out = {}
    for node in model.graph:
        if len(node.inputs) < 2:
            continue
        if node.op_type == "Gather":
            table = node.inputs[0]
            if table is not None and table.const_value is not None:
                out[node.name or ""] = int(np.prod(table.const_value.shape))
            continue
        if node.op_type not in ("Conv", "FusedConv", "MatMul", "FusedMatMul"):
            continue
        w = node.inputs[1]
        y = node.outputs[0]
        if w is None or w.const_value is None or y.shape is None:
            continue
        w_shape = list(w.const_value.shape)
        out_elems = 1
        for d in list(y.shape)[1:]:
            out_elems *= d if isinstance(d, int) else 1
        if node.op_type in ("Conv", "FusedConv"):
            per_output = int(np.prod(w_shape[1:]))
        else:
            trans = any(a.name == "trans_w" and a.value for a in node.attributes.values())
            per_output = w_shape[1] if trans else w_shape[0]
        out[node.name or ""] = int(out_elems * per_output + np.prod(w_shape))
    return out
