"""Recurrent layers: RNN, GRU, LSTM.

All three share one driver: X @ W^T (+ biases) is computed for every time step at once, then a per-step cell
adds H @ R^T and applies the gate activations. Directions forward/reverse/bidirectional, layout 0
([seq, batch, ...]) and 1 ([batch, seq, ...]), sequence_lens (steps past a row's length leave its state as is and
write zeros to Y), initial states, peepholes, clip and the activations/activation_alpha/activation_beta
attributes are supported.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .registry import op

Act = Callable[[torch.Tensor], torch.Tensor]


# -- activations ------------------------------------------------------------------------------------------
def _make_activation(name: str, alpha: float | None, beta: float | None) -> Act:
    """An ONNX RNN activation by name (case-insensitive), with its alpha/beta (None: the op's default)."""
    key = name.lower()
    a = lambda d: d if alpha is None else alpha  # noqa: E731
    b = lambda d: d if beta is None else beta  # noqa: E731
    if key == "sigmoid":
        return torch.sigmoid
    if key == "tanh":
        return torch.tanh
    if key == "relu":
        return torch.relu
    if key == "affine":
        al, be = a(1.0), b(0.0)
        return lambda x: al * x + be
    if key == "leakyrelu":
        al = a(0.01)
        return lambda x: F.leaky_relu(x, al)
    if key == "thresholdedrelu":
        al = a(1.0)
        return lambda x: torch.where(x > al, x, torch.zeros_like(x))
    if key == "scaledtanh":
        al, be = a(1.0), b(1.0)
        return lambda x: al * torch.tanh(be * x)
    if key == "hardsigmoid":
        al, be = a(0.2), b(0.5)
        return lambda x: torch.clamp(al * x + be, 0.0, 1.0)
    if key == "elu":
        al = a(1.0)
        return lambda x: F.elu(x, al)
    if key == "softsign":
        return F.softsign
    if key == "softplus":
        return F.softplus
    raise ValueError(f"unsupported RNN activation {name!r}")


_USES_ALPHA = {"affine", "leakyrelu", "thresholdedrelu", "scaledtanh", "hardsigmoid", "elu"}
_USES_BETA = {"affine", "scaledtanh", "hardsigmoid"}


def _activations(names, alphas, betas, defaults: list[str], num_directions: int) -> list[list[Act]]:
    """Per direction, the activation functions; alpha/beta values are consumed in order by the functions
    that take them (as onnxruntime does)."""
    names = list(names) if names else defaults * num_directions
    if len(names) == len(defaults) and num_directions == 2:
        names = names * 2
    alphas, betas = list(alphas or []), list(betas or [])
    funcs = []
    for name in names:
        key = name.lower()
        alpha = alphas.pop(0) if key in _USES_ALPHA and alphas else None
        beta = betas.pop(0) if key in _USES_BETA and betas else None
        funcs.append(_make_activation(name, alpha, beta))
    k = len(defaults)
    return [funcs[d * k : (d + 1) * k] for d in range(num_directions)]


# -- shared driver ----------------------------------------------------------------------------------------
def _clipper(clip: float | None) -> Act:
    if clip is None:
        return lambda x: x
    return lambda x: torch.clamp(x, -clip, clip)


def _step_mask(sequence_lens, seq_len: int, batch: int, device) -> torch.Tensor | None:
    """[seq, batch, 1] bool: whether step t is inside row b's sequence; None when all rows are full."""
    if sequence_lens is None:
        return None
    lens = sequence_lens.to(device=device, dtype=torch.int64).reshape(batch)
    steps = torch.arange(seq_len, device=device).unsqueeze(1)
    return (steps < lens.unsqueeze(0)).unsqueeze(-1)


def _num_directions(direction: str) -> int:
    if direction not in ("forward", "reverse", "bidirectional"):
        raise ValueError(f"unknown direction {direction!r}")
    return 2 if direction == "bidirectional" else 1


def _initial(state, layout: int, num_directions: int, batch: int, hidden: int, like: torch.Tensor):
    """An initial state as [num_directions, batch, hidden] (zeros when omitted)."""
    if state is None:
        return like.new_zeros((num_directions, batch, hidden))
    return state.transpose(0, 1) if layout == 1 else state


def _run(x, w, b_sum, sequence_lens, states0, cell, direction: str, layout: int):
    """Drive ``cell(gx_t, states, d) -> new states (h first)`` over time for each direction.

    x: [seq, batch, in] (layout 0 already), w: [D, G*H, in], b_sum: [D, G*H] (Wb + Rb, or the part the cell
    does not add itself), states0: list of [D, batch, H]. Returns Y [seq, D, batch, H] and final states [D, ...].
    """
    seq_len, batch = x.shape[0], x.shape[1]
    num_dirs = w.shape[0]
    mask = _step_mask(sequence_lens, seq_len, batch, x.device)
    ys, finals = [], [[] for _ in states0]
    for d in range(num_dirs):
        reverse = direction == "reverse" or (direction == "bidirectional" and d == 1)
        gx = torch.matmul(x, w[d].transpose(0, 1)) + b_sum[d]  # [seq, batch, G*H] for all steps at once
        states = [s[d] for s in states0]
        y = x.new_zeros((seq_len, batch, states[0].shape[-1]))
        for t in reversed(range(seq_len)) if reverse else range(seq_len):
            new = cell(gx[t], states, d)
            if mask is None:
                states = new
                y[t] = new[0]
            else:
                m = mask[t]
                states = [torch.where(m, n, s) for n, s in zip(new, states)]
                y[t] = torch.where(m, new[0], torch.zeros_like(new[0]))
        ys.append(y)
        for acc, s in zip(finals, states):
            acc.append(s)
    return torch.stack(ys, dim=1), [torch.stack(f) for f in finals]


def _to_layout0(x, layout: int):
    return x.transpose(0, 1) if layout == 1 else x


def _outputs(y, finals, layout: int):
    """Y as [seq, D, batch, H] (layout 0) or [batch, seq, D, H] (layout 1); final states likewise."""
    if layout == 1:
        return (y.permute(2, 0, 1, 3), *[f.transpose(0, 1) for f in finals])
    return (y, *finals)


def _bias_parts(b, num_dirs: int, gh: int, like: torch.Tensor):
    """(Wb, Rb) each [D, G*H], zeros when B is omitted."""
    if b is None:
        zeros = like.new_zeros((num_dirs, gh))
        return zeros, zeros
    return b[:, :gh], b[:, gh:]


# -- RNN --------------------------------------------------------------------------------------------------
@op("RNN", 1, 7, 14, 22)
def RNN(
    x,
    w,
    r,
    b=None,
    sequence_lens=None,
    initial_h=None,
    *,
    activation_alpha=None,
    activation_beta=None,
    activations=None,
    clip=None,
    direction="forward",
    hidden_size=None,
    layout=0,
    output_sequence=0,
):
    """Ht = f(Xt W^T + Ht-1 R^T + Wb + Rb)."""
    num_dirs = _num_directions(direction)
    hidden = r.shape[-1]
    xs = _to_layout0(x, layout)
    acts = _activations(activations, activation_alpha, activation_beta, ["Tanh"], num_dirs)
    clamp = _clipper(clip)
    wb, rb = _bias_parts(b, num_dirs, hidden, x)
    h0 = _initial(initial_h, layout, num_dirs, xs.shape[1], hidden, x)
    rt = r.transpose(1, 2)

    def cell(gx, states, d):
        return [acts[d][0](clamp(gx + states[0] @ rt[d]))]

    y, finals = _run(xs, w, wb + rb, sequence_lens, [h0], cell, direction, layout)
    return _outputs(y, finals, layout)


# -- GRU --------------------------------------------------------------------------------------------------
@op("GRU", 1, 3, 7, 14, 22)
def GRU(
    x,
    w,
    r,
    b=None,
    sequence_lens=None,
    initial_h=None,
    *,
    activation_alpha=None,
    activation_beta=None,
    activations=None,
    clip=None,
    direction="forward",
    hidden_size=None,
    layout=0,
    linear_before_reset=0,
    output_sequence=0,
):
    """Gates z, r, h: Ht = (1 - zt) * ht~ + zt * Ht-1, with Rb_h inside or outside the reset product."""
    num_dirs = _num_directions(direction)
    hidden = r.shape[-1]
    xs = _to_layout0(x, layout)
    acts = _activations(activations, activation_alpha, activation_beta, ["Sigmoid", "Tanh"], num_dirs)
    clamp = _clipper(clip)
    wb, rb = _bias_parts(b, num_dirs, 3 * hidden, x)
    h0 = _initial(initial_h, layout, num_dirs, xs.shape[1], hidden, x)
    # X-side bias holds Wb (all gates) + Rb for z and r; Rb_h is added in the cell where the variant needs it.
    x_bias = wb + torch.cat([rb[:, : 2 * hidden], torch.zeros_like(rb[:, 2 * hidden :])], dim=1)
    rt = r.transpose(1, 2)  # [D, H, 3H]
    rb_h = rb[:, 2 * hidden :]

    def cell(gx, states, d):
        f, g = acts[d]
        h = states[0]
        hz_hr = h @ rt[d][:, : 2 * hidden]
        z = f(clamp(gx[:, :hidden] + hz_hr[:, :hidden]))
        reset = f(clamp(gx[:, hidden : 2 * hidden] + hz_hr[:, hidden:]))
        r_h = rt[d][:, 2 * hidden :]
        if linear_before_reset:
            hh = reset * (h @ r_h + rb_h[d])
        else:
            hh = (reset * h) @ r_h + rb_h[d]
        candidate = g(clamp(gx[:, 2 * hidden :] + hh))
        return [(1 - z) * candidate + z * h]

    y, finals = _run(xs, w, x_bias, sequence_lens, [h0], cell, direction, layout)
    return _outputs(y, finals, layout)


# -- LSTM -------------------------------------------------------------------------------------------------
@op("LSTM", 1, 7, 14, 22)
def LSTM(
    x,
    w,
    r,
    b=None,
    sequence_lens=None,
    initial_h=None,
    initial_c=None,
    p=None,
    *,
    activation_alpha=None,
    activation_beta=None,
    activations=None,
    clip=None,
    direction="forward",
    hidden_size=None,
    input_forget=0,
    layout=0,
    output_sequence=0,
):
    """Gates i, o, f, c with optional peepholes P (i, o, f); input_forget couples f = 1 - i."""
    num_dirs = _num_directions(direction)
    hidden = r.shape[-1]
    xs = _to_layout0(x, layout)
    acts = _activations(activations, activation_alpha, activation_beta, ["Sigmoid", "Tanh", "Tanh"], num_dirs)
    clamp = _clipper(clip)
    wb, rb = _bias_parts(b, num_dirs, 4 * hidden, x)
    batch = xs.shape[1]
    h0 = _initial(initial_h, layout, num_dirs, batch, hidden, x)
    c0 = _initial(initial_c, layout, num_dirs, batch, hidden, x)
    peep = p if p is not None else x.new_zeros((num_dirs, 3 * hidden))
    rt = r.transpose(1, 2)

    def cell(gx, states, d):
        f, g, h_act = acts[d]
        h, c = states
        gates = gx + h @ rt[d]
        gi, go, gf, gc = gates.split(hidden, dim=1)
        pi, po, pf = peep[d].split(hidden)
        i = f(clamp(gi + pi * c))
        forget = 1 - i if input_forget else f(clamp(gf + pf * c))
        c_new = forget * c + i * g(clamp(gc))
        o = f(clamp(go + po * c_new))
        return [o * h_act(c_new), c_new]

    y, finals = _run(xs, w, wb + rb, sequence_lens, [h0, c0], cell, direction, layout)
    return _outputs(y, finals, layout)
