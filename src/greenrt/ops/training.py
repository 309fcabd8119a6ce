"""Optimizer ops of domain ai.onnx.preview.training: Adagrad, Adam, Momentum.

Each takes (R learning rate, T step count, then the optimized tensors grouped by role: all X, all G, all states...)
and returns the new X tensors followed by the new states, one group after another.
"""

from __future__ import annotations

import math

import torch

from ..errors import GreenrtError
from .registry import op

TRAINING = "ai.onnx.preview.training"


def _groups(tensors, roles: int, name: str) -> list[tuple]:
    """Splits [X1..Xn, G1..Gn, ...] into n tuples (Xi, Gi, ...)."""
    if len(tensors) % roles:
        raise GreenrtError(f"{name}: expected a multiple of {roles} tensors after R and T, got {len(tensors)}")
    n = len(tensors) // roles
    return [tuple(tensors[k * n + i] for k in range(roles)) for i in range(n)]


def _scalar(t) -> float:
    return float(t.reshape(-1)[0])


@op("Adagrad", 1, domain=TRAINING)
def Adagrad(r, t, *tensors, decay_factor=0.0, epsilon=0.0, norm_coefficient=0.0):
    """h += g'^2; x -= r / (1 + t * decay) * g' / (sqrt(h) + eps), with g' = g + norm_coefficient * x."""
    rate = _scalar(r) / (1 + _scalar(t) * decay_factor)
    xs, hs = [], []
    for x, g, h in _groups(tensors, 3, "Adagrad"):
        g_reg = norm_coefficient * x + g
        h_new = h + g_reg * g_reg
        xs.append((x - rate * g_reg / (torch.sqrt(h_new) + epsilon)).to(x.dtype))
        hs.append(h_new.to(h.dtype))
    return tuple(xs + hs)


@op("Adam", 1, domain=TRAINING)
def Adam(r, t, *tensors, alpha=0.9, beta=0.999, epsilon=0.0, norm_coefficient=0.0, norm_coefficient_post=0.0):
    """Adam with bias correction once t > 0 and optional post-update weight decay."""
    step = int(_scalar(t))
    rate = _scalar(r)
    if step > 0:
        rate = rate * math.sqrt(1 - beta**step) / (1 - alpha**step)
    xs, vs, hs = [], [], []
    for x, g, v, h in _groups(tensors, 4, "Adam"):
        g_reg = norm_coefficient * x + g
        v_new = alpha * v + (1 - alpha) * g_reg
        h_new = beta * h + (1 - beta) * (g_reg * g_reg)
        x_new = x - rate * (v_new / (torch.sqrt(h_new) + epsilon))
        xs.append(((1 - norm_coefficient_post) * x_new).to(x.dtype))
        vs.append(v_new.to(v.dtype))
        hs.append(h_new.to(h.dtype))
    return tuple(xs + vs + hs)


@op("Momentum", 1, domain=TRAINING)
def Momentum(r, t, *tensors, alpha, beta, mode, norm_coefficient):
    """SGD with momentum ('standard') or Nesterov momentum ('nesterov'); the first step uses beta = 1."""
    if mode not in ("standard", "nesterov"):
        raise GreenrtError(f"Momentum: unknown mode {mode!r}")
    rate = _scalar(r)
    beta_now = beta if _scalar(t) > 0 else 1.0
    xs, vs = [], []
    for x, g, v in _groups(tensors, 3, "Momentum"):
        g_reg = norm_coefficient * x + g
        v_new = alpha * v + beta_now * g_reg
        step = v_new if mode == "standard" else g_reg + alpha * v_new
        xs.append((x - rate * step).to(x.dtype))
        vs.append(v_new.to(v.dtype))
    return tuple(xs + vs)
