"""apply_precision on small hand-built graphs, checked against onnxruntime fp32."""

import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from greenrt.onnx.importer import load_model
from greenrt.passes import optimize
from greenrt.build import observe_ranges
from greenrt.precision import PrecisionConfig, apply_precision, parse_layer_precision
from greenrt.runtime.executor import Executor

F16, BF16, F32 = ir.DataType.FLOAT16, ir.DataType.BFLOAT16, ir.DataType.FLOAT
LOW = {"fp16": F16, "bf16": BF16}


def _model(nodes, inputs, outputs, inits=(), opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _vi(name, shape, dtype=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, dtype, shape)


def _init(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def reference(proto, feeds):
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def run_greenrt(model, feeds):
    with torch.inference_mode():
        outs = Executor.from_model(model).run({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in feeds.items()})
    return [o.numpy() for o in outs]


def rel_err(out, ref):
    return float(np.abs(out.astype(np.float64) - ref).max() / np.abs(ref).max())


def nodes_by_name(model):
    return {n.name: n for n in model.graph}


def check_io_float32(model, proto):
    assert [v.name for v in model.graph.inputs] == [v.name for v in proto.graph.input]
    assert [v.name for v in model.graph.outputs] == [v.name for v in proto.graph.output]
    for v in list(model.graph.inputs) + list(model.graph.outputs):
        if v.name in {i.name for i in proto.graph.input if i.type.tensor_type.elem_type == TensorProto.FLOAT} | \
                {o.name for o in proto.graph.output if o.type.tensor_type.elem_type == TensorProto.FLOAT}:
            assert v.dtype == F32, v


def round_trip_ok(model):
    """The rewritten model is still a valid ONNX model; types check under full shape inference unless it holds
    bf16 (many ONNX ops only admit bfloat16 from opset 22 on; greenrt's kernels take it at any opset)."""
    proto = ir.to_proto(model)
    has_bf16 = any(v.dtype == BF16 for n in model.graph for v in n.outputs)
    onnx.checker.check_model(proto, full_check=not has_bf16)


def convert_and_compare(proto, feeds, precision, *, tol=1e-2, passes=False, config=None, samples=None):
    ref = reference(proto, feeds)
    model = load_model(proto)
    if passes:
        optimize(model)
    report = apply_precision(model, config or PrecisionConfig(precision), samples and observe_ranges(model, samples))
    outs = run_greenrt(model, feeds)
    check_io_float32(model, proto)
    for out, r in zip(outs, ref):
        assert out.dtype == np.float32
        assert np.isfinite(out).all()
        assert rel_err(out, r) <= tol, (precision, rel_err(out, r))
    return model, report, outs, ref


# -- graphs ---------------------------------------------------------------------------------------------------
def conv_relu():
    r = np.random.default_rng(1)
    nodes = [helper.make_node("Conv", ["x", "W", "B"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["y"], name="relu")]
    inits = [_init("W", r.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.3),
             _init("B", r.standard_normal(8).astype(np.float32))]
    return _model(nodes, [_vi("x", ["N", 3, 16, 16])], [_vi("y", ["N", 8, 16, 16])], inits)


def matmul_softmax():
    r = np.random.default_rng(2)
    nodes = [helper.make_node("MatMul", ["x", "W"], ["m"], name="fc/matmul"),
             helper.make_node("Add", ["m", "b"], ["logits"], name="fc/bias"),
             helper.make_node("Softmax", ["logits"], ["probs"], name="head/softmax", axis=-1)]
    inits = [_init("W", r.standard_normal((16, 10)).astype(np.float32) * 0.5),
             _init("b", r.standard_normal(10).astype(np.float32))]
    return _model(nodes, [_vi("x", ["N", 16])], [_vi("probs", ["N", 10])], inits)


def layernorm():
    r = np.random.default_rng(3)
    nodes = [helper.make_node("LayerNormalization", ["x", "g", "b"], ["y"], name="ln", axis=-1, epsilon=1e-5)]
    inits = [_init("g", (1 + 0.1 * r.standard_normal(32)).astype(np.float32)),
             _init("b", (0.1 * r.standard_normal(32)).astype(np.float32))]
    return _model(nodes, [_vi("x", [2, 5, 32])], [_vi("y", [2, 5, 32])], inits)


def add_of_input():
    """y = tanh(x * W) + x: the Add reads the graph input directly; x also feeds the Mul."""
    r = np.random.default_rng(4)
    nodes = [helper.make_node("Mul", ["x", "W"], ["xw"], name="mul"),
             helper.make_node("Tanh", ["xw"], ["t"], name="tanh"),
             helper.make_node("Add", ["t", "x"], ["y"], name="add")]
    return _model(nodes, [_vi("x", [4, 12])], [_vi("y", [4, 12])], [_init("W", r.standard_normal(12).astype(np.float32))])


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


# -- accuracy ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
@pytest.mark.parametrize("passes", [False, True])
def test_conv_relu(precision, passes, rng):
    x = rng.standard_normal((2, 3, 16, 16)).astype(np.float32)
    model, report, _, _ = convert_and_compare(conv_relu(), {"x": x}, precision, passes=passes)
    low = LOW[precision]
    assert model.graph.initializers["W"].dtype == low and model.graph.initializers["B"].dtype == low
    assert report.counts == {precision: 1 if passes else 2}  # FusedConv, or Conv + Relu
    round_trip_ok(model) if not passes else None


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_matmul_softmax(precision, rng):
    x = rng.standard_normal((5, 16)).astype(np.float32)
    model, report, _, _ = convert_and_compare(matmul_softmax(), {"x": x}, precision)
    nodes = nodes_by_name(model)
    assert nodes["head/softmax"].outputs[0].dtype == LOW[precision]
    assert report.casts_inserted == 2  # graph input in, graph output out
    round_trip_ok(model)
    # onnxruntime runs the rewritten graph too (its own fp16 kernels): the Casts and dtypes are consistent
    if precision == "fp16":
        out = reference(ir.to_proto(model), {"x": x})[0]
        assert out.dtype == np.float32


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_layernorm(precision, rng):
    x = (3 * rng.standard_normal((2, 5, 32)) + 1).astype(np.float32)
    model, report, _, _ = convert_and_compare(layernorm(), {"x": x}, precision)
    assert nodes_by_name(model)["ln"].outputs[0].dtype == LOW[precision]
    assert model.graph.initializers["g"].dtype == LOW[precision]


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_layernorm_fused_from_decomposition(precision, rng):
    """The decomposed LayerNorm exporters write, fused by the passes into greenrt.LayerNormalization."""
    r = np.random.default_rng(5)
    nodes = [
        helper.make_node("ReduceMean", ["x", "axes"], ["mu"], name="mean", keepdims=1),
        helper.make_node("Sub", ["x", "mu"], ["d"], name="sub"),
        helper.make_node("Pow", ["d", "two"], ["d2"], name="pow"),
        helper.make_node("ReduceMean", ["d2", "axes"], ["var"], name="var", keepdims=1),
        helper.make_node("Add", ["var", "eps"], ["ve"], name="addeps"),
        helper.make_node("Sqrt", ["ve"], ["sd"], name="sqrt"),
        helper.make_node("Div", ["d", "sd"], ["n"], name="div"),
        helper.make_node("Mul", ["n", "g"], ["ng"], name="scale"),
        helper.make_node("Add", ["ng", "b"], ["y"], name="shift"),
    ]
    inits = [_init("axes", np.array([-1], np.int64)), _init("two", np.array(2.0, np.float32)),
             _init("eps", np.array(1e-5, np.float32)),
             _init("g", (1 + 0.1 * r.standard_normal(32)).astype(np.float32)),
             _init("b", (0.1 * r.standard_normal(32)).astype(np.float32))]
    proto = _model(nodes, [_vi("x", [2, 7, 32])], [_vi("y", [2, 7, 32])], inits, opset=18)
    x = (2 * rng.standard_normal((2, 7, 32)) - 1).astype(np.float32)
    model, report, _, _ = convert_and_compare(proto, {"x": x}, precision, passes=True)
    assert [n.op_type for n in report.nodes] == ["LayerNormalization"]


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_add_fed_by_graph_input(precision, rng):
    x = rng.standard_normal((4, 12)).astype(np.float32)
    model, report, _, _ = convert_and_compare(add_of_input(), {"x": x}, precision)
    low = LOW[precision]
    nodes = nodes_by_name(model)
    casts = [n for n in model.graph if n.op_type == "Cast"]
    assert len(casts) == 2  # one Cast of x shared by Mul and Add, one back to float32 for y
    x_low = nodes["mul"].inputs[0]
    assert x_low.dtype == low and nodes["add"].inputs[1] is x_low
    assert model.graph.inputs[0].dtype == F32 and model.graph.outputs[0].name == "y"
    round_trip_ok(model)


def test_fp32_and_tf32_leave_graph_alone(rng):
    x = rng.standard_normal((3, 16)).astype(np.float32)
    for precision in ("fp32", "tf32"):
        model, report, _, _ = convert_and_compare(matmul_softmax(), {"x": x}, precision, tol=1e-6)
        assert report.casts_inserted == 0 and report.counts == {precision: 3}
        assert all(v.dtype == F32 for n in model.graph for v in n.outputs)
        assert model.metadata_props["greenrt.precision.default"] == precision


# -- overrides --------------------------------------------------------------------------------------------------
def test_override_by_op_type_keeps_node_fp32(rng):
    x = rng.standard_normal((5, 16)).astype(np.float32)
    cfg = PrecisionConfig("fp16", parse_layer_precision("Softmax=fp32"))
    model, report, _, _ = convert_and_compare(matmul_softmax(), {"x": x}, "fp16", config=cfg)
    sm = nodes_by_name(model)["head/softmax"]
    assert sm.inputs[0].dtype == F32 and sm.outputs[0].dtype == F32
    assert sm.inputs[0].producer().op_type == "Cast"  # fp16 logits cast up at the boundary
    assert model.graph.outputs[0] is sm.outputs[0]  # already fp32: no Cast at the end
    assert report.precision_of("head/softmax") == "fp32"
    assert [n.reason for n in report.overridden] == ["override Softmax=fp32"]
    assert report.counts == {"fp16": 2, "fp32": 1}
    assert sm.metadata_props["greenrt.precision"] == "fp32"


def test_override_by_name_wildcard(rng):
    x = rng.standard_normal((5, 16)).astype(np.float32)
    cfg = PrecisionConfig("bf16", parse_layer_precision("fc/*=fp32"))
    model, report, _, _ = convert_and_compare(matmul_softmax(), {"x": x}, "bf16", config=cfg)
    nodes = nodes_by_name(model)
    for name in ("fc/matmul", "fc/bias"):
        assert nodes[name].outputs[0].dtype == F32 and report.precision_of(name) == "fp32"
    assert nodes["head/softmax"].outputs[0].dtype == BF16
    assert model.graph.initializers["W"].dtype == F32 and model.graph.initializers["b"].dtype == F32


def test_default_fp32_with_fp16_island(rng):
    x = rng.standard_normal((5, 16)).astype(np.float32)
    cfg = PrecisionConfig("fp32", [("head/*", "fp16")])
    model, report, _, _ = convert_and_compare(matmul_softmax(), {"x": x}, "fp32", config=cfg)
    assert report.counts == {"fp32": 2, "fp16": 1}
    assert nodes_by_name(model)["head/softmax"].outputs[0].dtype == F16


def test_shared_weight_gets_a_copy_per_precision(rng):
    r = np.random.default_rng(6)
    nodes = [helper.make_node("MatMul", ["x", "W"], ["a"], name="low"),
             helper.make_node("MatMul", ["x", "W"], ["b"], name="keep"),
             helper.make_node("Add", ["a", "b"], ["y"], name="sum")]
    proto = _model(nodes, [_vi("x", [3, 8])], [_vi("y", [3, 8])], [_init("W", r.standard_normal((8, 8)).astype(np.float32))])
    x = rng.standard_normal((3, 8)).astype(np.float32)
    cfg = PrecisionConfig("fp16", [("keep", "fp32")])
    model, report, _, _ = convert_and_compare(proto, {"x": x}, "fp16", config=cfg)
    nodes = nodes_by_name(model)
    assert nodes["keep"].inputs[1].dtype == F32 and nodes["keep"].inputs[1].name == "W"
    assert nodes["low"].inputs[1].dtype == F16 and nodes["low"].inputs[1].is_initializer()
    assert report.constants_copied == 1
    round_trip_ok(model)


# -- Cast / ConstantOfShape / shape math ------------------------------------------------------------------------
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_cast_to_float_and_constant_of_shape_follow_precision(precision, rng):
    nodes = [
        helper.make_node("Cast", ["k"], ["kf"], name="cast", to=TensorProto.FLOAT),
        helper.make_node("Mul", ["x", "kf"], ["xk"], name="mul"),
        helper.make_node("Shape", ["x"], ["s"], name="shape"),
        helper.make_node("ConstantOfShape", ["s"], ["half"], name="cos",
                         value=helper.make_tensor("v", TensorProto.FLOAT, [1], [0.75])),
        helper.make_node("Add", ["xk", "half"], ["y"], name="add"),
    ]
    proto = _model(nodes, [_vi("x", [3, 6]), _vi("k", [3, 6], TensorProto.INT64)], [_vi("y", [3, 6])])
    feeds = {"x": rng.standard_normal((3, 6)).astype(np.float32), "k": rng.integers(-5, 6, (3, 6)).astype(np.int64)}
    model, report, _, _ = convert_and_compare(proto, feeds, precision)
    low = LOW[precision]
    nodes = nodes_by_name(model)
    assert nodes["cast"].attributes["to"].value == int(low) and nodes["cast"].outputs[0].dtype == low
    assert nodes["cos"].attributes["value"].value.dtype == low and nodes["cos"].outputs[0].dtype == low
    assert nodes["shape"].inputs[0].name == "x"  # Shape reads the float32 input as is
    assert model.graph.inputs[1].dtype == ir.DataType.INT64
    round_trip_ok(model)


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_shape_arithmetic_and_resize_scales_stay_fp32(precision, rng):
    """sizes = int(float(shape) * 1.5): fp16 is exact to 2048 only, bf16 to 256 -> keep that math fp32."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"], name="shape"),
        helper.make_node("Cast", ["s"], ["sf"], name="s_to_f", to=TensorProto.FLOAT),
        helper.make_node("Mul", ["sf", "k"], ["sk"], name="scale_sizes"),
        helper.make_node("Cast", ["sk"], ["sizes"], name="f_to_i", to=TensorProto.INT64),
        helper.make_node("Resize", ["x", "", "", "sizes"], ["r"], name="resize", mode="nearest"),
        helper.make_node("Resize", ["x", "", "scales"], ["r2"], name="resize_scales", mode="linear"),
        helper.make_node("ReduceMean", ["r", "axes"], ["m"], name="mean", keepdims=1),
        helper.make_node("Add", ["r2", "m"], ["y"], name="add"),
    ]
    inits = [_init("k", np.array([1, 1, 1.5, 1.5], np.float32)), _init("scales", np.array([1, 1, 1.5, 1.5], np.float32)),
             _init("axes", np.array([2, 3], np.int64))]
    proto = _model(nodes, [_vi("x", [1, 2, 342, 4])], [_vi("y", [1, 2, "H", "W"])], inits, opset=18)
    x = rng.standard_normal((1, 2, 342, 4)).astype(np.float32)
    model, report, outs, ref = convert_and_compare(proto, {"x": x}, precision)
    assert outs[0].shape == ref[0].shape == (1, 2, 513, 6)
    assert report.precision_of("s_to_f") == "fp32" and report.precision_of("scale_sizes") == "fp32"
    assert "shape" in dict((n.node, n.reason) for n in report.nodes)["scale_sizes"]
    assert report.precision_of("resize") == precision
    assert model.graph.initializers["scales"].dtype == F32 and model.graph.initializers["k"].dtype == F32


# -- automatic fallback -----------------------------------------------------------------------------------------
def overflow_graph():
    """y = relu(x * 1e5) * 1e-5 + x: the middle value leaves fp16's range (65504)."""
    nodes = [helper.make_node("Mul", ["x", "big"], ["xb"], name="up"),
             helper.make_node("Relu", ["xb"], ["r"], name="relu"),
             helper.make_node("Mul", ["r", "small"], ["d"], name="down"),
             helper.make_node("Add", ["d", "x"], ["y"], name="add")]
    inits = [_init("big", np.array(1e5, np.float32)), _init("small", np.array(1e-5, np.float32))]
    return _model(nodes, [_vi("x", [4, 8])], [_vi("y", [4, 8])], inits)


def square_graph():
    """y = (x * x) * 1e-4 - 1: only the activation (no constant) exceeds fp16's range."""
    nodes = [helper.make_node("Mul", ["x", "x"], ["sq"], name="square"),
             helper.make_node("Mul", ["sq", "s"], ["d"], name="down"),
             helper.make_node("Sub", ["d", "one"], ["y"], name="sub")]
    inits = [_init("s", np.array(1e-4, np.float32)), _init("one", np.array(1.0, np.float32))]
    return _model(nodes, [_vi("x", [4, 8])], [_vi("y", [4, 8])], inits)


def _large_input(rng):
    return (rng.uniform(300, 600, (4, 8)) * rng.choice([-1, 1], (4, 8))).astype(np.float32)


@pytest.mark.parametrize("make", [overflow_graph, square_graph])
def test_fallback_fixes_overflow(make, rng):
    proto = make()
    x = (rng.standard_normal((4, 8)) * 2).astype(np.float32) if make is overflow_graph else _large_input(rng)
    ref = reference(proto, {"x": x})[0]

    plain = load_model(proto)
    plain_report = apply_precision(plain, PrecisionConfig("fp16", auto_fallback=False))
    assert plain_report.fallbacks == []
    if make is overflow_graph:
        assert any("'big'" in w and "inf" in w for w in plain_report.warnings)
    bad = run_greenrt(plain, {"x": x})[0]
    assert not np.isfinite(bad).all()  # without fallback the fp16 intermediate overflows

    samples = [{"x": _large_input(np.random.default_rng(s)) if make is square_graph else
                (np.random.default_rng(s).standard_normal((4, 8)) * 2).astype(np.float32)} for s in (10, 11)]
    model = load_model(proto)
    report = apply_precision(model, PrecisionConfig("fp16"), samples and observe_ranges(model, samples))
    good = run_greenrt(model, {"x": x})[0]
    assert np.isfinite(good).all() and rel_err(good, ref) <= 1e-2
    kept = {n.node: n.reason for n in report.fallbacks}
    assert report.observed_batches == 2
    if make is overflow_graph:
        assert set(kept) == {"up", "relu", "down"}
        assert "over fp16 range" in kept["relu"] and "max |x| = " in kept["relu"]
        assert report.precision_of("add") == "fp16"
    else:
        assert set(kept) == {"square", "down"}
        assert report.precision_of("sub") == "fp16"
    for name in kept:
        assert nodes_by_name(model)[name].outputs[0].dtype == F32
    check_io_float32(model, proto)


def test_fallback_is_fp16_only_and_override_wins(rng):
    proto = square_graph()
    samples = [{"x": _large_input(rng)}]
    model = load_model(proto)
    report = apply_precision(model, PrecisionConfig("bf16"), samples and observe_ranges(model, samples))
    assert report.fallbacks == [] and report.observed_batches == 0  # bf16 has fp32's range
    model = load_model(proto)
    report = apply_precision(model, PrecisionConfig("fp16", [("square", "fp16")]), samples and observe_ranges(model, samples))
    assert report.precision_of("square") == "fp16" and report.precision_of("down") == "fp32"
    assert any("square" in w for w in report.warnings)


def test_static_constant_check_without_samples(rng):
    model = load_model(overflow_graph())
    report = apply_precision(model, PrecisionConfig("fp16"))
    assert report.precision_of("up") == "fp32"
    assert "constant 'big'" in dict((n.node, n.reason) for n in report.nodes)["up"]
    assert model.graph.initializers["big"].dtype == F32


# -- greenrt fused ops ------------------------------------------------------------------------------------------
def attention_block():
    """softmax(q kT / sqrt(d) + mask) v -> MatMul(Wo) + bo -> Gelu: fused to SDPA + FusedMatMul by the passes."""
    r = np.random.default_rng(8)
    nodes = [
        helper.make_node("Transpose", ["k"], ["kt"], name="kT", perm=[0, 1, 3, 2]),
        helper.make_node("MatMul", ["q", "kt"], ["qk"], name="qk"),
        helper.make_node("Div", ["qk", "scale"], ["qks"], name="scale"),
        helper.make_node("Add", ["qks", "mask"], ["qkm"], name="mask"),
        helper.make_node("Softmax", ["qkm"], ["p"], name="softmax", axis=-1),
        helper.make_node("MatMul", ["p", "v"], ["ctx"], name="pv"),
        helper.make_node("MatMul", ["ctx", "Wo"], ["o"], name="out_proj"),
        helper.make_node("Add", ["o", "bo"], ["ob"], name="out_bias"),
        helper.make_node("Gelu", ["ob"], ["y"], name="gelu"),
    ]
    inits = [_init("scale", np.array(np.sqrt(16), np.float32)),
             _init("Wo", (r.standard_normal((16, 16)) * 0.25).astype(np.float32)),
             _init("bo", (r.standard_normal(16) * 0.1).astype(np.float32))]
    ins = [_vi("q", [2, 4, 6, 16]), _vi("k", [2, 4, 6, 16]), _vi("v", [2, 4, 6, 16]), _vi("mask", [2, 1, 1, 6])]
    return _model(nodes, ins, [_vi("y", [2, 4, 6, 16])], inits, opset=20)


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_fused_attention_and_matmul(precision, rng):
    feeds = {n: rng.standard_normal((2, 4, 6, 16)).astype(np.float32) for n in "qkv"}
    mask = np.zeros((2, 1, 1, 6), np.float32)
    mask[0, ..., 4:] = -10000.0  # padding keys, within fp16's range
    feeds["mask"] = mask
    model, report, _, _ = convert_and_compare(attention_block(), feeds, precision, passes=True, samples=[feeds])
    ops = {n.op_type: n for n in model.graph}
    assert "ScaledDotProductAttention" in ops and "FusedMatMul" in ops
    assert set(report.counts) == {precision}
    sdpa = ops["ScaledDotProductAttention"]
    assert [v.dtype for v in sdpa.inputs] == [LOW[precision]] * 3 + [ir.DataType.FLOAT]  # the op converts the mask
    assert sum(n.op_type == "Cast" for n in model.graph) == 4  # q, k, v in; y out


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_attention_mask_of_float32_min_keeps_attention_reduced(precision, rng):
    """BERT's export masks padding keys with finfo(float32).min, out of fp16's range: the mask stays fp32 and the
    fused attention clamps it to q's range itself, so the attention still runs in fp16 and matches fp32 (masked
    keys get no weight; nothing becomes -inf or NaN)."""
    feeds = {n: rng.standard_normal((2, 4, 6, 16)).astype(np.float32) for n in "qkv"}
    mask = np.zeros((2, 1, 1, 6), np.float32)
    mask[0, ..., 3:] = np.finfo(np.float32).min
    feeds["mask"] = mask
    model, report, got, want = convert_and_compare(attention_block(), feeds, precision, passes=True, samples=[feeds])
    sdpa = next(n for n in model.graph if n.op_type == "ScaledDotProductAttention")
    assert [v.dtype for v in sdpa.inputs[:3]] == [LOW[precision]] * 3
    assert report.precision_of(sdpa.name) == precision
    assert np.isfinite(got[0]).all()


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_output_also_read_inside_graph(precision, rng):
    """logits is a graph output and the Softmax input: the output slot gets a float32 Cast under its name, the
    Softmax keeps reading the reduced value."""
    proto = matmul_softmax()
    proto.graph.output.insert(0, _vi("logits", ["N", 10]))
    x = rng.standard_normal((5, 16)).astype(np.float32)
    model, report, outs, _ = convert_and_compare(proto, {"x": x}, precision)
    assert [v.name for v in model.graph.outputs] == ["logits", "probs"]
    nodes = nodes_by_name(model)
    assert nodes["head/softmax"].inputs[0].dtype == LOW[precision]
    assert nodes["head/softmax"].inputs[0] is nodes["fc/bias"].outputs[0]
    assert model.graph.outputs[0].producer().op_type == "Cast"
    assert "fp16" in report.summary() or "bf16" in report.summary()
    round_trip_ok(model)
