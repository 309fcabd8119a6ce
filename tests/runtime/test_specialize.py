"""Shape specialization: shape-only steps run once per input shape, results equal the plain run."""

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from greenrt.onnx.importer import load_model
from greenrt.runtime.executor import Executor
from greenrt.runtime.specialize import ShapeSpecializer


def _model():
    # y = Reshape(Relu(x), Concat(Shape(x)[0:1], [-1])) * w : the target shape depends on x's shape only
    nodes = [
        helper.make_node("Shape", ["x"], ["s"], name="shape"),
        helper.make_node("Slice", ["s", "zero", "one"], ["s0"], name="slice"),
        helper.make_node("Concat", ["s0", "minus1"], ["target"], axis=0, name="concat"),
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("Reshape", ["r", "target"], ["flat"], name="reshape"),
        helper.make_node("Mul", ["flat", "w"], ["y"], name="scale"),
    ]
    inits = [numpy_helper.from_array(np.array(v, np.int64), n) for n, v in (("zero", [0]), ("one", [1]), ("minus1", [-1]))]
    inits.append(numpy_helper.from_array(np.random.default_rng(0).standard_normal(12).astype(np.float32), "w"))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", 3, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", 12])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_static_steps_run_once_per_shape_and_results_match():
    executor = Executor.from_model(load_model(_model()))
    spec = ShapeSpecializer(executor, max_shapes=2)
    assert {b.step.name for b in spec.static_steps} == {"shape", "slice", "concat"}
    assert {b.step.name for b in spec.data_steps} == {"relu", "reshape", "scale"}
    rng = np.random.default_rng(1)
    for batch in (2, 5, 2, 7, 2):
        x = torch.from_numpy(rng.standard_normal((batch, 3, 4)).astype(np.float32))
        expected = executor.run({"x": x})[0]
        got = spec.run({"x": x})[0]
        assert torch.equal(got, expected) and got.shape == (batch, 12)
    assert len(spec._cache) == 2  # LRU bound: the two most recent shapes (7 and 2)
