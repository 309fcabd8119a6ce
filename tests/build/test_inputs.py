"""Random inputs: dtypes respected, made-up dims recorded, ids kept inside the tables they index."""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import greenrt
from greenrt.build.inputs import index_bounds, random_feeds
from greenrt.onnx.dtypes import BFLOAT16, BOOL, FLOAT, FLOAT16, INT32, INT64, UINT8
from greenrt.runtime.session import NodeArg


def test_ids_through_a_transpose_stay_inside_the_table(tmp_path):
    """g2p-id's tiny_pron transposes its letter ids before the embedding Gather: the bound must follow it."""
    table = numpy_helper.from_array(np.random.default_rng(0).standard_normal((29, 4)).astype(np.float32), "emb")
    graph = helper.make_graph(
        [helper.make_node("Transpose", ["text"], ["t"], perm=[1, 0]),
         helper.make_node("Gather", ["emb", "t"], ["y"])], "g",
        [helper.make_tensor_value_info("text", TensorProto.INT64, ["N", "T"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["T", "N", 4])], [table])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, tmp_path / "g.onnx")
    sess = greenrt.InferenceSession(tmp_path / "g.onnx")
    bounds = index_bounds(sess.plan, sess.executor.constants)
    assert bounds == {"text": 29}
    feeds = random_feeds(sess.get_inputs(), {"text": [3, 50]}, int_bounds=bounds)
    assert feeds.arrays["text"].max() < 29 and feeds.made_up == {}
    sess.run(None, feeds.arrays)


def test_made_up_dims_are_recorded_and_symbols_agree():
    args = [NodeArg("x", ["N", 3, "H", "W"], "", FLOAT), NodeArg("mask", ["N", "L"], "", BOOL),
            NodeArg("ids", [2, "L"], "", INT64)]
    feeds = random_feeds(args, {"ids": [2, 7]})
    assert feeds.arrays["x"].shape == (1, 3, 1, 1) and feeds.arrays["mask"].shape == (1, 7)
    assert set(feeds.made_up) == {"x", "mask"}
    assert "x: ['N', 3, 'H', 'W'] -> 1x3x1x1" in feeds.describe_made_up()


def test_every_dtype_draws_without_onnx():
    args = [NodeArg(f"i{t}", [4, 5], "", t) for t in (FLOAT, FLOAT16, BFLOAT16, INT32, INT64, UINT8, BOOL)]
    arrays = random_feeds(args, {}, seed=3).arrays
    for a in args:
        v = arrays[a.name]
        assert v.shape == (4, 5)
        assert np.unique(np.asarray(v, dtype=np.float64)).size > 1, a.name  # never constant
    assert arrays[f"i{FLOAT16}"].dtype == np.float16 and arrays[f"i{UINT8}"].dtype == np.uint8
