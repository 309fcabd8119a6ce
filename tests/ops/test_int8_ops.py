"""The INT8 layers (ops/int8.py) against onnx.reference: the integer accumulator exactly (ConvInteger /
MatMulInteger), the requantizing epilogue within one step of QLinearConv's, and clear refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

from greenrt.ops.int8 import FLOAT, INT8, UINT8, QConv, QMatMul, conv_accumulator, matmul_accumulator

R = np.random.default_rng(7)


def _run_reference(op: str, inputs: dict[str, np.ndarray], out_type: int, **attrs) -> np.ndarray:
    names = list(inputs)
    node = helper.make_node(op, names, ["y"], **attrs)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
                      for n, a in inputs.items()], [helper.make_tensor_value_info("y", out_type, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    return ReferenceEvaluator(model).run(None, inputs)[0]


def _ints(shape, dtype):
    info = np.iinfo(dtype)
    return R.integers(info.min, info.max + 1, size=shape).astype(dtype)


@pytest.mark.parametrize("x_dtype,group,stride", [(np.int8, 1, 1), (np.uint8, 1, 2), (np.int8, 4, 1)])
def test_qconv_accumulator_is_conv_integer_exactly(x_dtype, group, stride):
    # K = 16/group * 9 <= 144 products of |x - zp| <= 255 and |w| <= 128: every accumulator is an exact float32 too
    x = _ints((2, 16, 9, 9), x_dtype)
    w = _ints((8, 16 // group, 3, 3), np.int8)
    x_zp = np.array(128 if x_dtype == np.uint8 else -3, dtype=x_dtype)
    want = _run_reference("ConvInteger", {"x": x, "w": w, "x_zero_point": x_zp}, TensorProto.INT32,
                          pads=[1, 1, 1, 1], strides=[stride, stride], group=group)
    got = QConv(torch.from_numpy(x), torch.from_numpy(w), torch.ones(8), x_scale=1.0, x_zero_point=int(x_zp),
                pads=[1, 1, 1, 1], strides=[stride, stride], group=group, out_dtype=FLOAT)
    assert np.abs(want).max() > 1000  # not a trivially small accumulator
    np.testing.assert_array_equal(got.numpy(), want.astype(np.float32))


@pytest.mark.parametrize("trans_w", [0, 1])
def test_qmatmul_accumulator_is_matmul_integer_exactly(trans_w):
    a = _ints((3, 5, 64), np.uint8)
    w = _ints((64, 24), np.int8)
    want = _run_reference("MatMulInteger", {"a": a, "b": w, "a_zero_point": np.array(100, np.uint8)},
                          TensorProto.INT32)
    w_arg = np.ascontiguousarray(w.T) if trans_w else w
    got = QMatMul(torch.from_numpy(a), torch.from_numpy(w_arg), torch.ones(24), a_scale=1.0, a_zero_point=100,
                  trans_w=trans_w)
    np.testing.assert_array_equal(got.numpy(), want.astype(np.float32))


def test_large_reductions_stay_exact():
    # K = 4608 (a 3x3 conv over 512 channels) and 8192 (a GEMM): accumulators far past float32's exact integers
    # (2**24); every one must equal the int64 sum
    x = _ints((1, 512, 5, 5), np.int8)
    w = _ints((4, 512, 3, 3), np.int8)
    got = conv_accumulator(torch.from_numpy(x), torch.from_numpy(w), x_zero_point=0, pads=[1, 1, 1, 1])
    xp = np.pad(x.astype(np.int64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    want = np.zeros((1, 4, 5, 5), np.int64)
    for i in range(5):
        for j in range(5):
            want[0, :, i, j] = np.einsum("chw,ochw->o", xp[0, :, i:i + 3, j:j + 3], w.astype(np.int64))
    np.testing.assert_array_equal(got.numpy().astype(np.int64), want)
    full = np.full((1, 8192), 127, np.int8), np.full((8192, 2), -127, np.int8)
    full[0][0, 0], full[1][0, 1] = 1, -126  # the two columns' sums differ by 1: invisible to float32 at this size
    acc = matmul_accumulator(torch.from_numpy(full[0]), torch.from_numpy(full[1]))
    big = -8191 * 127 * 127 - 127
    assert acc.tolist() == [[big, big + 1]]
    assert np.float32(big) == np.float32(big + 1)


def test_qconv_requantize_matches_qlinearconv_within_one_step():
    x = _ints((2, 8, 10, 10), np.uint8)
    w = _ints((16, 8, 3, 3), np.int8)
    x_scale, y_scale = np.float32(0.02), np.float32(0.35)
    w_scale = (R.random(16).astype(np.float32) * 0.01 + 0.002)
    bias = R.integers(-2000, 2000, size=16).astype(np.int32)
    want = _run_reference("QLinearConv", {
        "x": x, "x_scale": x_scale, "x_zero_point": np.uint8(120), "w": w, "w_scale": w_scale,
        "w_zero_point": np.zeros(16, np.int8), "y_scale": y_scale, "y_zero_point": np.uint8(128), "b": bias},
        TensorProto.UINT8, pads=[1, 1, 1, 1])
    got = QConv(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(w_scale), torch.from_numpy(bias),
                x_scale=float(x_scale), x_zero_point=120, y_scale=float(y_scale), y_zero_point=128,
                out_dtype=UINT8, pads=[1, 1, 1, 1]).numpy()
    diff = np.abs(got.astype(np.int32) - want.astype(np.int32))
    assert want.std() > 10 and diff.max() <= 1 and (diff == 0).mean() > 0.99


def test_epilogue_bias_residual_activation_and_int8_output():
    x = _ints((2, 4, 6, 6), np.int8)
    w = _ints((4, 4, 1, 1), np.int8)
    b = R.standard_normal(4).astype(np.float32)
    z = _ints((2, 4, 6, 6), np.int8)
    w_scale = np.full(4, 0.01, np.float32)
    got = QConv(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(w_scale), torch.from_numpy(b),
                torch.from_numpy(z), x_scale=0.05, z_scale=0.1, activation="Relu", y_scale=0.2,
                out_dtype=INT8).numpy()
    acc = np.einsum("nchw,oc->nohw", x.astype(np.float64), w[:, :, 0, 0].astype(np.float64))
    y = np.maximum(acc * 0.05 * 0.01 + b.reshape(1, -1, 1, 1) + z * 0.1, 0)
    want = np.clip(np.rint(y / 0.2), -128, 127)
    assert got.dtype == np.int8 and want.max() > 20
    assert np.abs(got - want).max() <= 1 and (got == want).mean() > 0.99


def test_float_inputs_and_bad_scales_are_refused_with_the_tensor_named():
    w = torch.from_numpy(_ints((4, 4, 1, 1), np.int8))
    with pytest.raises(TypeError, match="QConv's input X must be int8, uint8 or float8e4m3fn"):
        QConv(torch.randn(1, 4, 2, 2), w, torch.ones(4), x_scale=1.0)
    x = torch.from_numpy(_ints((1, 4, 2, 2), np.int8))
    with pytest.raises(ValueError, match="y_scale > 0"):
        QConv(x, w, torch.ones(4), x_scale=1.0, out_dtype=INT8)
    with pytest.raises(ValueError, match="W_scale must be > 0"):
        QConv(x, w, torch.zeros(4), x_scale=1.0)


def test_qgather_is_gather_of_the_dequantized_table():
    from greenrt.ops.int8 import QGather

    table = _ints((50, 8), np.int8)
    scale = (R.random(50) * 0.1 + 0.01).astype(np.float32)
    idx = np.array([[0, 49, -1], [7, 7, -50]], dtype=np.int64)
    want = _run_reference("Gather", {"data": table.astype(np.float32) * scale[:, None], "indices": idx},
                          TensorProto.FLOAT)
    got = QGather(torch.from_numpy(table), torch.from_numpy(scale), torch.from_numpy(idx)).numpy()
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.int8])
def test_max_pool_of_8_bit_integers_is_onnx_maxpool(device, dtype):
    """The INT8 engines hand 8-bit tensors through MaxPool (precision/int8.py): the same values as onnx.reference,
    in the same type, on the CPU and on the GPU (computed there in float16, exact for 8-bit integers)."""
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs a GPU")
    from greenrt.ops.pool import MaxPool

    low, high = (0, 256) if dtype == torch.uint8 else (-128, 128)
    x = torch.randint(low, high, (2, 4, 9, 9), generator=torch.Generator().manual_seed(4), dtype=dtype)
    attrs = dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    got = MaxPool(x.to(device), **attrs)
    node = helper.make_node("MaxPool", ["x"], ["y"], **attrs)
    onnx_type = TensorProto.UINT8 if dtype == torch.uint8 else TensorProto.INT8
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", onnx_type, None)],
                              [helper.make_tensor_value_info("y", onnx_type, None)])
    want = ReferenceEvaluator(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])).run(
        None, {"x": x.numpy()})[0]
    assert got.dtype == dtype and np.array_equal(got.cpu().numpy(), want) and int(np.abs(want).max()) > 0


def test_fp8_layers_are_the_float64_sums_of_their_float8_products():
    """QConv / QMatMul on float8 e4m3 inputs and weights (--fp8): every product of two e4m3 values is exact in float64
    and so is their sum at these sizes, so the layer is dequantize -> float64 conv/GEMM -> the float32 epilogue ->
    float8 out (nearest even, saturated at 448), computed here by hand."""
    from greenrt.ops.int8 import FLOAT8E4M3FN

    g = torch.Generator().manual_seed(8)
    x = (torch.randn(2, 8, 6, 6, generator=g) * 100).to(torch.float8_e4m3fn)
    w = (torch.randn(4, 8, 3, 3, generator=g) * 100).to(torch.float8_e4m3fn)
    w_scale = torch.rand(4, generator=g) * 1e-3 + 1e-4
    b = torch.randn(4, generator=g)
    y = QConv(x, w, w_scale, b, x_scale=0.01, pads=[1, 1, 1, 1], activation="Relu", out_dtype=FLOAT8E4M3FN,
              y_scale=0.004)
    acc = torch.nn.functional.conv2d(x.double(), w.double(), padding=1)
    s = torch.tensor(0.01, dtype=torch.float32) * w_scale
    want = torch.relu(acc.float() * s.reshape(1, -1, 1, 1) + b.reshape(1, -1, 1, 1))
    want = (want * torch.tensor(1 / 0.004, dtype=torch.float32)).clamp(-448, 448).to(torch.float8_e4m3fn)
    assert y.dtype == torch.float8_e4m3fn and torch.equal(y.float(), want.float())
    assert float(want.float().abs().max()) > 1 and bool((want.float() == 448).any())  # saturation reached

    a = (torch.randn(5, 16, generator=g) * 50).to(torch.float8_e4m3fn)
    wm = (torch.randn(6, 16, generator=g) * 50).to(torch.float8_e4m3fn)
    ym = QMatMul(a, wm, w_scale[:1].expand(6).contiguous(), a_scale=0.05, trans_w=1, out_dtype=FLOAT)
    wantm = (a.double() @ wm.double().t()).float() * (torch.tensor(0.05, dtype=torch.float32) * w_scale[0])
    assert torch.equal(ym, wantm)
    with pytest.raises(TypeError, match="float8e4m3fn weight"):
        QMatMul(a, torch.ones(16, 6, dtype=torch.int8), w_scale[:1], a_scale=0.05)
