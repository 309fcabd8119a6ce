"""fp16 fallback on underflow: activations whose largest |x| sits under fp16's smallest normal stay fp32."""

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from greenrt.onnx.importer import load_model
from greenrt.build import observe_ranges
from greenrt.precision import PrecisionConfig, apply_precision
from greenrt.runtime.executor import Executor


def _model():
    nodes = [helper.make_node("Mul", ["x", "tiny"], ["a"], name="shrink"),
             helper.make_node("Relu", ["a"], ["b"], name="relu"),
             helper.make_node("Mul", ["b", "big"], ["y"], name="grow")]
    inits = [numpy_helper.from_array(np.array(1e-6, np.float32), "tiny"),
             numpy_helper.from_array(np.array(1e4, np.float32), "big")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 8])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _run(model, x):
    return Executor.from_model(model).run({"x": torch.from_numpy(x)})[0].float().numpy()


def test_underflowing_nodes_stay_fp32_and_the_answer_survives():
    x = np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32)
    expected = np.maximum(x * np.float32(1e-6), 0) * np.float32(1e4)
    scale = np.abs(expected).max()

    plain = load_model(_model())
    apply_precision(plain, PrecisionConfig("fp16", auto_fallback=False))
    # 1e-6-sized values are fp16 subnormals (steps of 6e-8): ~5% error, or zero
    assert np.abs(_run(plain, x) - expected).max() > 2e-2 * scale

    guarded = load_model(_model())
    report = apply_precision(guarded, PrecisionConfig("fp16"), observe_ranges(guarded, [{"x": x}]))
    assert report.precision_of("relu") == "fp32"
    assert any("under fp16's normal range" in n.reason for n in report.nodes)
    np.testing.assert_allclose(_run(guarded, x), expected, rtol=1e-2, atol=1e-2 * np.abs(expected).max())
