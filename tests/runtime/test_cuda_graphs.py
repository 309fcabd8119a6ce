"""CUDA graphs and control flow: an If whose condition comes from shapes is captured (its condition is read from
the host copy the shape specializer keeps); an If on data runs eagerly, said once, without a failed capture that
would leave the CUDA context in a bad state for the next shape."""

import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import greenrt
from greenrt.build import BuildConfig, build_engine
from greenrt.tools.compare import run_onnxruntime


def _if_model(path, on_data: bool):
    """y = Relu(x) if cond else Neg(x); cond = N > 1 (shapes only) or sum(x) > 0 (data)."""
    then_g = helper.make_graph([helper.make_node("Relu", ["x"], ["t"])], "then", [],
                               [helper.make_tensor_value_info("t", TensorProto.FLOAT, ["N", 4])])
    else_g = helper.make_graph([helper.make_node("Neg", ["x"], ["e"])], "else", [],
                               [helper.make_tensor_value_info("e", TensorProto.FLOAT, ["N", 4])])
    one = helper.make_tensor("one", TensorProto.INT64, [], [1])
    zero = helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])
    if on_data:
        cond_nodes = [helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
                      helper.make_node("Greater", ["s", "zero"], ["cond"])]
    else:
        idx = helper.make_tensor("idx", TensorProto.INT64, [], [0])
        cond_nodes = [helper.make_node("Shape", ["x"], ["shape"]),
                      helper.make_node("Gather", ["shape", "idx"], ["n"]),
                      helper.make_node("Greater", ["n", "one"], ["cond"])]
    inits = [one, zero] + ([] if on_data else [idx])
    graph = helper.make_graph(cond_nodes + [helper.make_node("If", ["cond"], ["y"], then_branch=then_g,
                                                             else_branch=else_g)], "if",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


@pytest.mark.parametrize("on_data", [False, True])
def test_if_models_match_onnxruntime_on_cpu(on_data, tmp_path):
    path = _if_model(tmp_path / "if.onnx", on_data)
    build_engine(path, tmp_path / "if.engine", BuildConfig(device="cpu"), log=lambda m: None)
    sess = greenrt.InferenceSession(tmp_path / "if.engine")
    for n, sign in ((1, 1.0), (3, 1.0), (3, -1.0)):
        x = (np.random.default_rng(n).standard_normal((n, 4)).astype(np.float32) + 2 * sign).astype(np.float32)
        np.testing.assert_allclose(sess.run(None, {"x": x})[0], run_onnxruntime(str(path), {"x": x})[0], rtol=1e-6)


@pytest.mark.gpu
@pytest.mark.parametrize("on_data", [False, True])
def test_if_on_shapes_is_captured_and_if_on_data_runs_eagerly(on_data, tmp_path):
    path = _if_model(tmp_path / "if.onnx", on_data)
    build_engine(path, tmp_path / "if.engine", BuildConfig(device="cuda"), log=lambda m: None)
    sess = greenrt.InferenceSession(tmp_path / "if.engine")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for n, sign in ((1, 1.0), (3, 1.0), (3, -1.0), (5, 1.0)):
            x = np.random.default_rng(n).standard_normal((n, 4)).astype(np.float32) + 2 * sign
            np.testing.assert_allclose(sess.run(None, {"x": x})[0], run_onnxruntime(str(path), {"x": x})[0],
                                       rtol=1e-6)
    messages = [str(w.message) for w in caught if "CUDA graph" in str(w.message)]
    if on_data:
        assert sess.runner.captures == 0
        assert len(messages) == 1 and "reads a device value on the host" in messages[0]
    else:
        assert sess.runner.captures == 3 and messages == []  # N = 1, 3, 5
