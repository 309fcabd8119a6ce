import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (run on the GPU machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def make_mlp_model(batch="N", opset=17) -> onnx.ModelProto:
    """x[N,8] -> Gemm(W1,b1) -> Relu -> MatMul(W2) -> Add(b2) -> Softmax: a small real-valued graph."""
    r = np.random.default_rng(7)
    w1 = numpy_helper.from_array(r.standard_normal((16, 8)).astype(np.float32), "W1")
    b1 = numpy_helper.from_array(r.standard_normal(16).astype(np.float32), "b1")
    w2 = numpy_helper.from_array(r.standard_normal((16, 4)).astype(np.float32), "W2")
    b2 = numpy_helper.from_array(r.standard_normal(4).astype(np.float32), "b2")
    nodes = [
        helper.make_node("Gemm", ["x", "W1", "b1"], ["h"], name="fc1", transB=1),
        helper.make_node("Relu", ["h"], ["hr"], name="relu1"),
        helper.make_node("MatMul", ["hr", "W2"], ["m"], name="fc2"),
        helper.make_node("Add", ["m", "b2"], ["logits"], name="bias2"),
        helper.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 8])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [batch, 4])],
        initializer=[w1, b1, w2, b2],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


@pytest.fixture
def mlp_model():
    return make_mlp_model()


@pytest.fixture
def mlp_path(tmp_path, mlp_model):
    path = tmp_path / "mlp.onnx"
    onnx.save(mlp_model, path)
    return path


def timer_favouring(winner: str):
    """A tactic-stage timer (in place of the wall clock, for build/tactics.py's ``_timer``) under which ``winner``
    ("executor" or "inductor") is the faster for the engine as a whole: the executor is timed first. Layers'
    candidates (the CPU's linear tactics) all time 1 ms."""
    order = iter([2.0, 1.0] if winner == "inductor" else [1.0, 2.0])

    def timer(run, runs):
        run()
        return 1.0 if "_time_candidates" in run.__qualname__ else next(order)

    return lambda device: timer
