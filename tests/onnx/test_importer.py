"""Import: files, external data, opsets, unsupported ops, symbolic shapes; each bad input gives a clear error."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import greenrt
from greenrt.onnx.importer import MAX_OPSET, load_model
from tests.conftest import make_mlp_model


def test_symbolic_dims_survive_import(mlp_path):
    model = load_model(mlp_path)
    x = model.graph.inputs[0]
    assert str(x.shape[0]) == "N" and x.shape[1] == 8
    # shape inference filled intermediate values, keeping the symbol
    h = next(v for n in model.graph for v in n.outputs if v.name == "h")
    assert h.shape is not None and str(h.shape[0]) == "N" and h.shape[1] == 16


def test_missing_file_is_clear(tmp_path):
    with pytest.raises(greenrt.ModelLoadError, match="no such file"):
        greenrt.InferenceSession(tmp_path / "nope.onnx")


def test_truncated_file_is_clear(tmp_path, mlp_model):
    data = mlp_model.SerializeToString()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(greenrt.ModelLoadError, match=r"cut\.onnx.*not a valid ONNX model"):
        greenrt.InferenceSession(path)


def test_non_onnx_file_is_clear(tmp_path):
    path = tmp_path / "notes.onnx"
    path.write_text("this is a text file, not a protobuf\n" * 20)
    with pytest.raises(greenrt.ModelLoadError, match="notes.onnx"):
        greenrt.InferenceSession(path)


def test_external_data_loads_and_runs(tmp_path, rng):
    model = make_mlp_model()
    path = tmp_path / "ext.onnx"
    onnx.save(model, path, save_as_external_data=True, location="ext.onnx.data", size_threshold=0)
    assert (tmp_path / "ext.onnx.data").is_file()
    x = rng.standard_normal((3, 8)).astype(np.float32)
    ours = greenrt.InferenceSession(path).run(None, {"x": x})[0]
    import onnxruntime as ort

    ref = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6)


def test_missing_external_data_names_tensor_and_file(tmp_path):
    path = tmp_path / "ext.onnx"
    onnx.save(make_mlp_model(), path, save_as_external_data=True, location="w.data", size_threshold=0)
    (tmp_path / "w.data").unlink()
    with pytest.raises(greenrt.ModelLoadError, match=r"(?s)external data.*'W1'.*w\.data"):
        greenrt.InferenceSession(path)


def test_opset_newer_than_supported(tmp_path):
    model = make_mlp_model()
    model.opset_import[0].version = MAX_OPSET + 1
    with pytest.raises(greenrt.UnsupportedModelError, match=f"opset {MAX_OPSET + 1} is newer"):
        greenrt.InferenceSession(model)


def _graph_with(nodes, opsets):
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    return helper.make_model(graph, opset_imports=opsets)


def test_all_unsupported_nodes_listed_at_once():
    nodes = [
        helper.make_node("FusedGemm", ["x"], ["a"], name="contrib1", domain="com.microsoft"),
        helper.make_node("Relu", ["a"], ["b"], name="fine"),
        helper.make_node("NoSuchOp", ["b"], ["y"], name="bogus"),
    ]
    model = _graph_with(nodes, [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    with pytest.raises(greenrt.UnsupportedModelError) as info:
        greenrt.InferenceSession(model)
    msg = str(info.value)
    assert "2 node(s)" in msg
    assert "'contrib1'" in msg and "com.microsoft" in msg
    assert "'bogus'" in msg and "NoSuchOp" in msg
    assert "'fine'" not in msg
    assert len(info.value.problems) == 2


def test_onnxruntime_quantized_ops_are_refused_with_the_qdq_way_out():
    """com.microsoft's QLinear* ops are onnxruntime's own quantized format (the INT8 issue keeps them out of scope):
    the refusal names the node and says how to quantize for greenrt instead."""
    nodes = [helper.make_node("QLinearAdd", ["x"] * 8, ["y"], name="qadd", domain="com.microsoft")]
    model = _graph_with(nodes, [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    with pytest.raises(greenrt.UnsupportedModelError, match="'qadd'.*onnxruntime's own quantized op.*QDQ"):
        greenrt.InferenceSession(model)


def test_unsupported_dtype_is_named():
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.INT4, [4])],
        [helper.make_tensor_value_info("y", TensorProto.INT4, [4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    with pytest.raises(greenrt.UnsupportedModelError, match=r"'x'.*int4"):
        greenrt.InferenceSession(model)
