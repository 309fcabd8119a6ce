"""Binary and variadic arithmetic: Add, Sub, Mul, Div, Pow, Mod, Max, Min, Mean, Sum, ... (being extended)."""

from __future__ import annotations

import torch

from .registry import op


@op("Add", 1, 6, 7, 13, 14)
def Add(a, b):
    return torch.add(a, b)
