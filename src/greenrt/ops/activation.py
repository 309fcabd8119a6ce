"""Activations (being extended)."""

from __future__ import annotations

import torch

from .registry import op


@op("Relu", 1, 6, 13, 14)
def Relu(x):
    return torch.relu(x)
