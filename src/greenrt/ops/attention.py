"""Attention-family ops: Attention, RotaryEmbedding, LinearAttention, CausalConvWithState, TensorScatter, SwiGLU,
and ai.onnx.preview FlexAttention.

Numerics follow onnx.reference: Q and K are each pre-scaled by sqrt(scale) in the input dtype, masks become an
additive bias (0 / -inf), and a query row whose bias is entirely -inf produces zeros instead of NaN.
"""

from __future__ import annotations

import math

import torch

from ..onnx.dtypes import to_torch_dtype
from .registry import op

_NEG_INF = float("-inf")


def _scalar(value: float, like: torch.Tensor) -> torch.Tensor:
    """A 0-d tensor of ``like``'s dtype/device (so scalar math rounds like numpy's typed scalars); torch.full is a
    fill kernel, not a host-to-device copy, so it can be captured in a CUDA graph."""
    return torch.full((), value, dtype=like.dtype, device=like.device)


def _split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(B, S, H*D) -> (B, H, S, D)."""
    b, s, hidden = x.shape
    return x.reshape(b, s, num_heads, hidden // num_heads).transpose(1, 2)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, H, S, D) -> (B, S, H*D)."""
    b, h, s, d = x.shape
    return x.transpose(1, 2).reshape(b, s, h * d)


def _repeat_kv(x: torch.Tensor, q_heads: int) -> torch.Tensor:
    """GQA: repeat each KV head for its contiguous group of query heads ([h0, h0, h1, h1, ...])."""
    kv_heads = x.shape[1]
    if kv_heads == q_heads or q_heads % kv_heads != 0:
        return x
    return x.repeat_interleave(q_heads // kv_heads, dim=1)


def _safe_softmax(x: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis where an all -inf row gives zeros (as onnx.reference), not NaN."""
    x_max = x.amax(dim=-1, keepdim=True)
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    safe_max = torch.where(torch.isneginf(x_max), zero, x_max)
    e = torch.exp(x - safe_max)
    s = e.sum(dim=-1, keepdim=True)
    s = torch.where(s == 0, torch.ones((), dtype=x.dtype, device=x.device), s)
    return e / s


def _softcap(x: torch.Tensor, softcap: float) -> torch.Tensor:
    cap = _scalar(softcap, x)
    return torch.tanh(x / cap) * cap


def _bool_to_bias(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """True (attend) -> 0, False -> -inf, selected rather than multiplied (no 0 * inf NaN)."""
    zero = torch.zeros((), dtype=dtype, device=mask.device)
    return torch.where(mask, zero, torch.full((), _NEG_INF, dtype=dtype, device=mask.device))


def _pad_mask(mask: torch.Tensor, kv_len: int) -> torch.Tensor:
    """A mask whose last axis is shorter than the total kv length is padded with False / -inf."""
    pad = kv_len - mask.shape[-1]
    if pad <= 0:
        return mask
    fill = False if mask.dtype == torch.bool else _NEG_INF
    tail = torch.full((*mask.shape[:-1], pad), fill, dtype=mask.dtype, device=mask.device)
    return torch.cat([mask, tail], dim=-1)


def _query_minus_key(q_len: int, kv_len: int, offset, device) -> torch.Tensor:
    """(i + offset) - j for query i and key j: (q, kv) for a scalar offset, (batch, 1, q, kv) per batch."""
    i = torch.arange(q_len, device=device).reshape(q_len, 1)
    j = torch.arange(kv_len, device=device).reshape(1, kv_len)
    if isinstance(offset, torch.Tensor):
        return (i + offset.reshape(-1, 1, 1, 1).to(torch.int64)) - j
    return (i + offset) - j


def _attention_bias(q_len, kv_len, dtype, device, attn_mask, is_causal, offset, nonpad, batch, left, right):
    """The additive bias from attn_mask, is_causal, the sliding window and nonpad_kv_seqlen (onnx.reference order)."""
    if attn_mask is not None:
        attn_mask = _pad_mask(attn_mask, kv_len)
        if attn_mask.dtype == torch.bool:
            attn_mask = _bool_to_bias(attn_mask, dtype)
        bias_dtype = torch.promote_types(dtype, attn_mask.dtype)
    else:
        bias_dtype = dtype
    bias = torch.zeros((q_len, kv_len), dtype=bias_dtype, device=device)
    if attn_mask is not None:
        bias = bias + attn_mask
    if is_causal:
        bias = bias + _bool_to_bias(_query_minus_key(q_len, kv_len, offset, device) >= 0, bias_dtype)
    if left >= 0 or right >= 0:
        diff = _query_minus_key(q_len, kv_len, offset, device)
        allowed = torch.ones_like(diff, dtype=torch.bool)
        if left >= 0:
            allowed &= diff <= left
        if right >= 0:
            allowed &= -diff <= right
        bias = bias + _bool_to_bias(allowed, bias_dtype)
    if nonpad is not None:
        valid = torch.arange(kv_len, device=device) < nonpad.reshape(-1, 1).to(torch.int64)
        bias = bias + _bool_to_bias(valid.reshape(batch, 1, 1, kv_len), bias_dtype)
    return bias


def _to_4d(q, k, v, q_num_heads, kv_num_heads):
    if q.dim() == 4:
        return q, k, v
    if q_num_heads is None or kv_num_heads is None:
        raise ValueError("3D Attention inputs need q_num_heads and kv_num_heads")
    return _split_heads(q, q_num_heads), _split_heads(k, kv_num_heads), _split_heads(v, kv_num_heads)


@op("Attention", 23, 24, 25)
def Attention(
    Q,
    K,
    V,
    attn_mask=None,
    past_key=None,
    past_value=None,
    nonpad_kv_seqlen=None,
    *,
    is_causal=0,
    kv_num_heads=None,
    q_num_heads=None,
    qk_matmul_output_mode=0,
    scale=None,
    softcap=0.0,
    softmax_precision=None,
    left_window_size=-1,
    right_window_size=-1,
):
    """Scaled dot-product attention with GQA, masks, causal/window masking, KV cache and debug QK output."""
    if (past_key is None) != (past_value is None):
        raise ValueError("past_key and past_value must be provided together")
    is_3d = Q.dim() == 3
    q, k, v = _to_4d(Q, K, V, q_num_heads, kv_num_heads)
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[3])
    sqrt_scale = _scalar(math.sqrt(scale), q)

    if past_key is not None:
        k = torch.cat([past_key, k], dim=2)
        v = torch.cat([past_value, v], dim=2)
    present_key, present_value = k, v

    batch, q_heads, q_len = q.shape[:3]
    kv_len = k.shape[2]
    if past_key is not None:
        offset = past_key.shape[2]
    elif nonpad_kv_seqlen is not None:
        offset = nonpad_kv_seqlen.reshape(-1).to(torch.int64) - q_len
    else:
        offset = 0
    bias = _attention_bias(
        q_len, kv_len, q.dtype, q.device, attn_mask, bool(is_causal), offset, nonpad_kv_seqlen, batch,
        left_window_size, right_window_size,
    )

    k = _repeat_kv(k, q_heads)
    v = _repeat_kv(v, q_heads)
    qk = torch.matmul(q * sqrt_scale, (k * sqrt_scale).transpose(-1, -2))
    debug = qk
    if softcap > 0:
        qk = _softcap(qk, softcap)
    if qk_matmul_output_mode == 1:
        debug = qk
    scores = qk + bias
    if qk_matmul_output_mode == 2:
        debug = scores
    if softmax_precision is not None:
        scores = scores.to(to_torch_dtype(softmax_precision))
    probs = _safe_softmax(scores)
    row_all_masked = torch.isneginf(bias.amax(dim=-1, keepdim=True))
    probs = torch.where(row_all_masked, torch.zeros((), dtype=probs.dtype, device=probs.device), probs)
    if qk_matmul_output_mode == 3:
        debug = probs
    probs = probs.to(q.dtype)

    y = torch.matmul(probs, v)
    if is_3d:
        y = _merge_heads(y)
    return y, present_key, present_value, debug.to(q.dtype)


@op("RotaryEmbedding", 23)
def RotaryEmbedding(x, cos_cache, sin_cache, position_ids=None, *, interleaved=0, num_heads=0, rotary_embedding_dim=0):
    """Rotates the first rotary_embedding_dim features of each head by the cached cos/sin of its position."""
    shape = x.shape
    if x.dim() == 4:
        h = x.transpose(1, 2)  # (B, S, H, D)
    else:
        b, s, hidden = shape
        h = x.reshape(b, s, num_heads, hidden // num_heads)
    dim = rotary_embedding_dim or h.shape[3]
    rotate, keep = h[..., :dim], h[..., dim:]
    if position_ids is not None:
        cos_cache = cos_cache[position_ids.to(torch.int64)]
        sin_cache = sin_cache[position_ids.to(torch.int64)]
    if cos_cache.shape[-1] != dim // 2 or sin_cache.shape[-1] != dim // 2:
        raise ValueError(f"cos/sin cache last dim must be rotary_embedding_dim/2 = {dim // 2}")
    cos, sin = cos_cache.unsqueeze(2), sin_cache.unsqueeze(2)  # (B, S, 1, dim/2)
    if interleaved:
        x1, x2 = rotate[..., 0::2], rotate[..., 1::2]
    else:
        x1, x2 = rotate[..., : dim // 2], rotate[..., dim // 2 :]
    real = cos * x1 - sin * x2
    imag = sin * x1 + cos * x2
    if interleaved:
        rotated = torch.stack([real, imag], dim=-1).reshape(rotate.shape)
    else:
        rotated = torch.cat([real, imag], dim=-1)
    out = torch.cat([rotated, keep], dim=-1)
    return out.reshape(shape) if len(shape) == 3 else out.transpose(1, 2)


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _decay_4d(decay: torch.Tensor, kv_heads: int, d_k: int) -> torch.Tensor:
    """decay (B, T, H_kv) or (B, T, H_kv*d_k) -> (B, H_kv, T, 1 or d_k)."""
    b, t, last = decay.shape
    if last == kv_heads:
        return decay.reshape(b, t, kv_heads, 1).transpose(1, 2)
    if last == kv_heads * d_k:
        return _split_heads(decay, kv_heads)
    raise ValueError(f"decay last dim {last} must be kv_num_heads or kv_num_heads*d_k")


@op("LinearAttention", 27)
def LinearAttention(
    query,
    key,
    value,
    past_state=None,
    decay=None,
    beta=None,
    *,
    chunk_size=64,
    kv_num_heads=None,
    q_num_heads=None,
    scale=0.0,
    update_rule="gated_delta",
):
    """Recurrent linear attention (linear / gated / delta / gated_delta), evaluated token by token."""
    if update_rule not in ("linear", "gated", "delta", "gated_delta"):
        raise ValueError(f"unsupported update_rule {update_rule!r}")
    if not q_num_heads or not kv_num_heads or q_num_heads % kv_num_heads:
        raise ValueError("q_num_heads must be a positive multiple of kv_num_heads")
    gating = update_rule in ("gated", "gated_delta")
    delta = update_rule in ("delta", "gated_delta")
    if gating != (decay is not None) or delta != (beta is not None):
        raise ValueError(f"update_rule {update_rule!r} does not match the decay/beta inputs given")

    out_dtype = query.dtype
    work = _compute_dtype(out_dtype)
    b, t, _ = query.shape
    d_k = query.shape[-1] // q_num_heads
    d_v = value.shape[-1] // kv_num_heads
    q4 = _split_heads(query, q_num_heads).to(work)
    k4 = _split_heads(key, kv_num_heads).to(work)
    v4 = _split_heads(value, kv_num_heads).to(work)
    decay4 = _decay_4d(decay, kv_num_heads, d_k).to(work) if decay is not None else None
    beta4 = beta.reshape(b, t, beta.shape[-1], 1).transpose(1, 2).to(work) if beta is not None else None

    if past_state is not None:
        state_dtype = past_state.dtype
        state = past_state.to(work)
    else:
        state_dtype = out_dtype
        state = torch.zeros((b, kv_num_heads, d_k, d_v), dtype=work, device=query.device)
    scale_val = scale if scale else 1.0 / math.sqrt(d_k)
    group = q_num_heads // kv_num_heads

    outputs = []
    for i in range(t):  # the recurrence is sequential in time
        k_t, v_t = k4[:, :, i, :], v4[:, :, i, :]
        if gating:
            state = state * torch.exp(decay4[:, :, i, :]).unsqueeze(-1)
        if delta:
            retrieved = torch.einsum("bhdm,bhd->bhm", state, k_t)
            v_t = beta4[:, :, i, :] * (v_t - retrieved)
        state = state + k_t.unsqueeze(-1) * v_t.unsqueeze(-2)
        read = state.repeat_interleave(group, dim=1) if group > 1 else state
        outputs.append(scale_val * torch.einsum("bhd,bhdm->bhm", q4[:, :, i, :], read))
    out = torch.stack(outputs, dim=2) if outputs else q4.new_zeros((b, q_num_heads, 0, d_v))
    return _merge_heads(out).to(out_dtype), state.to(state_dtype)


@op("CausalConvWithState", 27)
def CausalConvWithState(input, weight, bias=None, past_state=None, *, activation="none"):
    """Depthwise causal conv1d over [past_state, input]; present_state keeps the last k-1 positions."""
    if activation not in ("none", "silu", "swish"):
        raise ValueError(f"unsupported activation {activation!r}")
    batch, channels, _ = input.shape
    k = weight.shape[2]
    if past_state is None:
        past_state = input.new_zeros((batch, channels, k - 1))
    padded = torch.cat([past_state, input], dim=2)
    work = _compute_dtype(input.dtype)
    w_bias = bias.to(work) if bias is not None else None
    out = torch.nn.functional.conv1d(padded.to(work), weight.to(work), w_bias, groups=channels).to(input.dtype)
    if activation in ("silu", "swish"):
        f = out.to(torch.float32) if out.dtype != torch.float64 else out
        out = (f * torch.sigmoid(f)).to(input.dtype)
    present = padded[:, :, padded.shape[2] - (k - 1) :]
    return out, present


@op("TensorScatter", 24)
def TensorScatter(past_cache, update, write_indices=None, *, axis=-2, mode="linear"):
    """Writes ``update`` into a copy of the cache along ``axis`` at each batch's write index (optionally circular)."""
    if mode not in ("linear", "circular"):
        raise ValueError(f"unsupported mode {mode!r}")
    rank = past_cache.dim()
    axis = axis % rank
    if axis == 0:
        raise ValueError("TensorScatter axis must not be the batch axis")
    max_len, seq_len = past_cache.shape[axis], update.shape[axis]
    batch = past_cache.shape[0]
    if write_indices is None:
        starts = torch.zeros(batch, dtype=torch.int64, device=past_cache.device)
    else:
        starts = write_indices.reshape(-1).to(torch.int64)
    pos = starts.reshape(batch, 1) + torch.arange(seq_len, device=past_cache.device)  # (B, S)
    if mode == "circular":
        pos = pos % max_len
    elif seq_len and int(pos.max()) >= max_len:
        raise IndexError("TensorScatter write goes past max_sequence_length in linear mode")
    view = [batch] + [1] * (rank - 1)
    view[axis] = seq_len
    index = pos.reshape(view).expand(update.shape)
    if past_cache.is_floating_point() and past_cache.element_size() == 1:  # float8: no scatter kernel, move bits
        raw = past_cache.view(torch.uint8).clone().scatter_(axis, index, update.view(torch.uint8))
        return raw.view(past_cache.dtype)
    return past_cache.clone().scatter_(axis, index, update)


@op("SwiGLU", 28)
def SwiGLU(a, b, *, alpha=1.0):
    """Y = A * sigmoid(alpha * A) * B (no broadcasting)."""
    if a.shape != b.shape:
        raise ValueError(f"SwiGLU needs equal shapes, got {tuple(a.shape)} and {tuple(b.shape)}")
    gate = torch.sigmoid(a * _scalar(alpha, a))
    return (a * gate) * b


def _flex_softmax_dtype(dtype: torch.dtype, softmax_precision) -> torch.dtype:
    if softmax_precision is not None:
        return to_torch_dtype(softmax_precision)
    return torch.float64 if dtype == torch.float64 else torch.float32


def _run_mod(ctx, graph, x: torch.Tensor) -> torch.Tensor:
    outs = ctx.run_graph(graph, [x])
    if len(outs) != 1:
        raise ValueError("FlexAttention modifier graph must produce exactly one output")
    return outs[0].to(x.dtype)


@op("FlexAttention", 1, domain="ai.onnx.preview")
def FlexAttention(Q, K, V, *, scale=None, score_mod=None, prob_mod=None, softmax_precision=None, ctx=None):
    """softmax(score_mod(Q K^T * scale)) -> prob_mod -> @ V, with GQA; scores in softmax precision."""
    if Q.dim() != 4 or K.dim() != 4 or V.dim() != 4:
        raise ValueError("FlexAttention needs rank-4 Q, K, V")
    if scale is None:
        scale = 1.0 / math.sqrt(Q.shape[3])
    # sqrt(scale) is computed in float32 then cast to the input type
    sqrt_scale = torch.sqrt(torch.tensor(scale, dtype=torch.float32)).to(Q.dtype).to(Q.device)
    k = _repeat_kv(K, Q.shape[1])
    v = _repeat_kv(V, Q.shape[1])
    scores = torch.matmul(Q * sqrt_scale, (k * sqrt_scale).transpose(-1, -2))
    work = _flex_softmax_dtype(Q.dtype, softmax_precision)
    scores = scores.to(work)
    if score_mod is not None:
        scores = _run_mod(ctx, score_mod, scores)
    probs = torch.softmax(scores, dim=-1)
    if prob_mod is not None:
        probs = _run_mod(ctx, prob_mod, probs)
    return torch.matmul(probs, v.to(work)).to(V.dtype)
