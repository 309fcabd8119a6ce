"""Dropout, NegativeLogLikelihoodLoss, SoftmaxCrossEntropyLoss."""

from __future__ import annotations

import torch

from .registry import op


@op("Dropout", 1, 6, 7)
def Dropout_1(x, *, ratio=0.5, is_test=0):
    """Inference: identity; the mask (of the data's type in these versions) is all ones."""
    return x, torch.ones_like(x)


@op("Dropout", 10)
def Dropout_10(x, *, ratio=0.5):
    return x, torch.ones(x.shape, dtype=torch.bool, device=x.device)


@op("Dropout", 12, 13, 22)
def Dropout_12(x, ratio=None, training_mode=None, *, seed=None):
    """Identity unless training_mode is true: then zero a random `ratio` of elements and scale the rest."""
    ratio = 0.5 if ratio is None else float(ratio)
    training = training_mode is not None and bool(training_mode)
    if not training or ratio == 0.0:
        return x, torch.ones(x.shape, dtype=torch.bool, device=x.device)
    generator = torch.Generator(device=x.device)
    if seed is not None:
        generator.manual_seed(int(seed))
    else:
        generator.seed()
    mask = torch.rand(x.shape, generator=generator, device=x.device) >= ratio
    scale = 1.0 / (1.0 - ratio) if ratio < 1.0 else 0.0
    y = torch.where(mask, x * scale, torch.zeros_like(x))
    return y.to(x.dtype), mask


def _work(x):
    return x if x.dtype in (torch.float32, torch.float64) else x.to(torch.float32)


def _nll(log_prob, target, weight, ignore_index, reduction):
    """Weighted negative log likelihood of log_prob (N, C, d1, ...) at target (N, d1, ...)."""
    target = target.to(torch.int64)
    valid = torch.ones_like(target, dtype=torch.bool)
    if ignore_index is not None:
        valid = target != ignore_index
    safe_target = torch.where(valid, target, torch.zeros_like(target))
    picked = torch.gather(log_prob, 1, safe_target.unsqueeze(1)).squeeze(1)
    w = weight[safe_target] if weight is not None else torch.ones_like(picked)
    w = torch.where(valid, w, torch.zeros_like(w))
    loss = -picked * w
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / w.sum()


@op("NegativeLogLikelihoodLoss", 12, 13, 22)
def NegativeLogLikelihoodLoss(x, target, weight=None, *, ignore_index=None, reduction="mean"):
    weight = _work(weight) if weight is not None else None
    return _nll(_work(x), target, weight, ignore_index, reduction).to(x.dtype)


@op("SoftmaxCrossEntropyLoss", 12, 13)
def SoftmaxCrossEntropyLoss(scores, labels, weights=None, *, ignore_index=None, reduction="mean"):
    """NLL of log_softmax over the class axis 1; the second output is the log-probabilities."""
    log_prob = torch.log_softmax(_work(scores), dim=1)
    weights = _work(weights) if weights is not None else None
    loss = _nll(log_prob, labels, weights, ignore_index, reduction)
    return loss.to(scores.dtype), log_prob.to(scores.dtype)
