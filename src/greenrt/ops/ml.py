"""Traditional ML ops of domain ai.onnx.ml: ArrayFeatureExtractor, Binarizer, LabelEncoder, TreeEnsemble,
Scaler, Normalizer, OneHotEncoder, Imputer, FeatureVectorizer.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import GreenrtError
from .registry import op

ML = "ai.onnx.ml"


def _is_strings(x) -> bool:
    return isinstance(x, np.ndarray) and x.dtype == object


@op("ArrayFeatureExtractor", 1, domain=ML)
def ArrayFeatureExtractor(x, indices):
    """Selects indices along the last axis; a 1-D input gives a [1, k] output."""
    index = indices.reshape(-1)
    if _is_strings(x):
        picked = x[..., index.cpu().numpy()]
    else:
        picked = x.index_select(-1, index.to(x.device))
    shape = (1, index.numel()) if x.ndim == 1 else (*x.shape[:-1], index.numel())
    return picked.reshape(shape)


@op("Binarizer", 1, domain=ML)
def Binarizer(x, *, threshold=0.0):
    return (x > threshold).to(x.dtype)


# ---- LabelEncoder ----------------------------------------------------------------------------------------------


def _lookup_positions(x, keys):
    """(found mask, position in keys) for every element of x, both shaped like x."""
    if _is_strings(x) or _is_strings(keys):
        table = {str(k): i for i, k in enumerate(np.asarray(keys, dtype=object).ravel())}
        pos = np.array([table.get(str(v), -1) for v in np.asarray(x).ravel()], dtype=np.int64).reshape(x.shape)
        return torch.from_numpy(pos >= 0), torch.from_numpy(np.maximum(pos, 0))
    keys = keys.to(x.device, torch.float64 if x.is_floating_point() or keys.is_floating_point() else torch.int64)
    values = x.to(keys.dtype).contiguous()
    index = torch.arange(len(keys), device=x.device)
    nan_keys = torch.isnan(keys) if keys.is_floating_point() else torch.zeros_like(keys, dtype=torch.bool)
    plain_keys, plain_index = keys[~nan_keys], index[~nan_keys]
    found = torch.zeros(values.shape, dtype=torch.bool, device=x.device)
    position = torch.zeros(values.shape, dtype=torch.int64, device=x.device)
    if plain_keys.numel():
        order = torch.argsort(plain_keys, stable=True)  # a repeated key: its last occurrence wins
        sorted_keys = plain_keys[order]
        slot = (torch.searchsorted(sorted_keys, values, right=True) - 1).clamp(min=0)
        found = sorted_keys[slot] == values
        position = plain_index[order[slot]]
    if bool(nan_keys.any()):  # a NaN key matches every NaN input
        is_nan = torch.isnan(values)
        position = torch.where(is_nan, index[nan_keys][-1], position)
        found = found | is_nan
    return found, position


def _encode(x, keys, values, default, device):
    """values[position of x in keys], or default where x is not a key."""
    if len(keys) != len(values):
        raise GreenrtError(f"LabelEncoder: {len(keys)} keys but {len(values)} values")
    found, position = _lookup_positions(x, keys)
    if _is_strings(values):
        picked = np.asarray(values, dtype=object)[position.cpu().numpy()]
        out = np.where(found.cpu().numpy(), picked, default).astype(object)
        return out.reshape(np.shape(x))
    picked = values.to(device)[position.to(device)]
    return torch.where(found.to(device), picked, torch.full((), default, dtype=values.dtype, device=device))


def _strings(values):
    out = np.empty(len(values), dtype=object)
    out[:] = [str(v) for v in values]
    return out


def _pick_label_table(kind, strings, int64s, floats, tensor):
    """The one given keys_* / values_* attribute, as an object array or tensor."""
    if tensor is not None:
        return tensor.reshape(-1) if isinstance(tensor, torch.Tensor) else np.asarray(tensor, dtype=object).ravel()
    if strings:
        return _strings(strings)
    if int64s:
        return torch.tensor(int64s, dtype=torch.int64)
    if floats:
        return torch.tensor(floats, dtype=torch.float32)
    raise GreenrtError(f"LabelEncoder: no {kind} given")


def _default_for(values, default_float, default_int64, default_string, default_tensor):
    if default_tensor is not None:
        return default_tensor.reshape(-1)[0].item() if isinstance(default_tensor, torch.Tensor) \
            else str(np.asarray(default_tensor).ravel()[0])
    if _is_strings(values):
        return default_string
    return default_float if values.is_floating_point() else default_int64


@op("LabelEncoder", 1, domain=ML)
def LabelEncoder_1(x, *, classes_strings=(), default_int64=-1, default_string="_Unused", ctx=None):
    """String -> index in classes_strings, or int64 index -> class string."""
    classes = _strings(classes_strings)
    if _is_strings(x):
        indices = torch.arange(len(classes), dtype=torch.int64)
        return _encode(x, classes, indices, default_int64, ctx.device)
    indices = torch.arange(len(classes), dtype=torch.int64, device=x.device)
    return _encode(x, indices, classes, default_string, ctx.device)


@op("LabelEncoder", 2, domain=ML)
def LabelEncoder_2(x, *, default_float=-0.0, default_int64=-1, default_string="_Unused", keys_floats=None,
                   keys_int64s=None, keys_strings=None, values_floats=None, values_int64s=None,
                   values_strings=None, ctx=None):
    keys = _pick_label_table("keys", keys_strings, keys_int64s, keys_floats, None)
    values = _pick_label_table("values", values_strings, values_int64s, values_floats, None)
    default = _default_for(values, default_float, default_int64, default_string, None)
    return _encode(x, keys, values, default, ctx.device)


@op("LabelEncoder", 4, domain=ML)
def LabelEncoder_4(x, *, default_float=-0.0, default_int64=-1, default_string="_Unused", default_tensor=None,
                   keys_floats=None, keys_int64s=None, keys_strings=None, keys_tensor=None, values_floats=None,
                   values_int64s=None, values_strings=None, values_tensor=None, ctx=None):
    keys = _pick_label_table("keys", keys_strings, keys_int64s, keys_floats, keys_tensor)
    values = _pick_label_table("values", values_strings, values_int64s, values_floats, values_tensor)
    default = _default_for(values, default_float, default_int64, default_string, default_tensor)
    return _encode(x, keys, values, default, ctx.device)


# ---- TreeEnsemble ----------------------------------------------------------------------------------------------

_LEQ, _LT, _GTE, _GT, _EQ, _NEQ, _MEMBER = range(7)


def _member_table(modes, membership_values, device):
    """[num_nodes, max_members] float64 of each BRANCH_MEMBER node's set (NaN padded), in node order."""
    member_nodes = torch.nonzero(modes == _MEMBER).reshape(-1).tolist()
    sets = []
    if member_nodes:
        if membership_values is None:
            raise GreenrtError("TreeEnsemble: set membership nodes need membership_values")
        current = []
        for v in membership_values.reshape(-1).double().tolist():
            if v != v:  # NaN ends a set
                sets.append(current)
                current = []
            else:
                current.append(v)
        if len(sets) < len(member_nodes):
            raise GreenrtError("TreeEnsemble: membership_values must list one set per member node")
    width = max([len(s) for s in sets] + [1])
    table = torch.full((len(modes), width), float("nan"), dtype=torch.float64)
    for node, members in zip(member_nodes, sets):
        table[node, : len(members)] = torch.tensor(members, dtype=torch.float64)
    return table.to(device)


def _branch_condition(mode, value, split, members):
    """Whether each (sample, tree) takes its node's true branch."""
    cond = torch.where(mode == _LEQ, value <= split, torch.zeros_like(value, dtype=torch.bool))
    cond = torch.where(mode == _LT, value < split, cond)
    cond = torch.where(mode == _GTE, value >= split, cond)
    cond = torch.where(mode == _GT, value > split, cond)
    cond = torch.where(mode == _EQ, value == split, cond)
    cond = torch.where(mode == _NEQ, value != split, cond)
    return torch.where(mode == _MEMBER, (value.unsqueeze(-1) == members).any(-1), cond)


def _tree_leaves(x, roots, att, members):
    """Leaf index reached by every sample in every tree: [N, T]."""
    n, t = x.shape[0], roots.numel()
    node = roots.unsqueeze(0).expand(n, t).clone()
    at_leaf = torch.zeros(n, t, dtype=torch.bool, device=x.device)
    rows = torch.arange(n, device=x.device).unsqueeze(1).expand(n, t)
    for _ in range(len(att["modes"]) + 1):
        if bool(at_leaf.all()):
            break
        safe = torch.where(at_leaf, torch.zeros_like(node), node)
        value = x[rows, att["features"][safe]]
        cond = _branch_condition(att["modes"][safe], value, att["splits"][safe], members[safe])
        cond |= torch.isnan(value) & att["missing_true"][safe]
        next_node = torch.where(cond, att["true_ids"][safe], att["false_ids"][safe])
        next_leaf = torch.where(cond, att["true_leafs"][safe], att["false_leafs"][safe])
        node = torch.where(at_leaf, node, next_node)
        at_leaf = at_leaf | next_leaf
    return node


def _aggregate(weights, targets, n_targets, function, dtype):
    """Combines leaf weights [N, T] into [N, n_targets] with SUM/AVERAGE/MIN/MAX (AVERAGE=0, SUM=1, MIN=2, MAX=3)."""
    n, t = weights.shape
    if function in (0, 1):
        out = torch.zeros(n, n_targets, dtype=torch.float64, device=weights.device)
        out.scatter_add_(1, targets, weights)
        return (out / t if function == 0 else out).to(dtype)
    if function in (2, 3):
        info = torch.finfo(dtype)
        start = info.max if function == 2 else info.min
        out = torch.full((n, n_targets), start, dtype=torch.float64, device=weights.device)
        out.scatter_reduce_(1, targets, weights, "amin" if function == 2 else "amax", include_self=True)
        return out.to(dtype)
    raise GreenrtError(f"TreeEnsemble: unknown aggregate_function {function}")


def _post_transform(scores, kind):
    """NONE=0, SOFTMAX=1, LOGISTIC=2, SOFTMAX_ZERO=3, PROBIT=4."""
    if kind == 0:
        return scores
    if kind == 1:
        return torch.softmax(scores, dim=-1)
    if kind == 2:
        return torch.sigmoid(scores)
    if kind == 3:
        shifted = torch.exp(scores - scores.max(-1, keepdim=True).values)
        exp = torch.where(scores == 0, torch.zeros_like(scores), shifted)
        return exp / exp.sum(-1, keepdim=True).clamp(min=torch.finfo(scores.dtype).tiny)
    if kind == 4:
        return torch.erfinv(2 * scores - 1) * (2**0.5)
    raise GreenrtError(f"TreeEnsemble: unknown post_transform {kind}")


@op("TreeEnsemble", 5, domain=ML)
def TreeEnsemble(x, *, nodes_splits, nodes_featureids, nodes_modes, nodes_truenodeids, nodes_falsenodeids,
                 nodes_trueleafs, nodes_falseleafs, leaf_targetids, leaf_weights, tree_roots, n_targets=None,
                 aggregate_function=1, post_transform=0, nodes_hitrates=None,
                 nodes_missing_value_tracks_true=None, membership_values=None):
    """Evaluates all trees for all samples at once, one tree level per step."""
    device = x.device
    features = x.reshape(x.shape[0], -1).double() if x.dim() > 1 else x.reshape(1, -1).double()
    modes = nodes_modes.reshape(-1).to(device, torch.int64)

    def ints(values):
        return torch.tensor(list(values), dtype=torch.int64, device=device)

    missing = nodes_missing_value_tracks_true or [0] * len(modes)
    att = {
        "modes": modes,
        "splits": nodes_splits.reshape(-1).to(device, torch.float64),
        "features": ints(nodes_featureids),
        "true_ids": ints(nodes_truenodeids),
        "false_ids": ints(nodes_falsenodeids),
        "true_leafs": ints(nodes_trueleafs).bool(),
        "false_leafs": ints(nodes_falseleafs).bool(),
        "missing_true": ints(missing).bool(),
    }
    members = _member_table(modes.cpu(), membership_values, device)
    leaves = _tree_leaves(features, ints(tree_roots), att, members)
    weights = leaf_weights.reshape(-1).to(device, torch.float64)[leaves]
    targets = ints(leaf_targetids)[leaves]
    count = n_targets if n_targets is not None else int(targets.max()) + 1
    scores = _aggregate(weights, targets, count, aggregate_function, x.dtype)
    return _post_transform(scores, post_transform)


# ---- simple transforms -----------------------------------------------------------------------------------------


@op("Scaler", 1, domain=ML)
def Scaler(x, *, offset=(0.0,), scale=(1.0,)):
    """(x - offset) * scale, per feature of the last axis (or broadcast from one value); float output."""
    values = x.to(torch.float32)
    off = torch.tensor(list(offset), dtype=torch.float32, device=x.device)
    sc = torch.tensor(list(scale), dtype=torch.float32, device=x.device)
    return (values - off) * sc


@op("Normalizer", 1, domain=ML)
def Normalizer(x, *, norm="MAX"):
    """Row normalization by max |x|, L1 or L2 norm; float output."""
    values = x.to(torch.float32)
    rows = values if values.dim() > 1 else values.unsqueeze(0)
    if norm == "MAX":
        denom = rows.abs().max(dim=-1, keepdim=True).values
    elif norm == "L1":
        denom = rows.abs().sum(dim=-1, keepdim=True)
    elif norm == "L2":
        denom = rows.pow(2).sum(dim=-1, keepdim=True).sqrt()
    else:
        raise GreenrtError(f"Normalizer: unknown norm {norm!r}")
    out = rows / denom.clamp(min=1e-30)
    return out.reshape(values.shape)


@op("OneHotEncoder", 1, domain=ML)
def OneHotEncoder(x, *, cats_int64s=None, cats_strings=None, zeros=1, ctx=None):
    """[..., C] -> [..., C, len(categories)] float one-hot rows; unknown values are all-zero rows if zeros=1."""
    categories = _strings(cats_strings) if cats_strings else torch.tensor(list(cats_int64s or []))
    found, position = _lookup_positions(x, categories)
    if not zeros and not bool(found.all()):
        raise GreenrtError("OneHotEncoder: input value not in the categories (zeros=0)")
    device = ctx.device
    hot = torch.nn.functional.one_hot(position.to(device), len(categories)).to(torch.float32)
    return hot * found.to(device).unsqueeze(-1)


@op("Imputer", 1, domain=ML)
def Imputer(x, *, imputed_value_floats=None, imputed_value_int64s=None, replaced_value_float=0.0,
            replaced_value_int64=0):
    """Replaces the 'missing' marker (NaN if replaced_value_float is NaN) with per-feature imputed values."""
    if x.is_floating_point():
        fill = torch.tensor(list(imputed_value_floats or []), dtype=x.dtype, device=x.device)
        missing = torch.isnan(x) if replaced_value_float != replaced_value_float else x == replaced_value_float
    else:
        fill = torch.tensor(list(imputed_value_int64s or []), dtype=x.dtype, device=x.device)
        missing = x == replaced_value_int64
    if fill.numel() == 0:
        raise GreenrtError("Imputer: no imputed values given")
    return torch.where(missing, fill.expand(x.shape[-1]) if fill.numel() == 1 else fill, x)


@op("FeatureVectorizer", 1, domain=ML)
def FeatureVectorizer(*inputs, inputdimensions=()):
    """Concatenates the inputs' features ([N, d_i] each, cut or zero-padded to inputdimensions) as float."""
    parts = []
    for x, width in zip(inputs, inputdimensions):
        rows = x.reshape(x.shape[0], -1) if x.dim() > 1 else x.reshape(1, -1)
        rows = rows.to(torch.float32)[:, :width]
        if rows.shape[1] < width:
            rows = torch.nn.functional.pad(rows, (0, width - rows.shape[1]))
        parts.append(rows)
    return torch.cat(parts, dim=1)
