"""float8e8m0 (ONNX elem type 24, torch.float8_e8m0fnu): the dtype mapping, Cast with every round_mode and saturate,
and e8m0 scales in QuantizeLinear / DequantizeLinear, each checked bit for bit against onnx.reference."""

import ml_dtypes
import numpy as np
import pytest
import torch
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

import greenrt
from greenrt.onnx.dtypes import FLOAT8E8M0, ONNX_TO_TORCH, numpy_to_torch, torch_to_numpy

pytestmark = pytest.mark.skipif(not hasattr(torch, "float8_e8m0fnu"), reason="torch < 2.7 has no float8_e8m0fnu")

E8M0 = np.dtype(ml_dtypes.float8_e8m0fnu)

# Every kind of float32 the rounding treats differently: zeros, subnormals, exact powers of two, mantissas below,
# at and above one half, the top binade (saturation), inf and NaN, negatives (the sign is dropped).
EDGES = np.array([
    0.0, -0.0, 1e-45, 1e-40, 2.0 ** -127 * 1.5, 2.0 ** -126, 2.0 ** -126 * 1.5, 0.75, 1.0, 1.25, 1.5, 1.75, 3.0,
    2.0 ** 127, 2.0 ** 127 * 1.25, 2.0 ** 127 * 1.5, np.finfo(np.float32).max, np.inf, -np.inf, np.nan,
    -1.0, -3.0, -0.1, 1.5 + 2.0 ** -22, 1.5 - 2.0 ** -23, 0.1, 100.0, 1e30,
], np.float32)


def _values() -> np.ndarray:
    rng = np.random.default_rng(0)
    spread = (rng.standard_normal(200) * 2.0 ** rng.integers(-130, 128, 200)).astype(np.float32)
    return np.concatenate([EDGES, spread])


def _run_both(model, feeds):
    with np.errstate(over="ignore"):  # the reference narrows float64 to float32 first: 2^200 -> inf
        (want,) = ReferenceEvaluator(model).run(None, feeds)
    (got,) = greenrt.InferenceSession(model).run(None, feeds)
    return np.asarray(want), np.asarray(got)


def _cast_model(src: int, to: int, opset: int = 25, **attrs):
    node = helper.make_node("Cast", ["x"], ["y"], to=to, **attrs)
    graph = helper.make_graph([node], "cast", [helper.make_tensor_value_info("x", src, None)],
                              [helper.make_tensor_value_info("y", to, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_elem_type_24_maps_to_torch_float8_e8m0fnu_and_round_trips_every_bit_pattern():
    assert ONNX_TO_TORCH[FLOAT8E8M0] is torch.float8_e8m0fnu
    every = np.arange(256, dtype=np.uint8).view(E8M0)
    t = numpy_to_torch(every)
    assert t.dtype == torch.float8_e8m0fnu
    back = torch_to_numpy(t)
    assert back.dtype == E8M0 and np.array_equal(back.view(np.uint8), every.view(np.uint8))
    # torch and ml_dtypes agree on what each pattern means (0x00 = 2^-127, 0xFF = NaN)
    np.testing.assert_array_equal(t.to(torch.float32).numpy(), every.astype(np.float32))


@pytest.mark.parametrize("round_mode", ["up", "down", "nearest"])
@pytest.mark.parametrize("saturate", [1, 0])
def test_cast_float_to_e8m0_matches_onnx_bit_for_bit(round_mode, saturate):
    model = _cast_model(TensorProto.FLOAT, TensorProto.FLOAT8E8M0, round_mode=round_mode, saturate=saturate)
    want, got = _run_both(model, {"x": _values()})
    assert got.dtype == E8M0
    np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))


def test_round_mode_actually_changes_the_result():
    # 1.5: up -> 2, down -> 1, nearest (ties up) -> 2; 1.25: nearest -> 1; 2^127*1.5 saturates to 2^127
    x = np.array([1.5, 1.25, 2.0 ** 127 * 1.5], np.float32)
    out = {}
    for mode in ("up", "down", "nearest"):
        sess = greenrt.InferenceSession(_cast_model(TensorProto.FLOAT, TensorProto.FLOAT8E8M0, round_mode=mode))
        out[mode] = sess.run(None, {"x": x})[0].astype(np.float32).tolist()
    assert out == {"up": [2.0, 2.0, 2.0 ** 127], "down": [1.0, 1.0, 2.0 ** 127], "nearest": [2.0, 1.0, 2.0 ** 127]}


@pytest.mark.parametrize("src, values", [
    (TensorProto.FLOAT16, EDGES[np.isfinite(EDGES) & (np.abs(EDGES) < 6e4)].astype(np.float16)),
    (TensorProto.DOUBLE, np.array([1.5, 3.0000001, 2.0 ** 200, 1e-300, 0.3], np.float64)),
    (TensorProto.INT32, np.array([0, 1, 3, -4, 1000, 2 ** 30 + 1], np.int32)),
])
def test_cast_other_types_to_e8m0_matches_onnx(src, values):
    model = _cast_model(src, TensorProto.FLOAT8E8M0)
    want, got = _run_both(model, {"x": values})
    np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))


@pytest.mark.parametrize("to", [TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE])
def test_cast_from_e8m0_matches_onnx(to):
    every = np.arange(256, dtype=np.uint8).view(E8M0)
    want, got = _run_both(_cast_model(TensorProto.FLOAT8E8M0, to), {"x": every})
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


def _qdq_model(op: str, x_type: int, y_type: int, scale_shape, **attrs):
    node = helper.make_node(op, ["x", "scale"], ["y"], **attrs)
    graph = helper.make_graph(
        [node], op, [helper.make_tensor_value_info("x", x_type, None),
                     helper.make_tensor_value_info("scale", TensorProto.FLOAT8E8M0, scale_shape)],
        [helper.make_tensor_value_info("y", y_type, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 25)])


def _scales(shape) -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(120, 135, shape).astype(np.uint8).view(E8M0)  # 2^-7 .. 2^7


@pytest.mark.parametrize("out_type", [TensorProto.INT8, TensorProto.FLOAT8E4M3FN])
def test_quantize_linear_with_blocked_e8m0_scale_matches_onnx(out_type):
    # MX-style: one power-of-two scale per block of 32 along the last axis
    x = (np.random.default_rng(2).standard_normal((2, 64)) * 30).astype(np.float32)
    model = _qdq_model("QuantizeLinear", TensorProto.FLOAT, out_type, [2, 2], axis=1, block_size=32,
                       output_dtype=out_type)
    want, got = _run_both(model, {"x": x, "scale": _scales((2, 2))})
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))


def test_dequantize_linear_with_e8m0_scale_matches_onnx():
    x = np.random.default_rng(3).integers(-128, 128, (3, 4)).astype(np.int8)
    model = _qdq_model("DequantizeLinear", TensorProto.INT8, TensorProto.FLOAT, [4], axis=1,
                       output_dtype=TensorProto.FLOAT)
    want, got = _run_both(model, {"x": x, "scale": _scales((4,))})
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)
