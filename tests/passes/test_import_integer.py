"""Dynamic quantization (passes/import_integer.py): ConvInteger / MatMulInteger -> greenrt.QConv / greenrt.QMatMul.

Float models are quantized with onnxruntime's own ``quantize_dynamic`` (int8 and uint8 weights, per tensor and per
output column; DynamicQuantizeLinear on every activation) or written by hand with onnx.helper (a bare ConvInteger /
MatMulInteger with an int32 output, a per-channel conv). Each test asserts what the plan holds (INT8 layers where the
pattern applies, the integer ops left where it must not) and compares greenrt's output with onnxruntime's on the
same quantized model, optimized and unoptimized, on 64 seeded random inputs (never zeros).

Bounds. An int32 output must be equal. A float output is bounded by two quantization steps of the last integer
layer's input, propagated through its weights: ``x_scale * max over outputs of sum |W - W_zp| * W_scale``, where
x_scale is the DynamicQuantizeLinear scale onnxruntime computed for that batch. The layer's epilogue is the graph's
own float32 arithmetic (float32(acc) * (x_scale * W_scale) + b), so a single layer on the graph input matches to
the last bit (measured: 0 in every model here, onnxruntime 1.32); in a two-layer model a float32 rounding
difference in the first layer's output (onnxruntime's optimized graph fuses it into its own kernels) can move an
element of the next layer's quantized input by one step, which moves an output by at most one such propagated
step; two leave room for the input scale itself moving by a rounding (its max). Where a pattern is left alone the
float outputs are held to float32 rounding (1e-6 relative) and the integer ones to equality.
"""

from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import QuantType, quantize_dynamic

from greenrt.onnx.importer import load_model
from greenrt.passes import default_pipeline, optimize
from greenrt.passes.import_integer import ImportIntegerLayers
from greenrt.plan.compile import compile_model
from greenrt.runtime.runner import Runner

INTEGER_OPS = ("ConvInteger", "MatMulInteger")
LAYERS = ("QConv", "QMatMul")
N_TEST = 64
CONV_INPUT, MLP_INPUT = [4, 6, 6], [16]
FLOAT, INT32 = 1, 6


def _init(rng, name, shape, scale=0.3):
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


def _model(nodes, inputs, outputs, inits, name):
    graph = helper.make_graph(nodes, name, inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _float_io(x_shape, y_shape):
    return ([helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *x_shape])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", *y_shape])])


def convnet(seed=0, group=1):
    """Conv (bias) + Relu + Flatten + MatMul, as the brief's onnxruntime example."""
    rng = np.random.default_rng(seed)
    c = CONV_INPUT[0]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], group=group, name="conv"),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("Flatten", ["r"], ["f"], name="flatten"),
             helper.make_node("MatMul", ["f", "m"], ["y"], name="fc")]
    inits = [_init(rng, "w", [8, c // group, 3, 3]), _init(rng, "b", [8]), _init(rng, "m", [8 * 36, 10], 0.1)]
    return _model(nodes, *_float_io(CONV_INPUT, [10]), inits, "convnet")


def mlp(seed=1):
    """MatMul + Add + Relu, MatMul + Add (no Gemm)."""
    rng = np.random.default_rng(seed)
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["m1"], name="fc1"),
             helper.make_node("Add", ["m1", "b1"], ["a1"], name="bias1"),
             helper.make_node("Relu", ["a1"], ["r1"], name="relu1"),
             helper.make_node("MatMul", ["r1", "w2"], ["m2"], name="fc2"),
             helper.make_node("Add", ["m2", "b2"], ["y"], name="bias2")]
    inits = [_init(rng, "w1", [16, 32]), _init(rng, "b1", [32]), _init(rng, "w2", [32, 10]), _init(rng, "b2", [10])]
    return _model(nodes, *_float_io(MLP_INPUT, [10]), inits, "mlp")


def _quantize(tmp_path, model, weight_type=QuantType.QInt8, **options):
    src, dst = tmp_path / "float.onnx", tmp_path / "dynamic.onnx"
    onnx.save(model, src)
    quantize_dynamic(str(src), str(dst), weight_type=weight_type, **options)
    return onnx.load(dst)


def _steps(model, passes=None):
    """The plan greenrt builds for ``model`` (default passes) and a runner for it; the import's report."""
    ir_model = load_model(model)
    reports = {r.name: r for r in optimize(ir_model, passes)}
    plan, weights = compile_model(ir_model)
    return plan, Runner(plan, weights, "cpu"), reports.get("import_integer")


def _test_inputs(shape, seed=11):
    return np.random.default_rng(seed).standard_normal([N_TEST, *shape]).astype(np.float32)


def _onnxruntime(model, feeds, optimized=True, outputs=None):
    """onnxruntime's outputs (``outputs``: names of float intermediate values to read instead of the graph's)."""
    if outputs:
        probe = onnx.ModelProto()
        probe.CopyFrom(model)
        probe.graph.output.extend([helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs])
        model = probe
    options = ort.SessionOptions()
    if not optimized:  # the graph as written, op by op
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(outputs, feeds)


def _initializer(model, name):
    return next(numpy_helper.to_array(i) for i in model.graph.initializer if i.name == name)


def _input_step(model, feeds):
    """One quantization step of every element of the last integer layer's input, through its weights:
    x_scale (DynamicQuantizeLinear's, for these inputs) * max over outputs of sum |W - W_zp| * W_scale."""
    nodes = list(model.graph.node)
    layer = [n for n in nodes if n.op_type in INTEGER_OPS][-1]
    dql = next(n for n in nodes if n.op_type == "DynamicQuantizeLinear" and layer.input[0] in n.output)
    scale_mul = next(n for n in nodes if n.op_type == "Mul" and dql.output[1] in n.input)
    w_scale = _initializer(model, next(i for i in scale_mul.input if i != dql.output[1])).astype(np.float64)
    w = _initializer(model, layer.input[1]).astype(np.float64)
    channel = 0 if layer.op_type == "ConvInteger" else 1
    shape = [1] * w.ndim
    shape[channel] = -1
    w = w - _initializer(model, layer.input[3]).astype(np.float64).reshape(shape)
    w_abs = np.abs(w) * w_scale.reshape(shape if w_scale.size > 1 else ())
    per_output = w_abs.sum(axis=tuple(a for a in range(w.ndim) if a != channel))
    x_scale = float(_onnxruntime(model, feeds, False, [dql.output[1]])[0])
    return x_scale * float(per_output.max())


def _plan_ops(plan):
    return Counter(s.op_type for s in plan.steps)


def _expect(plan, expect):
    ops = _plan_ops(plan)
    for op_type, count in expect.items():
        assert ops[op_type] == count, f"{op_type}: {ops[op_type]} != {count}; plan has {dict(ops)}"


def _compare_float(model, shape, label, *, expect):
    """greenrt vs onnxruntime (optimized and unoptimized) on 64 random inputs, within two propagated input steps
    (module doc); ``expect`` (op type -> count) must hold in the plan."""
    plan, runner, report = _steps(model)
    _expect(plan, expect)
    x = _test_inputs(shape)
    got = runner.run({"x": torch.from_numpy(x)})[0].numpy().astype(np.float64)
    assert np.isfinite(got).all() and np.abs(got).max() > 0
    step = _input_step(model, {"x": x})
    measured = []
    for optimized in (True, False):
        ref = _onnxruntime(model, {"x": x}, optimized)[0]
        assert got.shape == ref.shape
        diff = float(np.abs(got - ref).max())
        measured.append(diff / step)
        assert diff <= 2 * step, f"{label} vs onnxruntime {'optimized' if optimized else 'unoptimized'}: " \
                                 f"{diff / step} input steps"
    print(f"{label}: optimized onnxruntime {measured[0]:.3g} input steps, unoptimized {measured[1]:.3g}; "
          f"rewrites {report.count}")
    return plan, report


def _layers(plan):
    return {s.name: s for s in plan.steps if s.op_type in LAYERS}


# -- onnxruntime's dynamic quantization --------------------------------------------------------------------------
@pytest.mark.parametrize("per_channel", [False, True], ids=["per_tensor", "per_channel"])
def test_onnxruntime_dynamic_convnet(tmp_path, per_channel):
    q = _quantize(tmp_path, convnet(), per_channel=per_channel, op_types_to_quantize=["Conv", "MatMul"])
    assert Counter(n.op_type for n in q.graph.node)["ConvInteger"] == 1
    plan, report = _compare_float(q, CONV_INPUT, f"convnet dynamic per_channel={per_channel}",
                                  expect={"QConv": 1, "QMatMul": 1, "DynamicQuantizeLinear": 2, "ConvInteger": 0,
                                          "MatMulInteger": 0, "Cast": 0, "Mul": 0, "Add": 0})
    assert report.count == 2
    layers = list(_layers(plan).values())
    conv, fc = (next(s for s in layers if s.op_type == t) for t in LAYERS)
    assert conv.attrs["out_dtype"] == FLOAT and fc.attrs["out_dtype"] == FLOAT
    assert conv.attrs["pads"] == [1, 1, 1, 1]
    # the bias joined the conv; the runtime scale and zero point are DynamicQuantizeLinear's outputs
    assert conv.inputs[3] and conv.inputs[6:] == ["x_scale", "x_zero_point"]
    assert fc.inputs[6:] == ["f_scale", "f_zero_point"] and fc.attrs["trans_w"] == 0
    assert len(fc.inputs[5]) == 0  # the all-zero int8 weight zero point is dropped
    if per_channel:  # onnxruntime quantizes the MatMul's weight per column (a ConvInteger's stays per tensor)
        assert fc.input_specs[2].shape == [10]


@pytest.mark.parametrize("per_channel", [False, True], ids=["per_tensor", "per_channel"])
@pytest.mark.parametrize("weight_type", [QuantType.QInt8, QuantType.QUInt8], ids=lambda v: v.name)
def test_onnxruntime_dynamic_mlp(tmp_path, weight_type, per_channel):
    # MatMul only (no Gemm); the bias Add behind each MatMulInteger's scale Mul joins the layer; uint8 weights come
    # with a non-zero uint8 zero point (per column with per_channel), which the layer keeps as W_zp
    q = _quantize(tmp_path, mlp(), weight_type, per_channel=per_channel, op_types_to_quantize=["MatMul"])
    plan, report = _compare_float(q, MLP_INPUT, f"mlp dynamic {weight_type.name} per_channel={per_channel}",
                                  expect={"QMatMul": 2, "MatMulInteger": 0, "Add": 0, "Mul": 0, "Cast": 0})
    assert report.count == 2
    for s in _layers(plan).values():
        assert s.attrs["out_dtype"] == FLOAT and s.inputs[3]  # float out, the bias inside
        assert s.input_specs[2].shape == ([s.input_specs[1].shape[1]] if per_channel else [])
        if weight_type == QuantType.QUInt8:
            assert s.input_specs[5].dtype == TensorProto.UINT8 and s.input_specs[5].shape == s.input_specs[2].shape
        else:
            assert len(s.inputs) < 6 or not s.inputs[5]


def test_onnxruntime_dynamic_grouped_conv(tmp_path):
    q = _quantize(tmp_path, convnet(seed=3, group=2), QuantType.QUInt8, op_types_to_quantize=["Conv", "MatMul"])
    plan, report = _compare_float(q, CONV_INPUT, "grouped conv dynamic QUInt8",
                                  expect={"QConv": 1, "QMatMul": 1, "ConvInteger": 0, "MatMulInteger": 0})
    conv = next(s for s in plan.steps if s.op_type == "QConv")
    assert conv.attrs["group"] == 2 and conv.input_specs[1].shape == [8, 2, 3, 3]


def test_engine_end_to_end(tmp_path):
    """The user's path: greenrt build of a dynamically quantized model on the CPU, then InferenceSession."""
    from greenrt.build import BuildConfig, build_engine
    from greenrt.runtime.session import InferenceSession

    q = _quantize(tmp_path, convnet(), op_types_to_quantize=["Conv", "MatMul"])
    onnx.save(q, tmp_path / "q.onnx")
    build_engine(tmp_path / "q.onnx", tmp_path / "q.engine", BuildConfig(device="cpu"), log=lambda m: None,
                 samples=[{"x": _test_inputs(CONV_INPUT)[:8]}])
    sess = InferenceSession(str(tmp_path / "q.engine"))
    ops = _plan_ops(sess.plan)
    assert ops["QConv"] == 1 and ops["QMatMul"] == 1 and not ops["ConvInteger"] and not ops["MatMulInteger"]
    x = _test_inputs(CONV_INPUT, seed=12)
    ref = _onnxruntime(q, {"x": x})[0]
    got = sess.run(None, {"x": x})[0]
    assert np.abs(got - ref).max() <= 2 * _input_step(q, {"x": x})


# -- written by hand -----------------------------------------------------------------------------------------------
def _ints(rng, shape, dtype, lo=None, hi=None):
    info = np.iinfo(dtype)
    return rng.integers(info.min if lo is None else lo, (info.max if hi is None else hi) + 1, shape).astype(dtype)


def _uint8_feed(shape, seed=21):
    x = _ints(np.random.default_rng(seed), [N_TEST, *shape], np.uint8)
    assert x.any()
    return x


@pytest.mark.parametrize("op_type", INTEGER_OPS)
def test_bare_integer_layer_int32_output(op_type):
    # uint8 input (a graph input), constant uint8 input zero point 131, int8 weight with a non-zero zero point
    # (per tensor for the conv: onnxruntime's ConvInteger takes no other; per column for the MatMulInteger), the
    # int32 accumulator as the graph output: an INT32 layer, equal to onnxruntime's to the last bit
    rng = np.random.default_rng(4)
    conv = op_type == "ConvInteger"
    shape, w_shape = (CONV_INPUT, [8, 4, 3, 3]) if conv else (MLP_INPUT, [16, 24])
    w = _ints(rng, w_shape, np.int8)
    w_zp = np.array(-5, np.int8) if conv else _ints(rng, [24], np.int8, -9, 9)
    attrs = {"pads": [1, 1, 1, 1], "strides": [2, 2]} if conv else {}
    nodes = [helper.make_node(op_type, ["x", "w", "x_zp", "w_zp"], ["y"], name="layer", **attrs)]
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array(131, np.uint8), "x_zp"),
             numpy_helper.from_array(w_zp, "w_zp")]
    y_shape = ["N", 8, 3, 3] if conv else ["N", 24]
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.UINT8, ["N", *shape])],
                   [helper.make_tensor_value_info("y", TensorProto.INT32, y_shape)], inits, "bare")
    plan, runner, report = _steps(model)
    _expect(plan, {"QConv" if conv else "QMatMul": 1, op_type: 0})
    layer = _layers(plan)["layer"]
    assert layer.attrs["out_dtype"] == INT32 and layer.attrs["x_zero_point" if conv else "a_zero_point"] == 131
    assert report.count == 1
    x = _uint8_feed(shape)
    got = runner.run({"x": torch.from_numpy(x)})[0].numpy()
    assert got.dtype == np.int32
    for optimized in (True, False):
        ref = _onnxruntime(model, {"x": x}, optimized)[0]
        np.testing.assert_array_equal(got, ref)
    assert np.abs(got).max() > 10000  # not a trivially small accumulator


def _per_channel_conv(n=8, c=4):
    """DynamicQuantizeLinear + ConvInteger with int8 weight zero points per output channel, its scale per channel
    as Reshape(s_w, [1, C, 1, 1]) and the bias as Reshape(b, [1, C, 1, 1]) (onnxruntime's layout for a conv
    bias), written as Mul(S, cast) and S = Mul(s_w, x_scale): the other operand orders."""
    rng = np.random.default_rng(5)
    w = _ints(rng, [n, c, 3, 3], np.int8, -100, 100)
    shape4 = numpy_helper.from_array(np.array([1, -1, 1, 1], np.int64), "shape4")
    nodes = [helper.make_node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xz"]),
             helper.make_node("Reshape", ["ws", "shape4"], ["ws4"]),
             helper.make_node("Reshape", ["b", "shape4"], ["b4"]),
             helper.make_node("Mul", ["ws4", "xs"], ["S"]),
             helper.make_node("ConvInteger", ["xq", "w", "xz", "wz"], ["acc"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Cast", ["acc"], ["accf"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["S", "accf"], ["scaled"]),
             helper.make_node("Add", ["b4", "scaled"], ["y"])]
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(_ints(rng, [n], np.int8, -6, 6), "wz"),
             numpy_helper.from_array((rng.uniform(0.5, 2, n) * 0.01).astype(np.float32), "ws"),
             _init(rng, "b", [n]), shape4]
    return _model(nodes, *_float_io(CONV_INPUT, [n, 6, 6]), inits, "per_channel_conv")


def test_per_channel_conv_matches_the_integer_ops():
    # onnxruntime's ConvInteger refuses per-channel weight zero points, so the reference here is greenrt's own
    # ConvInteger/Cast/Mul/Add (the pass left out), which the conformance tests hold to ONNX's semantics: the
    # same float32 operations on the exact accumulator, so equal to the last bit
    model = _per_channel_conv()
    plan, runner, report = _steps(model)
    _expect(plan, {"QConv": 1, "ConvInteger": 0, "Cast": 0, "Mul": 0, "Add": 0, "Reshape": 0})
    conv = _layers(plan)["conv"]
    assert conv.input_specs[2].shape == [8] and conv.input_specs[5].shape == [8] and conv.input_specs[3].shape == [8]
    assert conv.inputs[6:] == ["xs", "xz"] and report.count == 1
    x = _test_inputs(CONV_INPUT)
    got = runner.run({"x": torch.from_numpy(x)})[0].numpy()
    passes = [p for p in default_pipeline() if not isinstance(p, ImportIntegerLayers)]
    plan_ref, runner_ref, _ = _steps(model, passes)
    _expect(plan_ref, {"ConvInteger": 1, "QConv": 0})
    ref = runner_ref.run({"x": torch.from_numpy(x)})[0].numpy()
    np.testing.assert_array_equal(got, ref)
    # and the accumulator itself against an independent int64 computation
    xq, xs, xz = (t.numpy() for t in _dynamic_quantize(x))
    w = _initializer(model, "w").astype(np.int64) - _initializer(model, "wz").astype(np.int64).reshape(-1, 1, 1, 1)
    acc = torch.nn.functional.conv2d(torch.from_numpy(xq.astype(np.float64) - float(xz)), torch.from_numpy(
        w.astype(np.float64)), padding=1).numpy()
    scale = (_initializer(model, "ws") * np.float32(xs)).reshape(1, -1, 1, 1)
    want = acc.astype(np.float32) * scale + _initializer(model, "b").reshape(1, -1, 1, 1)
    np.testing.assert_array_equal(got, want)


def _dynamic_quantize(x):
    from greenrt.ops.quantization import DynamicQuantizeLinear
    return DynamicQuantizeLinear(torch.from_numpy(x))


# -- patterns left as they were -------------------------------------------------------------------------------------
def _dynamic_matmul(nodes_after, extra_inputs=(), ws_shape=(10,), name="left"):
    """DynamicQuantizeLinear(x) -> MatMulInteger(xq, w, az, wz) -> acc, then ``nodes_after`` to y; a constant
    weight scale ``ws`` of ``ws_shape`` (None: none)."""
    rng = np.random.default_rng(6)
    nodes = [helper.make_node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "az"]),
             helper.make_node("MatMulInteger", ["xq", "w", "az", "wz"], ["acc"], name="fc"), *nodes_after]
    inits = [numpy_helper.from_array(_ints(rng, [16, 10], np.int8, -100, 100), "w"),
             numpy_helper.from_array(np.zeros([10], np.int8), "wz")]
    if ws_shape is not None:
        inits.append(numpy_helper.from_array((rng.uniform(0.5, 2, ws_shape) * 0.01).astype(np.float32), "ws"))
    inputs, outputs = _float_io(MLP_INPUT, [10])
    return _model(nodes, inputs + list(extra_inputs), outputs, inits, name)


def _check_left(model, feeds, expect, *, count):
    """The pass fired ``count`` times, the plan holds ``expect``, and greenrt computes what onnxruntime does: an
    integer output equal, a float one to float32 rounding (onnxruntime's optimized graph fuses the integer op and
    its Cast/Mul into its own kernels, whose float32 products may round differently in the last bit)."""
    plan, runner, report = _steps(model)
    _expect(plan, expect)
    assert report.count == count
    got = runner.run({k: torch.from_numpy(v) for k, v in feeds.items()})[0].numpy()
    for optimized in (True, False):
        ref = _onnxruntime(model, feeds, optimized)[0]
        if got.dtype.kind in "iu":
            np.testing.assert_array_equal(got, ref)
        else:
            np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6 * np.abs(ref).max())
    return plan


def test_per_row_a_zero_point_stays():
    # MatMulInteger's A zero point per row ([M]): no scalar zero point, so no INT8 layer. onnxruntime's kernel
    # refuses such a zero point, so the reference is the int64 product
    rng = np.random.default_rng(7)
    w, a_zp = _ints(rng, [16, 10], np.int8), np.array([120, 128, 131, 140], np.uint8)
    nodes = [helper.make_node("MatMulInteger", ["a", "w", "a_zp", "w_zp"], ["y"], name="fc")]
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(a_zp, "a_zp"),
             numpy_helper.from_array(np.array(3, np.int8), "w_zp")]
    model = _model(nodes, [helper.make_tensor_value_info("a", TensorProto.UINT8, [4, 16])],
                   [helper.make_tensor_value_info("y", TensorProto.INT32, [4, 10])], inits, "per_row")
    plan, runner, report = _steps(model)
    _expect(plan, {"MatMulInteger": 1, "QMatMul": 0})
    assert report.count == 0
    a = _ints(rng, [4, 16], np.uint8)
    got = runner.run({"a": torch.from_numpy(a)})[0].numpy()
    want = (a.astype(np.int64) - a_zp.astype(np.int64)[:, None]) @ (w.astype(np.int64) - 3)
    np.testing.assert_array_equal(got, want.astype(np.int32))


def test_scale_from_a_graph_input_keeps_the_epilogue():
    # the Mul's weight scale is a graph input, not a constant: the MatMulInteger still becomes an INT32 layer, the
    # Cast and both Muls stay after it
    nodes = [helper.make_node("Mul", ["xs", "ws_in"], ["S"]),
             helper.make_node("Cast", ["acc"], ["accf"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["accf", "S"], ["y"])]
    ws_in = helper.make_tensor_value_info("ws_in", TensorProto.FLOAT, [10])
    model = _dynamic_matmul(nodes, [ws_in], ws_shape=None)
    ws = (np.random.default_rng(8).uniform(0.5, 2, 10) * 0.01).astype(np.float32)
    plan = _check_left(model, {"x": _test_inputs(MLP_INPUT), "ws_in": ws},
                       {"QMatMul": 1, "MatMulInteger": 0, "Cast": 1, "Mul": 2}, count=1)
    layer = _layers(plan)["fc"]
    assert layer.attrs["out_dtype"] == INT32 and layer.inputs[7] == "az"


@pytest.mark.parametrize("variant", ["row_scale", "two_readers"])
def test_epilogue_pieces_that_do_not_fit(variant):
    # the weight scale over rows ([64, 1] against [N, 10]: not the channel axis), or a second reader of the Cast's
    # output: INT32 layers, everything after them stays
    nodes = [helper.make_node("Mul", ["xs", "ws"], ["S"]),
             helper.make_node("Cast", ["acc"], ["accf"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["accf", "S"], ["scaled" if variant == "two_readers" else "y"])]
    if variant == "two_readers":
        nodes.append(helper.make_node("Add", ["scaled", "accf"], ["y"]))
    model = _dynamic_matmul(nodes, ws_shape=(N_TEST, 1) if variant == "row_scale" else (10,), name=variant)
    plan = _check_left(model, {"x": _test_inputs(MLP_INPUT)}, {"QMatMul": 1, "MatMulInteger": 0, "Cast": 1, "Mul": 2},
                       count=1)
    assert _layers(plan)["fc"].attrs["out_dtype"] == INT32


def test_bias_off_the_channel_axis_stays_an_add():
    # a conv "bias" over the width ([1, 1, 1, 6]): the layer takes the Cast and the Mul, the Add stays
    rng = np.random.default_rng(9)
    nodes = [helper.make_node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xz"]),
             helper.make_node("Mul", ["xs", "ws"], ["S"]),
             helper.make_node("ConvInteger", ["xq", "w", "xz"], ["acc"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Cast", ["acc"], ["accf"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["accf", "S"], ["scaled"]),
             helper.make_node("Add", ["scaled", "b"], ["y"])]
    inits = [numpy_helper.from_array(_ints(rng, [8, 4, 3, 3], np.int8, -100, 100), "w"),
             numpy_helper.from_array(np.array(0.004, np.float32), "ws"), _init(rng, "b", [1, 1, 1, 6])]
    model = _model(nodes, *_float_io(CONV_INPUT, [8, 6, 6]), inits, "bias_width")
    plan = _check_left(model, {"x": _test_inputs(CONV_INPUT)}, {"QConv": 1, "ConvInteger": 0, "Add": 1, "Mul": 0},
                       count=1)
    conv = _layers(plan)["conv"]
    assert conv.attrs["out_dtype"] == FLOAT and len(conv.inputs) == 8 and not conv.inputs[3]


def test_runtime_weight_stays(tmp_path):
    # both MatMul operands are activations: onnxruntime quantizes both dynamically, the weight is no constant
    nodes = [helper.make_node("MatMul", ["x", "x2"], ["y"], name="bmm")]
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 16]),
                           helper.make_tensor_value_info("x2", TensorProto.FLOAT, [16, 10])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 10])], [], "runtime_weight")
    q = _quantize(tmp_path, model, op_types_to_quantize=["MatMul"], extra_options={"MatMulConstBOnly": False})
    if not Counter(n.op_type for n in q.graph.node)["MatMulInteger"]:
        pytest.skip("this onnxruntime leaves a MatMul of two activations float")
    rng = np.random.default_rng(10)
    feeds = {"x": rng.standard_normal([4, 16]).astype(np.float32), "x2": rng.standard_normal([16, 10]).astype(
        np.float32)}
    _check_left(q, feeds, {"MatMulInteger": 1, "QMatMul": 0}, count=0)


def test_overflowing_reduction_stays():
    # K = 70000 over int8 weights of 127 with a runtime uint8 zero point: the accumulator could reach
    # 70000 * 255 * 127 > 2**31 whatever the zero point, so no INT8 layer
    k = 70000
    w = np.full([k, 2], 127, np.int8)
    w[:, 1] = np.random.default_rng(11).integers(-127, 128, k)
    nodes = [helper.make_node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xz"]),
             helper.make_node("MatMulInteger", ["xq", "w", "xz"], ["y"], name="long")]
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, k])],
                   [helper.make_tensor_value_info("y", TensorProto.INT32, [2, 2])],
                   [numpy_helper.from_array(w, "w")], "overflow")
    x = (np.random.default_rng(12).standard_normal([2, k]) * 0.01).astype(np.float32)
    _check_left(model, {"x": x}, {"MatMulInteger": 1, "QMatMul": 0}, count=0)
