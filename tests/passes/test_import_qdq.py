"""Explicit quantization (passes/import_qdq.py): quantized ONNX models -> greenrt.QConv / greenrt.QMatMul.

Float models are quantized with onnxruntime's own quantizer (QDQ with uint8 and int8 activations, per channel and
per tensor; the QOperator format's QLinearConv / QLinearMatMul) or written by hand the way NVIDIA's Model Optimizer
writes them (int8 symmetric Q->DQ on activations, DQ on int8 weights, float bias, Relu/Clip before the next Q). Each
test asserts that the layers became INT8 layers in the plan (and no float Conv/Gemm/MatMul is left for them) and
that greenrt's output matches onnxruntime's on the same quantized model: within one quantization step of the output
(its y_scale) where the output is quantized, a small relative error where it is float, and the same top-1 on 64
random inputs. Patterns the INT8 layers cannot take stay float ops and still match.
"""

from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

from greenrt.onnx.importer import load_model
from greenrt.passes import optimize
from greenrt.plan.compile import compile_model
from greenrt.runtime.runner import Runner

FLOAT_LAYERS = {"Conv", "FusedConv", "Gemm", "MatMul", "FusedMatMul"}
N_TEST = 64
CONV_INPUT, MLP_INPUT = [3, 8, 8], [16]
RESULTS = {}  # test id -> (max difference in output steps or relative error, top-1 agreement), for the report


def _init(rng, name, shape, scale=0.3):
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


def _model(nodes, x_shape, y_shape, inits, name, extra_inputs=(), output="y"):
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *x_shape]),
                                            *extra_inputs],
                              [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["N", *y_shape])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def convnet(seed=0):
    """conv+relu, conv+relu, residual add, global average pool, Gemm classifier (random non-zero weights)."""
    rng = np.random.default_rng(seed)
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], name="conv2"),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("Add", ["r2", "r1"], ["s"], name="residual"),
        helper.make_node("GlobalAveragePool", ["s"], ["p"], name="pool"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc", "fcb"], ["y"], transB=1, name="fc"),
    ]
    inits = [_init(rng, "w1", [8, 3, 3, 3]), _init(rng, "b1", [8]), _init(rng, "w2", [8, 8, 3, 3], 0.2),
             _init(rng, "b2", [8]), _init(rng, "fc", [10, 8]), _init(rng, "fcb", [10])]
    return _model(nodes, CONV_INPUT, [10], inits, "convnet")


def mlp(seed=1):
    """MatMul+Add+Relu, MatMul+Add."""
    rng = np.random.default_rng(seed)
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["m1"], name="fc1"),
        helper.make_node("Add", ["m1", "b1"], ["a1"], name="bias1"),
        helper.make_node("Relu", ["a1"], ["r1"], name="relu1"),
        helper.make_node("MatMul", ["r1", "w2"], ["m2"], name="fc2"),
        helper.make_node("Add", ["m2", "b2"], ["y"], name="bias2"),
    ]
    inits = [_init(rng, "w1", [16, 32]), _init(rng, "b1", [32]), _init(rng, "w2", [32, 10]), _init(rng, "b2", [10])]
    return _model(nodes, MLP_INPUT, [10], inits, "mlp")


class _Calibration(CalibrationDataReader):
    """16 random inputs of batch 1 (never zeros)."""

    def __init__(self, shape, seed=7):
        rng = np.random.default_rng(seed)
        self.feeds = iter([{"x": rng.standard_normal([1, *shape]).astype(np.float32)} for _ in range(16)])

    def get_next(self):
        return next(self.feeds, None)


def _quantize(tmp_path, model, shape, **options):
    src, dst = tmp_path / "float.onnx", tmp_path / "quantized.onnx"
    onnx.save(model, src)
    quantize_static(str(src), str(dst), _Calibration(shape), weight_type=QuantType.QInt8, **options)
    return onnx.load(dst)


def _steps(model):
    """The plan greenrt builds for ``model`` (default passes) and a runner for it."""
    ir_model = load_model(model)
    reports = {r.name: r for r in optimize(ir_model)}
    plan, weights = compile_model(ir_model)
    return plan, Runner(plan, weights, "cpu"), reports["import_qdq"]


def _test_inputs(shape, seed=11):
    return np.random.default_rng(seed).standard_normal([N_TEST, *shape]).astype(np.float32)


def _onnxruntime(model, feeds, optimized=True):
    options = ort.SessionOptions()
    if not optimized:  # the graph as written: the QDQ model's ONNX semantics, op by op
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"]).run(
        None, feeds)[0]


def _compare(model, shape, label, *, expect, step=None, input_step=None):
    """greenrt vs onnxruntime on 64 random inputs; ``expect`` (op type -> count) must hold in the plan.

    ``step``: the output's quantization step; greenrt must be within one step of onnxruntime, optimized (its
    QLinearConv/QLinearMatMul kernels) and unoptimized (the graph's ops one by one). A float output (``step`` None) is
    measured relative to the largest output: within 1e-5 of unoptimized onnxruntime (both compute the same quantized
    values; only the float32 rounding of the last layer differs). Optimized onnxruntime runs such a model's layers
    as float convolutions over the dequantized values (its FusedConv/FusedGemm), whose float32 rounding moves a
    few quantized activations by one step against the exact integer result; ``input_step``, the most one step of
    every element of the last layer's quantized input can move an output (its scale * max over outputs of
    sum |W|), bounds the difference there (without it, 1e-5 relative as unoptimized)."""
    plan, runner, report = _steps(model)
    ops = Counter(s.op_type for s in plan.steps)
    for op_type, count in expect.items():
        assert ops[op_type] == count, f"{op_type}: {ops[op_type]} != {count}; plan has {dict(ops)}"
    x = _test_inputs(shape)
    got = runner.run({"x": torch.from_numpy(x)})[0].numpy().astype(np.float64)
    assert np.isfinite(got).all()
    measured = []
    for optimized in (True, False):
        ref = _onnxruntime(model, {"x": x}, optimized)
        assert got.shape == ref.shape
        diff = float(np.abs(got - ref).max())
        top1 = float((got.argmax(-1) == ref.argmax(-1)).mean())
        which = f"{label} vs onnxruntime {'optimized' if optimized else 'unoptimized'}"
        if step is not None:
            measure, unit, bound = diff / step, "steps", 1.0 + 1e-6
        elif optimized and input_step is not None:
            measure, unit, bound = diff / input_step, "input steps", 1.0 + 1e-6
        else:
            measure, unit, bound = diff / float(np.abs(ref).max()), "rel", 1e-5
        RESULTS[which] = (measure, unit, top1)
        measured.append(f"{measure:.3g} {unit}, top-1 {top1:.3f}")
        assert measure <= bound, f"{which}: {measure} {unit}"
        assert top1 >= 0.98, f"{which}: top-1 agreement {top1}"
    print(f"{label}: optimized onnxruntime {measured[0]}; unoptimized {measured[1]}; rewrites {report.count}")
    return plan, report


def _propagated_step(model, act_scale, w_q, w_scale, reduce_axis):
    """One quantization step on every element of a layer's input, through its weights: scale * max sum |W|."""
    w = _initializer(model, w_q).astype(np.float64)
    ws = _initializer(model, w_scale).astype(np.float64)
    w_abs = np.abs(w) * (ws.reshape((-1, 1) if reduce_axis == 1 else (1, -1)) if ws.size > 1 else ws)
    return float(_initializer(model, act_scale)) * float(w_abs.sum(axis=reduce_axis).max())


def _initializer(model, name):
    return next(numpy_helper.to_array(i) for i in model.graph.initializer if i.name == name)


# -- onnxruntime's QDQ models --------------------------------------------------------------------------------------
QDQ_CONFIGS = [(QuantType.QUInt8, True), (QuantType.QInt8, True), (QuantType.QUInt8, False), (QuantType.QInt8, False)]


@pytest.mark.parametrize("activation,per_channel", QDQ_CONFIGS, ids=lambda v: getattr(v, "name", str(v)))
def test_onnxruntime_qdq_convnet(tmp_path, activation, per_channel):
    q = _quantize(tmp_path, convnet(), CONV_INPUT, quant_format=QuantFormat.QDQ, activation_type=activation,
                  per_channel=per_channel)
    label = f"convnet QDQ {activation.name} per_channel={per_channel}"
    plan, report = _compare(q, CONV_INPUT, label, step=float(_initializer(q, "y_scale")),
                            expect={"QConv": 2, "QMatMul": 1, **{t: 0 for t in FLOAT_LAYERS}})
    out_dtype = 3 if activation == QuantType.QInt8 else 2
    layers = {s.name: s for s in plan.steps if s.op_type in ("QConv", "QMatMul")}
    assert set(layers) == {"conv1", "conv2", "fc"}
    assert all(s.attrs["out_dtype"] == out_dtype for s in layers.values())  # each requantizes for the next layer
    assert report.count == 3


@pytest.mark.parametrize("activation,per_channel", [(QuantType.QUInt8, True), (QuantType.QInt8, False)],
                         ids=lambda v: getattr(v, "name", str(v)))
def test_onnxruntime_qdq_mlp(tmp_path, activation, per_channel):
    # onnxruntime quantizes the MatMul's output before the bias Add (an Add of two quantized tensors), so each
    # MatMul becomes a QMatMul with an integer output and the Adds stay (they run on the dequantized values)
    q = _quantize(tmp_path, mlp(), MLP_INPUT, quant_format=QuantFormat.QDQ, activation_type=activation,
                  per_channel=per_channel)
    label = f"mlp QDQ {activation.name} per_channel={per_channel}"
    plan, report = _compare(q, MLP_INPUT, label, step=float(_initializer(q, "y_scale")),
                            expect={"QMatMul": 2, **{t: 0 for t in FLOAT_LAYERS}})
    assert report.count == 2


def test_onnxruntime_qoperator(tmp_path):
    # QLinearConv / QLinearMatMul only: onnxruntime writes its com.microsoft ops (QLinearAdd, QGemm, ...) for the
    # rest, which greenrt refuses; so the convnet's Add, pool and Gemm stay float here
    q = _quantize(tmp_path, convnet(), CONV_INPUT, quant_format=QuantFormat.QOperator,
                  activation_type=QuantType.QUInt8, per_channel=True, op_types_to_quantize=["Conv"])
    assert Counter(n.op_type for n in q.graph.node)["QLinearConv"] == 2
    _compare(q, CONV_INPUT, "convnet QOperator QLinearConv",
             expect={"QConv": 2, "QLinearConv": 0, "Conv": 0, "FusedConv": 0})

    q = _quantize(tmp_path, mlp(), MLP_INPUT, quant_format=QuantFormat.QOperator,
                  activation_type=QuantType.QInt8, per_channel=False, op_types_to_quantize=["MatMul"])
    assert Counter(n.op_type for n in q.graph.node)["QLinearMatMul"] == 2
    _compare(q, MLP_INPUT, "mlp QOperator QLinearMatMul",
             expect={"QMatMul": 2, "QLinearMatMul": 0, "MatMul": 0, "FusedMatMul": 0})


# -- NVIDIA Model Optimizer style, by hand -------------------------------------------------------------------------
def _amax(model, names, shape):
    """max |value| of the float model's tensors ``names`` over 16 random inputs (the calibration)."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.extend([helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in names])
    sess = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(5).standard_normal([16, *shape]).astype(np.float32)
    outs = sess.run(names, {"x": x})
    return {n: float(np.abs(o).max()) for n, o in zip(names, outs)}


def _qdq(tensor, scale, out, nodes, inits):
    """tensor -> QuantizeLinear -> DequantizeLinear -> out, int8 symmetric (zero point 0)."""
    inits += [numpy_helper.from_array(np.array(scale / 127, np.float32), f"{tensor}_s"),
              numpy_helper.from_array(np.array(0, np.int8), f"{tensor}_zp")]
    nodes += [helper.make_node("QuantizeLinear", [tensor, f"{tensor}_s", f"{tensor}_zp"], [f"{tensor}_q"]),
              helper.make_node("DequantizeLinear", [f"{tensor}_q", f"{tensor}_s", f"{tensor}_zp"], [out])]


def _int8_weight(w, axis, name, nodes, inits, zero_point=True, as_qdq=False):
    """DQ(int8 W per channel along ``axis``); ``as_qdq``: Q->DQ of the float weight (pytorch-quantization)."""
    amax = np.abs(w).max(axis=tuple(a for a in range(w.ndim) if a != axis))
    scale = (amax / 127).astype(np.float32)
    zp = [f"{name}_zp"] if zero_point or as_qdq else []
    inits.append(numpy_helper.from_array(scale, f"{name}_s"))
    if zp:
        inits.append(numpy_helper.from_array(np.zeros(scale.shape, np.int8), f"{name}_zp"))
    if as_qdq:
        inits.append(numpy_helper.from_array(w, f"{name}_f"))
        nodes.append(helper.make_node("QuantizeLinear", [f"{name}_f", f"{name}_s", *zp], [f"{name}_q"], axis=axis))
    else:
        shape = [1] * w.ndim
        shape[axis] = -1
        q = np.clip(np.rint(w / scale.reshape(shape)), -127, 127).astype(np.int8)
        inits.append(numpy_helper.from_array(q, f"{name}_q"))
    nodes.append(helper.make_node("DequantizeLinear", [f"{name}_q", f"{name}_s", *zp], [name], axis=axis))


def model_optimizer_convnet():
    """The convnet quantized as Model Optimizer does: Q->DQ on each layer's input, DQ on int8 weights (one written
    as Q->DQ of the float weight, one without zero points), float biases, Relu/Clip before the next Q; the
    classifier's output stays float."""
    rng = np.random.default_rng(2)
    w1, w2, fc = (rng.standard_normal(s).astype(np.float32) * 0.3 for s in ([8, 3, 3, 3], [8, 8, 3, 3], [10, 8]))
    inits = [_init(rng, "b1", [8]), _init(rng, "b2", [8]), _init(rng, "fcb", [10]),
             numpy_helper.from_array(np.array(0, np.float32), "lo"), numpy_helper.from_array(np.array(6, np.float32),
                                                                                             "hi")]
    float_nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Clip", ["c2", "lo", "hi"], ["r2"]),
        helper.make_node("Add", ["r2", "r1"], ["s"]),
        helper.make_node("GlobalAveragePool", ["s"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
    ]
    probe = _model(float_nodes, CONV_INPUT, [8], inits + [numpy_helper.from_array(w1, "w1"),
                                                          numpy_helper.from_array(w2, "w2")], "probe", output="f")
    amax = _amax(probe, ["x", "r1", "r2"], CONV_INPUT) | _amax(probe, ["f"], CONV_INPUT)

    nodes = []
    _qdq("x", amax["x"], "xd", nodes, inits)
    _int8_weight(w1, 0, "w1d", nodes, inits)
    _int8_weight(w2, 0, "w2d", nodes, inits, as_qdq=True)
    _int8_weight(fc, 0, "fcd", nodes, inits, zero_point=False)
    nodes += [helper.make_node("Conv", ["xd", "w1d", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
              helper.make_node("Relu", ["c1"], ["r1"], name="relu1")]
    _qdq("r1", amax["r1"], "r1d", nodes, inits)
    nodes += [helper.make_node("Conv", ["r1d", "w2d", "b2"], ["c2"], pads=[1, 1, 1, 1], name="conv2"),
              helper.make_node("Clip", ["c2", "lo", "hi"], ["r2"], name="relu6")]
    _qdq("r2", amax["r2"], "r2d", nodes, inits)
    nodes += [helper.make_node("Add", ["r2d", "r1d"], ["s"], name="residual"),
              helper.make_node("GlobalAveragePool", ["s"], ["p"], name="pool"),
              helper.make_node("Flatten", ["p"], ["f"], name="flatten")]
    _qdq("f", amax["f"], "fd", nodes, inits)
    nodes.append(helper.make_node("Gemm", ["fd", "fcd", "fcb"], ["y"], transB=1, name="fc"))
    return _model(nodes, CONV_INPUT, [10], inits, "modelopt_convnet")


def model_optimizer_mlp():
    """MatMul + float bias Add + Relu -> Q (one QMatMul with an int8 output), then MatMul + Add with a float output."""
    rng = np.random.default_rng(3)
    w1, w2 = rng.standard_normal([16, 32]).astype(np.float32) * 0.3, rng.standard_normal([32, 10]).astype(np.float32)
    inits = [_init(rng, "b1", [32]), _init(rng, "b2", [10])]
    probe = _model([helper.make_node("MatMul", ["x", "w1"], ["m1"]), helper.make_node("Add", ["m1", "b1"], ["a1"]),
                    helper.make_node("Relu", ["a1"], ["y"])], MLP_INPUT, [32],
                   inits + [numpy_helper.from_array(w1, "w1")], "probe")
    amax = _amax(probe, ["x", "y"], MLP_INPUT)
    nodes = []
    _qdq("x", amax["x"], "xd", nodes, inits)
    _int8_weight(w1, 1, "w1d", nodes, inits)
    _int8_weight(w2, 1, "w2d", nodes, inits)
    nodes += [helper.make_node("MatMul", ["xd", "w1d"], ["m1"], name="fc1"),
              helper.make_node("Add", ["m1", "b1"], ["a1"], name="bias1"),
              helper.make_node("Relu", ["a1"], ["r1"], name="relu1")]
    _qdq("r1", amax["y"], "r1d", nodes, inits)
    nodes += [helper.make_node("MatMul", ["r1d", "w2d"], ["m2"], name="fc2"),
              helper.make_node("Add", ["m2", "b2"], ["y"], name="bias2")]
    return _model(nodes, MLP_INPUT, [10], inits, "modelopt_mlp")


def _as_constant_nodes(model, names):
    """The initializers ``names`` written as Constant nodes instead (as torch's exporter writes scales)."""
    inits = {i.name: i for i in model.graph.initializer}
    constants = [helper.make_node("Constant", [], [n], value=inits[n]) for n in names]
    kept = [i for i in model.graph.initializer if i.name not in names]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    nodes = constants + list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    onnx.checker.check_model(model)
    return model


@pytest.mark.parametrize("constant_nodes", [False, True], ids=["initializers", "constant_nodes"])
def test_model_optimizer_convnet(constant_nodes):
    # onnxruntime (optimized) runs these convs as float convolutions of the dequantized values; see _compare
    model = model_optimizer_convnet()
    input_step = _propagated_step(model, "f_s", "fcd_q", "fcd_s", 1)
    if constant_nodes:  # scales, zero points and Clip's bounds as Constant nodes
        model = _as_constant_nodes(model, [i.name for i in model.graph.initializer
                                           if i.name.endswith(("_s", "_zp")) or i.name in ("lo", "hi")])
    label = f"convnet Model Optimizer style ({'Constant nodes' if constant_nodes else 'initializers'})"
    plan, report = _compare(model, CONV_INPUT, label,
                            input_step=input_step,
                            expect={"QConv": 2, "QMatMul": 1, **{t: 0 for t in FLOAT_LAYERS}})
    layers = {s.name: s for s in plan.steps if s.op_type in ("QConv", "QMatMul")}
    assert layers["conv1"].attrs["activation"] == "Relu" and layers["conv1"].attrs["out_dtype"] == 3
    assert layers["conv2"].attrs["activation"] == "Clip" and layers["conv2"].attrs["out_dtype"] == 3
    assert layers["fc"].attrs["out_dtype"] == 1 and layers["fc"].attrs["trans_w"] == 1
    assert len(layers["conv1"].inputs) == 4  # x, W, W_scale, float bias: the all-zero weight zero point dropped
    assert report.count == 3


def test_model_optimizer_mlp():
    model = model_optimizer_mlp()
    plan, report = _compare(model, MLP_INPUT, "mlp Model Optimizer style",
                            input_step=_propagated_step(model, "r1_s", "w2d_q", "w2d_s", 0),
                            expect={"QMatMul": 2, "Add": 0, "Relu": 0, **{t: 0 for t in FLOAT_LAYERS}})
    layers = {s.name: s for s in plan.steps if s.op_type == "QMatMul"}
    assert layers["fc1"].attrs["activation"] == "Relu" and layers["fc1"].attrs["out_dtype"] == 3
    assert layers["fc2"].attrs["out_dtype"] == 1
    assert report.count == 2


# -- patterns left as float ops -----------------------------------------------------------------------------------
def _scalar(name, value, dtype=np.float32):
    return numpy_helper.from_array(np.array(value, dtype), name)


def test_runtime_weight_stays_float():
    # the weight is a graph input (int8 at run time): no INT8 layer can hold it
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
             helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"]),
             helper.make_node("MatMul", ["xd", "wd"], ["m"], name="fc"),
             helper.make_node("QuantizeLinear", ["m", "ys", "yz"], ["mq"]),
             helper.make_node("DequantizeLinear", ["mq", "ys", "yz"], ["y"])]
    inits = [_scalar("xs", 0.02), _scalar("xz", 0, np.int8), _scalar("ws", 0.01), _scalar("wz", 0, np.int8),
             _scalar("ys", 0.05), _scalar("yz", 3, np.int8)]
    wq = helper.make_tensor_value_info("wq", TensorProto.INT8, [16, 10])
    model = _model(nodes, MLP_INPUT, [10], inits, "runtime_weight", extra_inputs=[wq])
    plan, runner, report = _steps(model)
    assert report.count == 0 and Counter(s.op_type for s in plan.steps)["MatMul"] == 1
    x = _test_inputs(MLP_INPUT)
    w = np.random.default_rng(4).integers(-127, 128, [16, 10]).astype(np.int8)
    ref = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": x, "wq": w})[0]
    got = runner.run({"x": torch.from_numpy(x), "wq": torch.from_numpy(w)})[0].numpy()
    assert np.abs(got - ref).max() <= 0.05 + 1e-6  # within one output step


def test_per_channel_activation_scale_stays_float():
    rng = np.random.default_rng(6)
    w = np.clip(np.rint(rng.standard_normal([4, 3, 3, 3]) * 40), -127, 127).astype(np.int8)
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"], axis=1),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"], axis=1),
             helper.make_node("DequantizeLinear", ["wq", "ws"], ["wd"], axis=0),
             helper.make_node("Conv", ["xd", "wd"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("QuantizeLinear", ["r", "ys", "yz"], ["rq"]),
             helper.make_node("DequantizeLinear", ["rq", "ys", "yz"], ["y"])]
    inits = [numpy_helper.from_array(np.array([0.02, 0.03, 0.025], np.float32), "xs"),
             numpy_helper.from_array(np.array([0, 1, -2], np.int8), "xz"),
             numpy_helper.from_array(w, "wq"), numpy_helper.from_array(np.full([4], 0.01, np.float32), "ws"),
             _scalar("ys", 0.02), _scalar("yz", 0, np.uint8)]
    model = _model(nodes, CONV_INPUT, [4, 8, 8], inits, "per_channel_activation")
    _, report = _compare(model, CONV_INPUT, "per-channel activation scale (left float)", step=0.02,
                         expect={"QConv": 0, "FusedConv": 1})
    assert report.count == 0


def _float_match(model, x):
    plan, runner, report = _steps(model)
    assert report.count == 0
    assert not {"QMatMul", "QConv"} & {s.op_type for s in plan.steps}
    ref = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = runner.run({"x": torch.from_numpy(x)})[0].numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_gemm_alpha_stays_float():
    rng = np.random.default_rng(8)
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
             helper.make_node("DequantizeLinear", ["wq", "ws"], ["wd"]),
             helper.make_node("Gemm", ["xd", "wd"], ["y"], alpha=0.5, transB=1, name="gemm")]
    inits = [_scalar("xs", 0.02), _scalar("xz", 128, np.uint8), _scalar("ws", 0.01),
             numpy_helper.from_array(rng.integers(-127, 128, [3, 16]).astype(np.int8), "wq")]
    _float_match(_model(nodes, MLP_INPUT, [3], inits, "gemm_alpha"), _test_inputs(MLP_INPUT))


def test_overflowing_reduction_stays_float():
    # uint8 activations (no zero point: 0) times int8 weights of 127 over K = 70000: the int32 accumulator could
    # reach 70000 * 255 * 127 > 2**31, so no INT8 layer; the float MatMul runs it
    k = 70000
    w = np.full([k, 2], 127, np.int8)
    w[:, 1] = np.random.default_rng(8).integers(-127, 128, k)
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs"], ["xd"]),
             helper.make_node("DequantizeLinear", ["wq", "ws"], ["wd"]),
             helper.make_node("MatMul", ["xd", "wd"], ["y"], name="long")]
    inits = [_scalar("xs", 0.01), numpy_helper.from_array(w, "wq"), _scalar("ws", 1e-4)]
    x = np.abs(np.random.default_rng(9).standard_normal([4, k])).astype(np.float32)
    _float_match(_model(nodes, [k], [2], inits, "overflow"), x)


def test_onnxruntime_qdq_engine_end_to_end(tmp_path):
    """The user's path: greenrt build of a QDQ model, then InferenceSession on the engine."""
    from greenrt.build import BuildConfig, build_engine
    from greenrt.runtime.session import InferenceSession

    q = _quantize(tmp_path, convnet(), CONV_INPUT, quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                  per_channel=True)
    onnx.save(q, tmp_path / "q.onnx")
    build_engine(tmp_path / "q.onnx", tmp_path / "q.engine", BuildConfig(device="cpu"), log=lambda m: None,
                 samples=[{"x": _test_inputs(CONV_INPUT)[:8]}])
    sess = InferenceSession(str(tmp_path / "q.engine"))
    assert Counter(s.op_type for s in sess.plan.steps)["QConv"] == 2
    x = _test_inputs(CONV_INPUT, seed=12)
    ref = ort.InferenceSession(q.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = sess.run(None, {"x": x})[0]
    assert np.abs(got - ref).max() <= float(_initializer(q, "y_scale")) * (1 + 1e-6)
