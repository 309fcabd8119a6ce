"""The tiny models the campaigns mutate (a few nodes each, so a case runs in milliseconds), built with onnx.helper
from fixed seeds: the same bytes every time, so a saved recipe replays on the same base.

    BASES["mlp"]()          -> ModelProto            (Gemm, Relu, MatMul, Add, Softmax; dynamic batch)
    feeds_for("mlp", rng)   -> a valid feed for it    (fresh random values)
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def _model(graph: onnx.GraphProto, opset: int = OPSET) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="greenrt-fuzz")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _weights(seed: int, **shapes) -> list[onnx.TensorProto]:
    r = np.random.default_rng(seed)
    return [numpy_helper.from_array(r.standard_normal(s).astype(np.float32), name) for name, s in shapes.items()]


def mlp() -> onnx.ModelProto:
    """x[N,8] -> Gemm -> Relu -> MatMul -> Add -> Softmax -> probs[N,4]."""
    nodes = [
        helper.make_node("Gemm", ["x", "W1", "b1"], ["h"], name="fc1", transB=1),
        helper.make_node("Relu", ["h"], ["hr"], name="relu1"),
        helper.make_node("MatMul", ["hr", "W2"], ["m"], name="fc2"),
        helper.make_node("Add", ["m", "b2"], ["logits"], name="bias2"),
        helper.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=-1),
    ]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
                              [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 4])],
                              initializer=_weights(7, W1=(16, 8), b1=(16,), W2=(16, 4), b2=(4,)))
    return _model(graph)


def conv() -> onnx.ModelProto:
    """x[1,3,8,8] -> Conv -> BatchNormalization -> Relu -> MaxPool -> Reshape -> MatMul -> y[1,5]."""
    r = np.random.default_rng(3)
    inits = _weights(11, W=(4, 3, 3, 3), B=(4,), scale=(4,), bias=(4,), mean=(4,), W2=(64, 5))
    inits.append(numpy_helper.from_array((r.random(4) + 0.5).astype(np.float32), "var"))
    inits.append(numpy_helper.from_array(np.array([-1, 64], np.int64), "flat"))
    nodes = [
        helper.make_node("Conv", ["x", "W", "B"], ["c"], name="conv", pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("BatchNormalization", ["c", "scale", "bias", "mean", "var"], ["bn"], name="bn"),
        helper.make_node("Relu", ["bn"], ["r"], name="relu"),
        helper.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Reshape", ["p", "flat"], ["f"], name="flatten"),
        helper.make_node("MatMul", ["f", "W2"], ["y"], name="fc"),
    ]
    graph = helper.make_graph(nodes, "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])], initializer=inits)
    return _model(graph)


def control() -> onnx.ModelProto:
    """x[N,4]: If (sum > 0: Relu(x), else: Neg(x)), then a Loop adding 1 N times, and a Scan summing rows."""
    f = TensorProto.FLOAT
    then_g = helper.make_graph([helper.make_node("Relu", ["x"], ["t"], name="then_relu")], "then", [],
                               [helper.make_tensor_value_info("t", f, ["N", 4])])
    else_g = helper.make_graph([helper.make_node("Neg", ["x"], ["e"], name="else_neg")], "else", [],
                               [helper.make_tensor_value_info("e", f, ["N", 4])])
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"], name="body_cond"),
         helper.make_node("Add", ["v_in", "one"], ["v_out"], name="body_add")],
        "loop_body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_in", f, ["N", 4])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_out", f, ["N", 4])])
    scan_body = helper.make_graph(
        [helper.make_node("Add", ["acc_in", "row"], ["acc_out"], name="scan_add"),
         helper.make_node("Identity", ["acc_out"], ["row_out"], name="scan_id")],
        "scan_body",
        [helper.make_tensor_value_info("acc_in", f, [4]), helper.make_tensor_value_info("row", f, [4])],
        [helper.make_tensor_value_info("acc_out", f, [4]), helper.make_tensor_value_info("row_out", f, [4])])
    # the trip count is the batch size, not a weight: a tampered weight must not turn the model into one that asks
    # for 2^18 iterations (that is work the model asks for, not a hang of greenrt's)
    inits = [numpy_helper.from_array(np.array(0, np.int64), "first"),
             numpy_helper.from_array(np.array(True), "keep_going"),
             numpy_helper.from_array(np.float32(1.0).reshape(()), "one"),
             numpy_helper.from_array(np.zeros(4, np.float32), "acc0"),
             numpy_helper.from_array(np.float32(0.0).reshape(()), "zero")]
    nodes = [
        helper.make_node("ReduceSum", ["x"], ["s"], name="sum", keepdims=0),
        helper.make_node("Greater", ["s", "zero"], ["positive"], name="positive"),
        helper.make_node("If", ["positive"], ["y"], name="branch", then_branch=then_g, else_branch=else_g),
        helper.make_node("Shape", ["x"], ["x_shape"], name="x_shape"),
        helper.make_node("Gather", ["x_shape", "first"], ["trips"], name="batch", axis=0),
        helper.make_node("Loop", ["trips", "keep_going", "y"], ["looped"], name="loop", body=body),
        helper.make_node("Scan", ["acc0", "x"], ["total", "rows"], name="scan", body=scan_body, num_scan_inputs=1),
    ]
    graph = helper.make_graph(nodes, "control", [helper.make_tensor_value_info("x", f, ["N", 4])],
                              [helper.make_tensor_value_info("looped", f, ["N", 4]),
                               helper.make_tensor_value_info("total", f, [4]),
                               helper.make_tensor_value_info("rows", f, ["N", 4])], initializer=inits)
    return _model(graph)


def gather() -> onnx.ModelProto:
    """ids[N,5] int64 -> Gather(E[20,6]) -> ReduceMean over the 5 -> Reshape to Shape(ids)[0] x 6 -> out[N,6]."""
    inits = _weights(5, E=(20, 6))
    inits += [numpy_helper.from_array(np.array([1], np.int64), "axes"),
              numpy_helper.from_array(np.array([0], np.int64), "start"),
              numpy_helper.from_array(np.array([1], np.int64), "end"),
              numpy_helper.from_array(np.array([6], np.int64), "six")]
    nodes = [
        helper.make_node("Gather", ["E", "ids"], ["emb"], name="embed", axis=0),
        helper.make_node("ReduceMean", ["emb", "axes"], ["mean"], name="mean", keepdims=0),
        helper.make_node("Shape", ["ids"], ["ids_shape"], name="shape"),
        helper.make_node("Slice", ["ids_shape", "start", "end"], ["n"], name="slice"),
        helper.make_node("Concat", ["n", "six"], ["out_shape"], name="concat", axis=0),
        helper.make_node("Reshape", ["mean", "out_shape"], ["out"], name="reshape"),
    ]
    graph = helper.make_graph(nodes, "gather", [helper.make_tensor_value_info("ids", TensorProto.INT64, ["N", 5])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 6])], initializer=inits)
    return _model(graph, opset=18)


def external() -> onnx.ModelProto:
    """mlp with every initializer in the external data file model.onnx.data (its bytes: ``external_data_bytes``)."""
    return _external()[0]


def external_data_bytes() -> bytes:
    return _external()[1]


@functools.lru_cache(maxsize=1)
def _external() -> tuple[onnx.ModelProto, bytes]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        onnx.save_model(mlp(), path, save_as_external_data=True, all_tensors_to_one_file=True,
                        location="model.onnx.data", size_threshold=0)
        return onnx.load(path, load_external_data=False), (Path(tmp) / "model.onnx.data").read_bytes()


BASES = {"mlp": mlp, "conv": conv, "control": control, "gather": gather, "external": external}


def save(model: onnx.ModelProto, path) -> None:
    """The model's bytes to ``path`` (external data references kept as they are, not resolved)."""
    with open(path, "wb") as f:
        f.write(model.SerializeToString())


def feeds_for(name: str, rng: np.random.Generator, batch: int = 2) -> dict[str, np.ndarray]:
    """A valid feed for the base ``name`` with fresh random values."""
    if name in ("mlp", "external"):
        return {"x": rng.standard_normal((batch, 8)).astype(np.float32)}
    if name == "conv":
        return {"x": rng.standard_normal((1, 3, 8, 8)).astype(np.float32)}
    if name == "control":
        return {"x": rng.standard_normal((batch, 4)).astype(np.float32)}
    if name == "gather":
        return {"ids": rng.integers(0, 20, (batch, 5)).astype(np.int64)}
    raise KeyError(name)
