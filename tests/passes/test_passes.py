"""Each graph pass on a hand-built graph: the output still matches onnxruntime AND the rewrite fired."""

from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from greenrt.onnx.importer import load_model
from greenrt.passes import optimize
from greenrt.passes.dead_code import EliminateDeadCode
from greenrt.passes.fold_batchnorm import FoldBatchNorm
from greenrt.passes.fold_constants import FoldConstants
from greenrt.passes.fuse_attention import FuseAttention
from greenrt.passes.fuse_conv import FuseConvActivation
from greenrt.passes.fuse_gelu import FuseGelu
from greenrt.passes.fuse_hardswish import FuseHardActivations
from greenrt.passes.fuse_layernorm import FuseLayerNorm
from greenrt.passes.fuse_matmul import FuseMatMulBiasActivation
from greenrt.passes.gather_to_slice import GatherToSlice
from greenrt.passes.remove_noops import RemoveNoops
from greenrt.runtime.executor import Executor

R = np.random.default_rng(0)


def _init(name, shape, positive=False):
    a = R.standard_normal(shape).astype(np.float32)
    return numpy_helper.from_array(np.abs(a) + 0.5 if positive else a, name)


def _model(nodes, inputs, outputs, inits, opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _vi(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _check(model, passes, feeds, expect_ops, rtol=1e-5):
    """Run passes; assert the fused/removed ops and numerics vs onnxruntime on the original model."""
    ref = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    ir_model = load_model(model)
    reports = optimize(ir_model, passes)
    ops = Counter(n.op_type for n in ir_model.graph)
    for op_type, count in expect_ops.items():
        assert ops[op_type] == count, f"{op_type}: {ops[op_type]} != {count}; graph has {dict(ops)}"
    ex = Executor.from_model(ir_model)
    outs = ex.run({k: torch.from_numpy(v) for k, v in feeds.items()})
    for o, r in zip(outs, ref):
        np.testing.assert_allclose(o.numpy(), r, rtol=rtol, atol=rtol * np.abs(r).max())
    return reports


def test_remove_noops_identity_dropout_cast():
    nodes = [
        helper.make_node("Identity", ["x"], ["a"]),
        helper.make_node("Dropout", ["a", "ratio"], ["b"]),
        helper.make_node("Cast", ["b"], ["c"], to=TensorProto.FLOAT),
        helper.make_node("Relu", ["c"], ["y"]),
    ]
    ratio = numpy_helper.from_array(np.array(0.3, np.float32), "ratio")
    model = _model(nodes, [_vi("x", [2, 3])], [_vi("y", [2, 3])], [ratio])
    reports = _check(model, [RemoveNoops()], {"x": R.standard_normal((2, 3)).astype(np.float32)},
                     {"Identity": 0, "Dropout": 0, "Cast": 0, "Relu": 1})
    assert reports[0].count == 3


def test_fold_constants_including_shape_subgraph():
    # y = Reshape(x, Concat(Shape(x)[0:1], [-1])) with a static x shape: the shape chain folds away
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Slice", ["s", "zero", "one"], ["s0"]),
        helper.make_node("Concat", ["s0", "minus1"], ["shape"], axis=0),
        helper.make_node("Reshape", ["x", "shape"], ["r"]),
        helper.make_node("Add", ["k1", "k2"], ["k"]),
        helper.make_node("Mul", ["r", "k"], ["y"]),
    ]
    inits = [numpy_helper.from_array(np.array(v, np.int64), n) for n, v in
             (("zero", [0]), ("one", [1]), ("minus1", [-1]))] + [_init("k1", [12]), _init("k2", [12])]
    model = _model(nodes, [_vi("x", [2, 3, 4])], [_vi("y", [2, 12])], inits)
    reports = _check(model, [FoldConstants(), EliminateDeadCode()],
                     {"x": R.standard_normal((2, 3, 4)).astype(np.float32)},
                     {"Shape": 0, "Slice": 0, "Concat": 0, "Add": 0, "Reshape": 1, "Mul": 1})
    assert reports[0].count == 4


@pytest.mark.parametrize("op_type", ["Conv", "ConvTranspose", "Gemm"])
def test_fold_batchnorm(op_type):
    c = 4
    if op_type == "Gemm":
        x_shape, w = [3, 6], _init("W", [c, 6])
        node = helper.make_node("Gemm", ["x", "W", "B"], ["h"], transB=1, alpha=0.7, beta=1.3)
        bn_in = [3, c]
    elif op_type == "Conv":
        x_shape, w = [2, 3, 8, 8], _init("W", [c, 3, 3, 3])
        node = helper.make_node("Conv", ["x", "W", "B"], ["h"], pads=[1, 1, 1, 1])
        bn_in = [2, c, 8, 8]
    else:
        x_shape, w = [2, 4, 5, 5], _init("W", [4, c // 2, 3, 3])
        node = helper.make_node("ConvTranspose", ["x", "W", "B"], ["h"], group=2, strides=[2, 2])
        bn_in = [2, c, 11, 11]
    nodes = [node, helper.make_node("BatchNormalization", ["h", "g", "b", "m", "v"], ["y"], epsilon=1e-3)]
    inits = [w, _init("B", [c]), _init("g", [c]), _init("b", [c]), _init("m", [c]), _init("v", [c], positive=True)]
    model = _model(nodes, [_vi("x", x_shape)], [_vi("y", bn_in)], inits)
    reports = _check(model, [FoldBatchNorm()], {"x": R.standard_normal(x_shape).astype(np.float32)},
                     {"BatchNormalization": 0, op_type: 1}, rtol=1e-4)
    assert reports[0].count == 1


ACTS = {
    "Relu": (helper.make_node("Relu", ["h"], ["y"]), []),
    "Clip": (helper.make_node("Clip", ["h", "lo", "hi"], ["y"]),
             [numpy_helper.from_array(np.array(0, np.float32), "lo"), numpy_helper.from_array(np.array(6, np.float32), "hi")]),
    "LeakyRelu": (helper.make_node("LeakyRelu", ["h"], ["y"], alpha=0.2), []),
    "Sigmoid": (helper.make_node("Sigmoid", ["h"], ["y"]), []),
    "HardSigmoid": (helper.make_node("HardSigmoid", ["h"], ["y"], alpha=0.3, beta=0.4), []),
    "HardSwish": (helper.make_node("HardSwish", ["h"], ["y"]), []),
    "Tanh": (helper.make_node("Tanh", ["h"], ["y"]), []),
}


@pytest.mark.parametrize("act", list(ACTS) + ["SiLU", "residual+Relu"])
def test_fuse_conv_bias_activation(act, monkeypatch):
    """Fused and checked against onnxruntime; on CPU the fused conv runs as one oneDNN call with post-ops (a spy
    checks it was taken, since a failing fused call falls back silently) except HardSigmoid(0.3, 0.4)."""
    from greenrt.ops import fused

    taken = []
    original = fused._onednn_conv
    monkeypatch.setattr(fused, "_onednn_conv", lambda *a: taken.append(original(*a)) or taken[-1])
    _fuse_conv_case(act)
    assert taken, "FusedConv never ran"
    assert all(t is not None for t in taken) == (act != "HardSigmoid"), f"oneDNN path taken: {taken}"
    assert fused._ONEDNN["ok"]


def _fuse_conv_case(act):
    x_shape = [2, 3, 8, 8]
    conv = helper.make_node("Conv", ["x", "W", "B"], ["h"], pads=[1, 1, 1, 1])
    inits = [_init("W", [3, 3, 3, 3]), _init("B", [3])]
    if act == "SiLU":
        tail = [helper.make_node("Sigmoid", ["h"], ["s"]), helper.make_node("Mul", ["h", "s"], ["y"])]
    elif act == "residual+Relu":
        tail = [helper.make_node("Add", ["h", "x"], ["r"]), helper.make_node("Relu", ["r"], ["y"])]
    else:
        node, extra = ACTS[act]
        tail, inits = [node], inits + extra
    model = _model([conv] + tail, [_vi("x", x_shape)], [_vi("y", x_shape)], inits)
    _check(model, [FuseConvActivation()], {"x": R.standard_normal(x_shape).astype(np.float32)},
           {"FusedConv": 1, "Conv": 0, "Relu": 0, "Sigmoid": 0, "Add": 0}, rtol=1e-5)


def _scalars(**values):
    return [numpy_helper.from_array(np.array(v, np.float32), n) for n, v in values.items()]


@pytest.mark.parametrize("opset", [12, 17])
def test_fuse_decomposed_hardswish_then_into_the_conv(opset):
    """Paddle's x * Clip(x + 3, 0, 6) / 6 after a Conv: HardSwish (greenrt's below opset 14), then FusedConv."""
    x_shape = [2, 3, 8, 8]
    nodes = [helper.make_node("Conv", ["x", "W", "B"], ["h"], pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["h", "three"], ["h3"]),
             helper.make_node("Clip", ["h3", "zero", "six"], ["r6"]),
             helper.make_node("Mul", ["h", "r6"], ["m"]),
             helper.make_node("Div", ["m", "six"], ["y"])]
    inits = [_init("W", [3, 3, 3, 3]), _init("B", [3])] + _scalars(three=3.0, zero=0.0, six=6.0)
    model = _model(nodes, [_vi("x", x_shape)], [_vi("y", x_shape)], inits, opset=opset)
    x = (R.standard_normal(x_shape) * 3).astype(np.float32)  # both sides of -3 and 3
    reports = _check(model, [FuseHardActivations()], {"x": x},
                     {"HardSwish": 1, "Clip": 0, "Add": 0, "Mul": 0, "Div": 0, "Conv": 1})
    assert reports[0].count == 1
    ir_model = load_model(model)
    optimize(ir_model, [FuseHardActivations()])
    (hs,) = [n for n in ir_model.graph if n.op_type == "HardSwish"]
    assert hs.domain == ("" if opset >= 14 else "greenrt")
    _check(model, [FuseHardActivations(), FuseConvActivation()], {"x": x}, {"FusedConv": 1, "HardSwish": 0})


def test_fuse_decomposed_hardsigmoid_and_x_times_hardsigmoid():
    """Clip(x + 3, 0, 6) * (1/6) alone is HardSigmoid; x * HardSigmoid(x, 1/6, 0.5) is HardSwish."""
    shape = [4, 16]
    nodes = [helper.make_node("Add", ["three", "x"], ["h3"]),
             helper.make_node("Clip", ["h3", "zero", "six"], ["r6"]),
             helper.make_node("Mul", ["r6", "sixth"], ["gate"]),  # HardSigmoid, feeds a Mul with y, not x
             helper.make_node("Mul", ["gate", "y"], ["a"]),
             helper.make_node("HardSigmoid", ["y"], ["hs"], alpha=1 / 6, beta=0.5),
             helper.make_node("Mul", ["hs", "y"], ["b"]),
             helper.make_node("Add", ["a", "b"], ["out"])]
    inits = _scalars(three=3.0, zero=0.0, six=6.0, sixth=1 / 6)
    model = _model(nodes, [_vi("x", shape), _vi("y", shape)], [_vi("out", shape)], inits, opset=17)
    feeds = {k: (R.standard_normal(shape) * 4).astype(np.float32) for k in ("x", "y")}
    reports = _check(model, [FuseHardActivations()], feeds, {"HardSigmoid": 1, "HardSwish": 1, "Clip": 0, "Mul": 1})
    assert reports[0].count == 2


def test_fuse_matmul_bias_gelu_and_gemm():
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["m"]),
        helper.make_node("Add", ["m", "b"], ["h"]),
        helper.make_node("Div", ["h", "sqrt2"], ["d"]),
        helper.make_node("Erf", ["d"], ["e"]),
        helper.make_node("Add", ["e", "one"], ["e1"]),
        helper.make_node("Mul", ["h", "e1"], ["p"]),
        helper.make_node("Mul", ["p", "half"], ["g"]),
        helper.make_node("Gemm", ["g", "W2", "C2"], ["y"], transB=1, alpha=0.5),
    ]
    scal = [numpy_helper.from_array(np.array(v, np.float32), n) for n, v in
            (("sqrt2", 2 ** 0.5), ("one", 1.0), ("half", 0.5))]
    inits = [_init("W", [8, 16]), _init("b", [16]), _init("W2", [5, 16]), _init("C2", [5])] + scal
    model = _model(nodes, [_vi("x", [4, 8])], [_vi("y", [4, 5])], inits)
    reports = _check(model, [FuseGelu(), FuseMatMulBiasActivation()],
                     {"x": R.standard_normal((4, 8)).astype(np.float32)},
                     {"FusedMatMul": 2, "Erf": 0, "Gemm": 0, "MatMul": 0, "Gelu": 0})
    assert [r.count for r in reports] == [1, 2]


def test_fuse_matmul_stores_the_weight_as_torch_linear_does_unless_shared():
    """A weight read by this MatMul only is stored (N, K) with trans_w=1 (F.linear: cuBLASLt's bias epilogue); a
    weight another node also reads keeps its (K, N) form, no second copy. 3-D activations as transformers have."""
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["m"], name="fc1"),
        helper.make_node("Add", ["m", "b"], ["h"]),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("MatMul", ["r", "W2"], ["m2"], name="fc2"),
        helper.make_node("Add", ["m2", "b2"], ["y"]),
        helper.make_node("MatMul", ["x", "W2"], ["z"], name="tied"),
    ]
    inits = [_init("W", [16, 16]), _init("b", [16]), _init("W2", [16, 16]), _init("b2", [16])]
    model = _model(nodes, [_vi("x", [2, 5, 16])], [_vi("y", [2, 5, 16]), _vi("z", [2, 5, 16])], inits)
    feeds = {"x": R.standard_normal((2, 5, 16)).astype(np.float32)}
    ref = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    ir_model = load_model(model)
    optimize(ir_model, [FuseMatMulBiasActivation(), EliminateDeadCode()])
    fused = {n.name: n for n in ir_model.graph if n.op_type == "FusedMatMul"}
    assert fused["fc1"].attributes["trans_w"].value == 1 and fused["fc2"].attributes["trans_w"].value == 0
    w1 = fused["fc1"].inputs[1].const_value.numpy()
    np.testing.assert_array_equal(w1, numpy_helper.to_array(inits[0]).T)
    assert fused["fc2"].inputs[1].name == "W2"
    outs = Executor.from_model(ir_model).run({k: torch.from_numpy(v) for k, v in feeds.items()})
    for o, r in zip(outs, ref):
        np.testing.assert_allclose(o.numpy(), r, rtol=1e-5, atol=1e-5 * np.abs(r).max())


@pytest.mark.parametrize("known_shape", [True, False])
@pytest.mark.parametrize("index,axis", [(0, 0), (2, 0), (-1, 0), (1, 2), (-2, -1)])
def test_gather_of_a_constant_scalar_becomes_a_view(index, axis, known_shape):
    """q, k, v = proj[0], proj[1], proj[2] as torch's MultiheadAttention exports them: Slice + Squeeze (views), no
    Gather left; negative indices and axes included, and where shape inference lost the data's rank (ViT's export)."""
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Gather", ["r", "i"], ["g"], axis=axis),
             helper.make_node("Mul", ["g", "g"], ["y"])]
    i = numpy_helper.from_array(np.array(index, np.int64), "i")
    shape = [3, 2, 4, 5]
    out_shape = shape[:axis % 4] + shape[axis % 4 + 1:]
    model = _model(nodes, [_vi("x", shape)], [_vi("y", out_shape)], [i])
    if not known_shape:  # the Relu's output rank unknown to greenrt, as after ViT's Squeeze of a dynamic shape
        del model.graph.input[0].type.tensor_type.shape.dim[:]
        model.graph.input[0].type.tensor_type.ClearField("shape")
    reports = _check(model, [GatherToSlice()], {"x": R.standard_normal(shape).astype(np.float32)},
                     {"Gather": 0, "Slice": 1, "Squeeze": 1}, rtol=0)
    assert reports[0].count == 1


def test_gather_to_slice_leaves_index_vectors_shape_values_and_old_opsets():
    nodes = [helper.make_node("Gather", ["x", "iv"], ["a"], axis=0),  # a vector of indices: a real gather
             helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "i"], ["n"]),  # shape math: simplify_reshape reads it
             helper.make_node("Cast", ["n"], ["nf"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["a", "nf"], ["y"])]
    inits = [numpy_helper.from_array(np.array([2, 0], np.int64), "iv"),
             numpy_helper.from_array(np.array(1, np.int64), "i")]
    model = _model(nodes, [_vi("x", [3, 4])], [_vi("y", [2, 4])], inits)
    reports = _check(model, [GatherToSlice()], {"x": R.standard_normal((3, 4)).astype(np.float32)}, {"Gather": 2})
    assert reports[0].count == 0
    nodes = [helper.make_node("Gather", ["x", "i"], ["y"], axis=0)]
    old = _model(nodes, [_vi("x", [3, 4])], [_vi("y", [4])], [inits[1]], opset=11)
    assert _check(old, [GatherToSlice()], {"x": R.standard_normal((3, 4)).astype(np.float32)}, {"Gather": 1})[0].count == 0


@pytest.mark.parametrize("opset", [17, 18])
def test_fuse_decomposed_layernorm(opset):
    def mean(inp, out):
        if opset >= 18:
            return helper.make_node("ReduceMean", [inp, "axes"], [out])
        return helper.make_node("ReduceMean", [inp], [out], axes=[-1])

    nodes = [
        mean("x", "mu"),
        helper.make_node("Sub", ["x", "mu"], ["d"]),
        helper.make_node("Pow", ["d", "two"], ["sq"]),
        mean("sq", "var"),
        helper.make_node("Add", ["var", "eps"], ["ve"]),
        helper.make_node("Sqrt", ["ve"], ["sd"]),
        helper.make_node("Div", ["d", "sd"], ["n"]),
        helper.make_node("Mul", ["n", "gamma"], ["gn"]),
        helper.make_node("Add", ["gn", "beta"], ["y"]),
    ]
    inits = [numpy_helper.from_array(np.array(v, np.float32), n) for n, v in (("two", 2.0), ("eps", 1e-5))]
    inits += [_init("gamma", [16]), _init("beta", [16]), numpy_helper.from_array(np.array([-1], np.int64), "axes")]
    model = _model(nodes, [_vi("x", [2, 5, 16])], [_vi("y", [2, 5, 16])], inits, opset=opset)
    _check(model, [FuseLayerNorm()], {"x": R.standard_normal((2, 5, 16)).astype(np.float32) * 3 + 1},
           {"LayerNormalization": 1, "ReduceMean": 0, "Sqrt": 0, "Div": 0}, rtol=1e-5)


def test_fuse_attention_with_scale_and_mask():
    b, h, s, d = 2, 3, 7, 8
    nodes = [
        helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]),
        helper.make_node("MatMul", ["q", "kt"], ["qk"]),
        helper.make_node("Div", ["qk", "scale"], ["qks"]),
        helper.make_node("Add", ["qks", "mask"], ["qkm"]),
        helper.make_node("Softmax", ["qkm"], ["p"], axis=-1),
        helper.make_node("MatMul", ["p", "v"], ["y"]),
    ]
    inits = [numpy_helper.from_array(np.array(d ** 0.5, np.float32), "scale")]
    ins = [_vi("q", [b, h, s, d]), _vi("k", [b, h, s, d]), _vi("v", [b, h, s, d]), _vi("mask", [b, 1, 1, s])]
    model = _model(nodes, ins, [_vi("y", [b, h, s, d])], inits)
    mask = np.where(R.random((b, 1, 1, s)) < 0.3, -1e4, 0.0).astype(np.float32)
    feeds = {n: R.standard_normal((b, h, s, d)).astype(np.float32) for n in "qkv"} | {"mask": mask}
    _check(model, [FuseAttention()], feeds, {"ScaledDotProductAttention": 1, "Softmax": 0, "MatMul": 0})


def test_fuse_attention_scaled_before_the_matmul_with_the_scale_computed_from_the_head_size():
    """torch's SDPA as the torchscript exporter writes it (ViT-B/16): the head size read from Shape(q) after a
    Reshape whose target comes out of a Concat, sqrt(1/sqrt(d)) applied to q and to k^T. simplify_reshape makes the
    target constant and states the output's dims, the folding turns the scale chain into constants, and the
    attention takes both multiplications into its scale: no Mul, Sqrt or Shape left."""
    b, h, s, d = 2, 3, 5, 8
    nodes = [
        helper.make_node("Shape", ["x"], ["xs"]),
        helper.make_node("Slice", ["xs", "zero", "one"], ["x0"]),  # the dynamic batch
        helper.make_node("Concat", ["x0", "hsd"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["q"]),
        helper.make_node("Shape", ["q"], ["qs"]),
        helper.make_node("Slice", ["qs", "minus1", "big"], ["dq"]),
        helper.make_node("Cast", ["dq"], ["df"], to=TensorProto.FLOAT),
        helper.make_node("Sqrt", ["df"], ["sd"]),
        helper.make_node("Div", ["one_f", "sd"], ["sc"]),
        helper.make_node("Sqrt", ["sc"], ["half_scale"]),
        helper.make_node("Mul", ["q", "half_scale"], ["qm"]),
        helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]),
        helper.make_node("Mul", ["kt", "half_scale"], ["ktm"]),
        helper.make_node("MatMul", ["qm", "ktm"], ["qk"]),
        helper.make_node("Softmax", ["qk"], ["p"], axis=-1),
        helper.make_node("MatMul", ["p", "v"], ["y"]),
    ]
    ints = {"zero": [0], "one": [1], "hsd": [h, s, d], "minus1": [-1], "big": [2 ** 62]}
    inits = [numpy_helper.from_array(np.array(v, np.int64), n) for n, v in ints.items()]
    inits.append(numpy_helper.from_array(np.array([1.0], np.float32), "one_f"))
    ins = [_vi("x", ["B", h * s * d]), _vi("k", ["B", h, s, d]), _vi("v", ["B", h, s, d])]
    model = _model(nodes, ins, [_vi("y", ["B", h, s, d])], inits)
    feeds = {"x": R.standard_normal((b, h * s * d)).astype(np.float32) * 3,
             "k": R.standard_normal((b, h, s, d)).astype(np.float32) * 3,
             "v": R.standard_normal((b, h, s, d)).astype(np.float32)}
    _check(model, None, feeds, {"ScaledDotProductAttention": 1, "Mul": 0, "Sqrt": 0, "Shape": 0, "Softmax": 0})


def test_dead_code_removes_unused_nodes_and_weights():
    nodes = [helper.make_node("Relu", ["x"], ["y"]), helper.make_node("MatMul", ["x", "W"], ["unused"])]
    model = _model(nodes, [_vi("x", [2, 4])], [_vi("y", [2, 4])], [_init("W", [4, 4])])
    reports = _check(model, [EliminateDeadCode()], {"x": R.standard_normal((2, 4)).astype(np.float32)},
                     {"MatMul": 0, "Relu": 1})
    assert reports[0].count == 2  # the node and its weight


def test_fold_pad_into_conv():
    from greenrt.passes.fold_pad_into_conv import FoldPadIntoConv

    nodes = [helper.make_node("Pad", ["x", "pads"], ["p"], mode="constant"),
             helper.make_node("Conv", ["p", "W"], ["y"], pads=[1, 0, 1, 0])]
    pads = numpy_helper.from_array(np.array([0, 0, 0, 1, 0, 0, 1, 2], np.int64), "pads")
    model = _model(nodes, [_vi("x", [1, 3, 9, 9])], [_vi("y", [1, 4, 9, 10])], [pads, _init("W", [4, 3, 3, 3])])
    reports = _check(model, [FoldPadIntoConv()], {"x": R.standard_normal((1, 3, 9, 9)).astype(np.float32)},
                     {"Pad": 0, "Conv": 1})
    assert reports[0].count == 1


def test_simplify_reshape_copies_dims_known_equal():
    # y = Reshape(x, Concat(Shape(x)[0], Shape(z)[1], [-1])) where z's dim 1 is x's dim 1 by shape inference
    nodes = [
        helper.make_node("Shape", ["x"], ["sx"]), helper.make_node("Gather", ["sx", "i0"], ["g0"]),
        helper.make_node("Unsqueeze", ["g0", "ax"], ["u0"]),
        helper.make_node("Relu", ["x"], ["z"]),
        helper.make_node("Shape", ["z"], ["sz"]), helper.make_node("Gather", ["sz", "i1"], ["g1"]),
        helper.make_node("Unsqueeze", ["g1", "ax"], ["u1"]),
        helper.make_node("Concat", ["u0", "u1", "minus1"], ["shape"], axis=0),
        helper.make_node("Reshape", ["z", "shape"], ["y"]),
    ]
    inits = [numpy_helper.from_array(np.array(v, np.int64), n) for n, v in
             (("i0", 0), ("i1", 1), ("ax", [0]), ("minus1", [-1]))]
    model = _model(nodes, [_vi("x", ["B", "S", 4, 2])], [_vi("y", ["B", "S", 8])], inits)
    from greenrt.passes.simplify_reshape import SimplifyReshape

    reports = _check(model, [SimplifyReshape(), EliminateDeadCode()],
                     {"x": R.standard_normal((3, 5, 4, 2)).astype(np.float32)},
                     {"Shape": 0, "Gather": 0, "Concat": 0, "Reshape": 1})
    assert reports[0].count == 1


def test_simplify_reshape_one_computed_dim_becomes_minus_one():
    # y = Reshape(x, Concat([2], Unsqueeze(Shape(x)[0] * 3), [4])) with x: [B*?, ...]: the product is inferred
    nodes = [
        helper.make_node("Shape", ["x"], ["sx"]), helper.make_node("Gather", ["sx", "i0"], ["g0"]),
        helper.make_node("Mul", ["g0", "three"], ["m"]), helper.make_node("Unsqueeze", ["m", "ax"], ["u"]),
        helper.make_node("Concat", ["two", "u", "four"], ["shape"], axis=0),
        helper.make_node("Reshape", ["x", "shape"], ["y"]),
    ]
    inits = [numpy_helper.from_array(np.array(v, np.int64), n) for n, v in
             (("i0", 0), ("three", 3), ("ax", [0]), ("two", [2]), ("four", [4]))]
    model = _model(nodes, [_vi("x", ["B", 6, 4])], [_vi("y", [2, None, 4])], inits)
    from greenrt.passes.simplify_reshape import SimplifyReshape

    reports = _check(model, [SimplifyReshape(), EliminateDeadCode()],
                     {"x": R.standard_normal((5, 6, 4)).astype(np.float32)},
                     {"Shape": 0, "Mul": 0, "Concat": 0, "Reshape": 1})
    assert reports[0].count == 1


def test_fold_conv_affine_mul_add_into_weight_and_bias():
    from greenrt.passes.fold_conv_affine import FoldConvAffine

    nodes = [helper.make_node("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Mul", ["c", "s"], ["m"]),
             helper.make_node("Add", ["m", "t"], ["y"])]
    inits = [_init("W", [4, 3, 3, 3]), _init("s", [1, 4, 1, 1]), _init("t", [4, 1, 1])]
    model = _model(nodes, [_vi("x", [2, 3, 8, 8])], [_vi("y", [2, 4, 8, 8])], inits)
    reports = _check(model, [FoldConvAffine()], {"x": R.standard_normal((2, 3, 8, 8)).astype(np.float32)},
                     {"Mul": 0, "Add": 0, "Conv": 1})
    assert reports[0].count == 2


def _mha_output_projection(perm2=(1, 0, 2), split=None, batch="B", x_shape=None):
    """torch MultiheadAttention's export from a batch-first module, after the attention: (B, H, S, D) ->
    Transpose(2, 0, 1, 3) -> Reshape(-1, H*D) -> MatMul W + b -> Reshape(S, -1, N) -> Transpose(1, 0, 2) -> + x."""
    h, s, d, n = 3, 5, 4, 12
    nodes = [
        helper.make_node("Transpose", ["a"], ["at"], perm=[2, 0, 1, 3], name="heads_out"),
        helper.make_node("Reshape", ["at", "rows"], ["a2"], name="to_rows"),
        helper.make_node("MatMul", ["a2", "W"], ["m"], name="out_proj"),
        helper.make_node("Add", ["m", "b"], ["mb"], name="out_bias"),
        helper.make_node("Reshape", ["mb", "split"], ["sbn"], name="to_sbn"),
        helper.make_node("Transpose", ["sbn"], ["bsn"], perm=list(perm2), name="to_bsn"),
        helper.make_node("Add", ["bsn", "x"], ["y"], name="residual"),
    ]
    inits = [numpy_helper.from_array(np.array([-1, h * d], np.int64), "rows"),
             numpy_helper.from_array(np.array(split or [s, -1, n], np.int64), "split"),
             _init("W", [h * d, n]), _init("b", [n])]
    out_shape = x_shape or ([batch, s, n] if tuple(perm2) == (1, 0, 2) else [s, n, batch])
    model = _model(nodes, [_vi("a", [batch, h, s, d]), _vi("x", out_shape)], [_vi("y", out_shape)], inits)
    feeds = {"a": R.standard_normal((2, h, s, d)).astype(np.float32),
             "x": R.standard_normal([2 if dim == batch else dim for dim in out_shape]).astype(np.float32)}
    return model, feeds


def test_gemm_row_order_computes_the_output_projection_in_batch_first_rows():
    from greenrt.passes.gemm_row_order import GemmRowOrder

    model, feeds = _mha_output_projection()
    reports = _check(model, [FuseMatMulBiasActivation(), GemmRowOrder(), EliminateDeadCode()], feeds,
                     {"FusedMatMul": 1, "Transpose": 1, "Reshape": 1})
    assert reports[1].count == 1
    ir_model = load_model(model)
    optimize(ir_model, [FuseMatMulBiasActivation(), GemmRowOrder(), EliminateDeadCode()])
    transpose = next(n for n in ir_model.graph if n.op_type == "Transpose")
    assert list(transpose.attributes["perm"].value) == [0, 2, 1, 3]  # (B, S, H, D): rows batch-first
    gemm = next(n for n in ir_model.graph if n.op_type == "FusedMatMul")
    assert gemm.outputs[0].name == "bsn"  # the GEMM writes the (B, S, N) tensor the residual Add reads


@pytest.mark.parametrize("case", ["other_perm", "split_not_s_first", "split_batch_first_dim"])
def test_gemm_row_order_leaves_other_layouts(case):
    from greenrt.passes.gemm_row_order import GemmRowOrder

    model, feeds = {
        "other_perm": lambda: _mha_output_projection(perm2=(0, 2, 1)),
        "split_not_s_first": lambda: _mha_output_projection(split=[2, -1, 12], x_shape=[5, 2, 12]),
        "split_batch_first_dim": lambda: _mha_output_projection(split=[-1, 5, 12], x_shape=[5, 2, 12]),
    }[case]()
    reports = _check(model, [FuseMatMulBiasActivation(), GemmRowOrder()], feeds, {"FusedMatMul": 1})
    assert reports[1].count == 0
