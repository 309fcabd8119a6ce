"""Where a pattern must NOT fire: for each rewrite pass, graphs that look like its pattern but are not it (a second
reader of an intermediate, a graph output in the middle, a wrong constant, a non-constant parameter, an
unsupported shape). Each asserts the pass fired nowhere AND the graph still computes what onnxruntime computes on
the original model."""

from collections import Counter

import numpy as np
import onnx_ir as ir
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from greenrt.onnx.importer import load_model
from greenrt.passes import optimize
from greenrt.passes.fold_batchnorm import FoldBatchNorm
from greenrt.passes.fold_constants import FoldConstants
from greenrt.passes.fold_conv_affine import FoldConvAffine
from greenrt.passes.fold_pad_into_conv import FoldPadIntoConv
from greenrt.passes.fuse_attention import FuseAttention
from greenrt.passes.fuse_conv import FuseConvActivation
from greenrt.passes.fuse_gelu import FuseGelu
from greenrt.passes.fuse_hardswish import FuseHardActivations
from greenrt.passes.fuse_layernorm import FuseLayerNorm
from greenrt.passes.fuse_matmul import FuseMatMulBiasActivation
from greenrt.passes.remove_noops import RemoveNoops
from greenrt.passes.simplify_reshape import SimplifyReshape
from greenrt.runtime.executor import Executor

from .test_passes import _init, _model, _scalars, _vi

R = np.random.default_rng(0)

def _randn(*shape, scale=1.0):
    return (R.standard_normal(shape) * scale).astype(np.float32)


def _reference(model, feeds):
    """onnxruntime on the graph as written: its own graph optimizations off (onnxruntime 1.32's LayerNorm fusion
    takes mean((x - mean)^4) for the variance, so optimized it answers the x^4 case below as a LayerNorm)."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"]).run(None, feeds)


def _not_fired(model, passes, feeds, rtol=1e-5):
    """Run ``passes``: each fired nowhere, the graph is as it was, and it still matches onnxruntime."""
    ref = _reference(model, feeds)
    ir_model = load_model(model)
    before = Counter(n.op_type for n in ir_model.graph)
    reports = optimize(ir_model, passes)
    assert [(r.name, r.count, r.details) for r in reports] == [(p.name, 0, []) for p in passes]
    assert Counter(n.op_type for n in ir_model.graph) == before
    outs = Executor.from_model(ir_model).run({k: torch.from_numpy(v) for k, v in feeds.items()})
    assert len(outs) == len(ref)
    for o, r in zip(outs, ref):
        assert o.shape == r.shape
        np.testing.assert_allclose(o.numpy(), r, rtol=rtol, atol=rtol * max(np.abs(r).max(), 1e-6))


# -- fold_batchnorm --------------------------------------------------------------------------------------------
def _conv_bn(extra_nodes=(), outputs=("y",), training=False, params_as_inputs=False):
    c, x_shape = 4, [2, 3, 8, 8]
    bn = (helper.make_node("BatchNormalization", ["h", "g", "b", "m", "v"], ["y", "running_mean", "running_var"],
                           epsilon=1e-3, training_mode=1) if training else
          helper.make_node("BatchNormalization", ["h", "g", "b", "m", "v"], ["y"], epsilon=1e-3))
    nodes = [helper.make_node("Conv", ["x", "W", "B"], ["h"], pads=[1, 1, 1, 1]), bn] + list(extra_nodes)
    params = [_init("g", [c]), _init("b", [c]), _init("m", [c]), _init("v", [c], positive=True)]
    inputs, feeds = [_vi("x", x_shape)], {"x": _randn(*x_shape)}
    if params_as_inputs:
        inputs += [_vi(p.name, [c]) for p in params]
        feeds |= {p.name: numpy_helper.to_array(p).copy() for p in params}
        params = []
    shapes = {"y": [2, c, 8, 8], "h": [2, c, 8, 8], "r": [2, c, 8, 8]}
    model = _model(nodes, inputs, [_vi(o, shapes[o]) for o in outputs],
                   [_init("W", [c, 3, 3, 3]), _init("B", [c])] + params)
    return model, feeds


@pytest.mark.parametrize("case", ["conv output read by another node", "conv output is a graph output",
                                  "params are graph inputs", "training mode"])
def test_fold_batchnorm_does_not_fire(case):
    if case == "conv output read by another node":
        model, feeds = _conv_bn([helper.make_node("Relu", ["h"], ["r"])], outputs=("y", "r"))
    elif case == "conv output is a graph output":
        model, feeds = _conv_bn(outputs=("y", "h"))
    elif case == "params are graph inputs":
        model, feeds = _conv_bn(params_as_inputs=True)
    else:  # normalizes with the batch's statistics, not the stored ones (running stats computed, not read)
        model, feeds = _conv_bn(training=True)
    _not_fired(model, [FoldBatchNorm()], feeds, rtol=1e-4)


# -- fold_conv_affine ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["spatial scale", "per-batch scale", "runtime shift", "conv output read twice"])
def test_fold_conv_affine_does_not_fire(case):
    x_shape, out_shape = [2, 3, 8, 8], [2, 4, 8, 8]
    nodes = [helper.make_node("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1])]
    inputs, outputs, inits = [_vi("x", x_shape)], [_vi("y", out_shape)], [_init("W", [4, 3, 3, 3])]
    feeds = {"x": _randn(*x_shape)}
    if case == "spatial scale":  # varies over H, W: not a per-channel affine
        nodes.append(helper.make_node("Mul", ["c", "s"], ["y"]))
        inits.append(_init("s", [1, 1, 8, 8]))
    elif case == "per-batch scale":
        nodes.append(helper.make_node("Mul", ["s", "c"], ["y"]))
        inits.append(_init("s", [2, 1, 1, 1]))
    elif case == "runtime shift":
        nodes.append(helper.make_node("Add", ["c", "t"], ["y"]))
        inputs.append(_vi("t", [1, 4, 1, 1]))
        feeds["t"] = _randn(1, 4, 1, 1)
    else:  # the Mul is per channel, but the conv output also goes out as it is
        nodes.append(helper.make_node("Mul", ["c", "s"], ["y"]))
        inits.append(_init("s", [4, 1, 1]))
        outputs.append(_vi("c", out_shape))
    _not_fired(_model(nodes, inputs, outputs, inits), [FoldConvAffine()], feeds)


def test_fold_conv_affine_size_one_constant_of_higher_rank_does_not_fire():
    """A [1,1,1,1,1] scale is one value, but Mul broadcasts the 4-D conv output to 5-D: folding it would lose a
    dim."""
    nodes = [helper.make_node("Conv", ["x", "W"], ["c"]), helper.make_node("Mul", ["c", "s"], ["y"])]
    model = _model(nodes, [_vi("x", [2, 3, 6, 6])], [_vi("y", [1, 2, 4, 4, 4])],
                   [_init("W", [4, 3, 3, 3]), _init("s", [1, 1, 1, 1, 1])])
    _not_fired(model, [FoldConvAffine()], {"x": _randn(2, 3, 6, 6)})


def test_fold_conv_affine_stops_at_a_link_of_unknown_rank():
    """Conv * s + t where shape inference left the Mul's output without a shape: the Mul folds, the Add (no telling
    whether t is per channel of an unknown rank) stays, and nothing raises."""
    nodes = [helper.make_node("Conv", ["x", "W"], ["c"]), helper.make_node("Mul", ["c", "s"], ["m"]),
             helper.make_node("Add", ["m", "t"], ["y"])]
    model = _model(nodes, [_vi("x", [2, 3, 6, 6])], [_vi("y", [2, 4, 4, 4])],
                   [_init("W", [4, 3, 3, 3]), _init("s", [4, 1, 1]), _init("t", [4, 1, 1])])
    feeds = {"x": _randn(2, 3, 6, 6)}
    ir_model = load_model(model)
    (mul,) = [n for n in ir_model.graph if n.op_type == "Mul"]
    mul.outputs[0].shape = None
    (report,) = optimize(ir_model, [FoldConvAffine()])
    assert report.count == 1 and [n.op_type for n in ir_model.graph] == ["Conv", "Add"]
    (y,) = Executor.from_model(ir_model).run({"x": torch.from_numpy(feeds["x"])})
    np.testing.assert_allclose(y.numpy(), _reference(model, feeds)[0], rtol=1e-5, atol=1e-5)


# -- fold_pad_into_conv ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["non-zero value", "channel pads", "reflect", "pad output read twice",
                                  "conv auto_pad"])
def test_fold_pad_into_conv_does_not_fire(case):
    x_shape = [1, 3, 9, 9]
    pads = [0, 0, 1, 1, 0, 0, 1, 1]
    pad_inputs, pad_attrs, conv_attrs, outputs = ["x", "pads"], {"mode": "constant"}, {}, ["y"]
    inits = [_init("W", [4, 3, 3, 3])]
    extra, out_shapes = [], {"y": [1, 4, 9, 9], "p": [1, 3, 11, 11], "r": [1, 3, 11, 11]}
    if case == "non-zero value":
        pad_inputs.append("value")
        inits += _scalars(value=1.5)
    elif case == "channel pads":  # pads C by one on each side: the conv would see 5 channels
        pads = [0, 1, 1, 1, 0, 1, 1, 1]
        inits = [_init("W", [4, 5, 3, 3])]
    elif case == "reflect":
        pad_attrs = {"mode": "reflect"}
    elif case == "pad output read twice":
        extra = [helper.make_node("Relu", ["p"], ["r"])]
        outputs.append("r")
    else:
        conv_attrs = {"auto_pad": "SAME_UPPER"}
        out_shapes["y"] = [1, 4, 11, 11]
    inits.append(numpy_helper.from_array(np.array(pads, np.int64), "pads"))
    nodes = [helper.make_node("Pad", pad_inputs, ["p"], **pad_attrs),
             helper.make_node("Conv", ["p", "W"], ["y"], **conv_attrs)] + extra
    model = _model(nodes, [_vi("x", x_shape)], [_vi(o, out_shapes[o]) for o in outputs], inits)
    _not_fired(model, [FoldPadIntoConv()], {"x": _randn(*x_shape)})


# -- fuse_conv ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["conv output is a graph output", "weight is a graph input",
                                  "Clip bounds at run time", "broadcast residual", "Add of a constant"])
def test_fuse_conv_does_not_fire(case):
    x_shape = [2, 3, 8, 8]
    conv = helper.make_node("Conv", ["x", "W", "B"], ["h"], pads=[1, 1, 1, 1])
    inputs, outputs = [_vi("x", x_shape)], [_vi("y", x_shape)]
    inits, feeds = [_init("W", [3, 3, 3, 3]), _init("B", [3])], {"x": _randn(*x_shape)}
    tail = [helper.make_node("Relu", ["h"], ["y"])]
    if case == "conv output is a graph output":
        outputs.append(_vi("h", x_shape))
    elif case == "weight is a graph input":
        inits = inits[1:]
        inputs.append(_vi("W", [3, 3, 3, 3]))
        feeds["W"] = _randn(3, 3, 3, 3)
    elif case == "Clip bounds at run time":
        tail = [helper.make_node("Clip", ["h", "lo", "hi"], ["y"])]
        inputs += [_vi("lo", []), _vi("hi", [])]
        feeds |= {"lo": np.array(-0.5, np.float32), "hi": np.array(0.75, np.float32)}
    elif case == "broadcast residual":  # z is [2, 3, 1, 1]: not the FusedConv epilogue's same-shaped tensor
        tail = [helper.make_node("Add", ["h", "z"], ["r"]), helper.make_node("Relu", ["r"], ["y"])]
        inputs.append(_vi("z", [2, 3, 1, 1]))
        feeds["z"] = _randn(2, 3, 1, 1)
    else:
        tail = [helper.make_node("Add", ["h", "k"], ["y"])]
        inits.append(_init("k", [1, 3, 8, 8]))
    _not_fired(_model([conv] + tail, inputs, outputs, inits), [FuseConvActivation()], feeds)


# -- fuse_matmul -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["bias at run time", "row bias", "batched weight", "Gemm transA",
                                  "MatMul output is a graph output"])
def test_fuse_matmul_does_not_fire(case):
    inputs, outputs, feeds = [_vi("x", [4, 8])], [_vi("y", [4, 16])], {"x": _randn(4, 8)}
    nodes = [helper.make_node("MatMul", ["x", "W"], ["m"]), helper.make_node("Add", ["m", "b"], ["y"])]
    inits = [_init("W", [8, 16])]
    if case == "bias at run time":
        inputs.append(_vi("b", [16]))
        feeds["b"] = _randn(16)
    elif case == "row bias":  # one value per row, not per column
        inits.append(_init("b", [4, 1]))
    elif case == "batched weight":
        inits = [_init("W", [2, 8, 16]), _init("b", [16])]
        outputs = [_vi("y", [2, 4, 16])]
    elif case == "Gemm transA":
        nodes = [helper.make_node("Gemm", ["x", "W", "b"], ["y"], transA=1)]
        inputs, feeds = [_vi("x", [8, 4])], {"x": _randn(8, 4)}
        inits.append(_init("b", [16]))
    else:
        nodes = [helper.make_node("MatMul", ["x", "W"], ["m"]), helper.make_node("Relu", ["m"], ["y"])]
        outputs.append(_vi("m", [4, 16]))
    _not_fired(_model(nodes, inputs, outputs, inits), [FuseMatMulBiasActivation()], feeds)


# -- fuse_gelu ---------------------------------------------------------------------------------------------------
def _gelu(half=0.5, sqrt2=2 ** 0.5, one=1.0, scaled_out=False, domain=""):
    """x * 0.5 * (1 + erf(x / sqrt(2))) with the constants given; ``scaled_out``: x / sqrt(2) is an output too;
    ``domain``: the Erf's."""
    nodes = [helper.make_node("Div", ["x", "sqrt2"], ["d"]),
             helper.make_node("Erf", ["d"], ["e"], domain=domain),
             helper.make_node("Add", ["e", "one"], ["e1"]),
             helper.make_node("Mul", ["x", "e1"], ["p"]),
             helper.make_node("Mul", ["p", "half"], ["y"])]
    outputs = [_vi("y", [4, 16])] + ([_vi("d", [4, 16])] if scaled_out else [])
    graph = helper.make_graph(nodes, "g", [_vi("x", [4, 16])], outputs, _scalars(half=half, sqrt2=sqrt2, one=one))
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    return helper.make_model(graph, opset_imports=opsets, ir_version=8)


@pytest.mark.parametrize("kwargs", [{"half": 0.4}, {"sqrt2": 2.0}, {"one": 2.0}, {"scaled_out": True}],
                         ids=["0.4 for 0.5", "2 for sqrt(2)", "2 + erf", "x/sqrt(2) is a graph output"])
def test_fuse_gelu_does_not_fire(kwargs):
    _not_fired(_gelu(**kwargs), [FuseGelu()], {"x": _randn(4, 16, scale=2)})


def test_fuse_gelu_ignores_an_erf_of_another_domain():
    """No runtime knows 'custom.Erf', so only the count is checked."""
    model = ir.serde.deserialize_model(_gelu(domain="custom"))
    (report,) = optimize(model, [FuseGelu()])
    assert report.count == 0 and "greenrt" not in model.opset_imports


# -- fuse_hardswish ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["Clip to 5", "x + 2", "/ 7", "Clip output read twice", "HardSigmoid(0.2, 0.5)"])
def test_fuse_hardswish_does_not_fire(case):
    three, hi, six = 3.0, 6.0, 6.0
    outputs = [_vi("y", [4, 16])]
    if case == "Clip to 5":
        hi = 5.0
    elif case == "x + 2":
        three = 2.0
    elif case == "/ 7":
        six = 7.0
    elif case == "Clip output read twice":
        outputs.append(_vi("r6", [4, 16]))
    nodes = [helper.make_node("Add", ["x", "three"], ["h3"]),
             helper.make_node("Clip", ["h3", "zero", "hi"], ["r6"]),
             helper.make_node("Mul", ["x", "r6"], ["m"]),
             helper.make_node("Div", ["m", "six"], ["y"])]
    if case == "HardSigmoid(0.2, 0.5)":  # x * HardSigmoid(x) with ONNX's default slope is no HardSwish
        nodes = [helper.make_node("HardSigmoid", ["x"], ["hs"]), helper.make_node("Mul", ["x", "hs"], ["y"])]
    model = _model(nodes, [_vi("x", [4, 16])], outputs, _scalars(three=three, zero=0.0, hi=hi, six=six))
    _not_fired(model, [FuseHardActivations()], {"x": _randn(4, 16, scale=4)})


# -- fuse_layernorm ----------------------------------------------------------------------------------------------
def _layernorm(shape=(2, 5, 16), axes=(-1,), eps=None, two=2.0, keepdims=1, extra_outputs=()):
    """(x - mean(x)) / sqrt(mean((x - mean)^2) + eps) * gamma + beta, ReduceMean with the axes attribute."""
    mean = lambda i, o: helper.make_node("ReduceMean", [i], [o], axes=list(axes), keepdims=keepdims)  # noqa: E731
    nodes = [mean("x", "mu"), helper.make_node("Sub", ["x", "mu"], ["d"]),
             helper.make_node("Pow", ["d", "two"], ["sq"]), mean("sq", "var"),
             helper.make_node("Add", ["var", "eps"], ["ve"]), helper.make_node("Sqrt", ["ve"], ["sd"]),
             helper.make_node("Div", ["d", "sd"], ["n"]), helper.make_node("Mul", ["n", "gamma"], ["gn"]),
             helper.make_node("Add", ["gn", "beta"], ["y"])]
    eps = numpy_helper.from_array(np.float32(1e-5) if eps is None else eps, "eps")
    w = shape[-1]
    inits = _scalars(two=two) + [eps, _init("gamma", [w]), _init("beta", [w])]
    reduced = list(shape[:-1]) + [1]
    outputs = [_vi("y", list(shape))] + [_vi(o, reduced) for o in extra_outputs]
    return _model(nodes, [_vi("x", list(shape))], outputs, inits)


@pytest.mark.parametrize("kwargs", [
    {"eps": np.full(16, 1e-5, np.float32)},
    {"two": 4.0},
    {"axes": (1,)},
    {"shape": (8, 8), "keepdims": 0},
    {"extra_outputs": ("mu",)},
    {"extra_outputs": ("ve",)},
], ids=["epsilon not scalar", "x^4 for x^2", "not the last axis", "keepdims=0", "mean is a graph output",
        "var + eps is a graph output"])
def test_fuse_layernorm_does_not_fire(kwargs):
    shape = kwargs.get("shape", (2, 5, 16))
    _not_fired(_layernorm(**kwargs), [FuseLayerNorm()], {"x": _randn(*shape, scale=3) + 1}, rtol=1e-4)


# -- fuse_attention ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["mask widens the batch", "mask of rank 5", "softmax not on the last axis",
                                  "per-head scale", "probabilities are a graph output", "rank-2 q"])
def test_fuse_attention_does_not_fire(case):
    b, h, s, d = 2, 3, 5, 8
    q_shape, mask_shape, axis = [b, h, s, d], [b, 1, 1, s], -1
    out_shape = [b, h, s, d]
    scale_init = numpy_helper.from_array(np.array(d ** 0.5, np.float32), "scale")
    extra_out = []
    if case == "mask widens the batch":  # q/k/v of batch 1, mask of batch 2: the scores become batch 2
        q_shape = [1, h, s, d]
    elif case == "mask of rank 5":
        mask_shape, out_shape = [2, 1, 1, 1, s], [2, b, h, s, d]
    elif case == "softmax not on the last axis":
        axis = 2
    elif case == "per-head scale":
        scale_init = numpy_helper.from_array(np.full((1, h, 1, 1), d ** 0.5, np.float32), "scale")
    elif case == "probabilities are a graph output":
        extra_out = [_vi("p", [b, h, s, s])]
    else:
        q_shape, mask_shape, out_shape = [s, d], [1, s], [s, d]
    perm = list(range(len(q_shape) - 2)) + [len(q_shape) - 1, len(q_shape) - 2]
    nodes = [helper.make_node("Transpose", ["k"], ["kt"], perm=perm),
             helper.make_node("MatMul", ["q", "kt"], ["qk"]),
             helper.make_node("Div", ["qk", "scale"], ["qks"]),
             helper.make_node("Add", ["qks", "mask"], ["qkm"]),
             helper.make_node("Softmax", ["qkm"], ["p"], axis=axis),
             helper.make_node("MatMul", ["p", "v"], ["y"])]
    ins = [_vi(n, q_shape) for n in "qkv"] + [_vi("mask", mask_shape)]
    model = _model(nodes, ins, [_vi("y", out_shape)] + extra_out, [scale_init])
    mask = np.where(R.random(mask_shape) < 0.3, -1e4, 0.0).astype(np.float32)
    feeds = {n: _randn(*q_shape) for n in "qkv"} | {"mask": mask}
    _not_fired(model, [FuseAttention()], feeds)


# -- remove_noops ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["Dropout in training mode", "Dropout mask read", "Cast to another type",
                                  "Identity from input to output"])
def test_remove_noops_does_not_fire(case):
    outputs, inits = [_vi("y", [2, 3])], []
    if case == "Dropout in training mode":  # ratio 0: deterministic, but the node is no no-op by its inputs
        nodes = [helper.make_node("Dropout", ["x", "ratio", "train"], ["d"]), helper.make_node("Relu", ["d"], ["y"])]
        inits = [numpy_helper.from_array(np.array(0.0, np.float32), "ratio"),
                 numpy_helper.from_array(np.array(True), "train")]
    elif case == "Dropout mask read":
        nodes = [helper.make_node("Dropout", ["x"], ["d", "mask"]), helper.make_node("Relu", ["d"], ["y"])]
        outputs.append(helper.make_tensor_value_info("mask", TensorProto.BOOL, [2, 3]))
    elif case == "Cast to another type":
        nodes = [helper.make_node("Cast", ["x"], ["c"], to=TensorProto.DOUBLE), helper.make_node("Relu", ["c"], ["y"])]
        outputs = [helper.make_tensor_value_info("y", TensorProto.DOUBLE, [2, 3])]
    else:  # removing it would make the graph input and the graph output one value
        nodes = [helper.make_node("Identity", ["x"], ["y"])]
    _not_fired(_model(nodes, [_vi("x", [2, 3])], outputs, inits), [RemoveNoops()], {"x": _randn(2, 3)})


# -- simplify_reshape --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["two computed dims", "allowzero"])
def test_simplify_reshape_does_not_fire(case):
    """Reshape(x, Concat(Shape(w)[0], Shape(w)[1], [4])): w's dims are not known to equal x's, and two computed
    dims cannot both become -1. With allowzero=1 a 0 would mean a zero-sized dim, not 'copy'."""
    ax, idx = numpy_helper.from_array(np.array([0], np.int64), "ax"), []
    nodes = []
    for i in (0, 1):
        idx.append(numpy_helper.from_array(np.array(i, np.int64), f"i{i}"))
        nodes += [helper.make_node("Shape", ["w"], [f"s{i}"]), helper.make_node("Gather", [f"s{i}", f"i{i}"], [f"g{i}"]),
                  helper.make_node("Unsqueeze", [f"g{i}", "ax"], [f"u{i}"])]
    parts = ["u0", "u1", "four"] if case == "two computed dims" else ["x0", "u1", "four"]
    attrs = {"allowzero": 1} if case == "allowzero" else {}
    nodes += [helper.make_node("Concat", parts, ["shape"], axis=0),
              helper.make_node("Reshape", ["x", "shape"], ["y"], **attrs)]
    inits = [ax, *idx, numpy_helper.from_array(np.array([4], np.int64), "four"),
             numpy_helper.from_array(np.array([3], np.int64), "x0")]
    model = _model(nodes, [_vi("x", ["B", 6, 4]), _vi("w", ["P", "Q"])], [_vi("y", [None, None, 4])], inits)
    feeds = {"x": _randn(3, 6, 4), "w": _randn(3, 6)}
    _not_fired(model, [SimplifyReshape()], feeds)


# -- fold_constants ----------------------------------------------------------------------------------------------
def test_fold_constants_does_not_fire_on_run_time_values():
    """An op with one run-time input, and Shape of a dynamic dim, stay; a random op on constants stays too."""
    nodes = [helper.make_node("Add", ["k", "x"], ["a"]), helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Cast", ["s"], ["sf"], to=TensorProto.FLOAT),
             helper.make_node("ReduceSum", ["sf"], ["n"], keepdims=0), helper.make_node("Mul", ["a", "n"], ["y"]),
             helper.make_node("RandomUniformLike", ["k"], ["u"], low=1.0, high=1.0)]
    model = _model(nodes, [_vi("x", ["N", 4])], [_vi("y", ["N", 4]), _vi("u", [4])], [_init("k", [4])])
    _not_fired(model, [FoldConstants()], {"x": _randn(3, 4)})
