"""QConv's cuDNN graph tactics (ops/int8_cudnn.py) against greenrt's exact INT8 reference, every execution plan.

GPU only, and only where nvidia-cudnn-frontend is installed (the GPU machine carries it). The bound: integer outputs
equal the reference's except where the float32 epilogue lands within rounding of a tie (at most one step, on under
0.1% of the outputs; a UINT8 input's 128 * sum(w) joins the accumulator in float32 there, where the reference adds it
exactly); float outputs within float32 rounding of the epilogue (1e-5 relative).
"""

from __future__ import annotations

import pytest
import torch

from greenrt.ops.int8 import FLOAT, FLOAT16, INT8, UINT8, QConv
from greenrt.ops.tactics import candidates, lookup

from .fp8_tolerance import assert_fp8_close

# (x dtype, channels in, out, kernel, stride, pads, bias, activation, params, out dtype, residual dtype)
CASES = [
    (torch.int8, 64, 64, 3, 1, [1, 1, 1, 1], True, "Relu", (), INT8, None),
    (torch.uint8, 32, 64, 3, 2, [1, 1, 1, 1], True, "Relu", (), UINT8, None),
    (torch.uint8, 64, 128, 1, 1, [0, 0, 0, 0], True, "", (), INT8, None),
    (torch.int8, 16, 32, 3, 1, [0, 1, 1, 0], False, "Clip", (0.0, 6.0), FLOAT16, None),
    (torch.uint8, 16, 16, 5, 1, [2, 2, 2, 2], True, "", (), FLOAT, None),
    # ResNet's bottleneck ends: 1x1 conv + bias + the block's input (INT8 or UINT8, or float) + ReLU
    (torch.uint8, 32, 64, 1, 1, [0, 0, 0, 0], True, "Relu", (), UINT8, torch.int8),
    (torch.uint8, 32, 64, 1, 1, [0, 0, 0, 0], True, "Relu", (), UINT8, torch.uint8),
    (torch.int8, 32, 32, 3, 1, [1, 1, 1, 1], True, "Relu", (), FLOAT16, torch.float16),
    # a 3-channel stem (its channels padded to the kernels' 16) and channels not a multiple of 16
    (torch.int8, 3, 64, 7, 2, [3, 3, 3, 3], True, "Relu", (), UINT8, None),
    (torch.uint8, 24, 40, 3, 1, [1, 1, 1, 1], False, "", (), FLOAT, None),
]


@pytest.fixture(scope="module")
def cudnn_available():
    if not torch.cuda.is_available():
        pytest.skip("needs a GPU")
    pytest.importorskip("cudnn", reason="nvidia-cudnn-frontend is not installed")


@pytest.mark.gpu
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{str(c[0])[6:]}-{c[1]}x{c[2]}-k{c[3]}s{c[4]}-{c[7] or 'none'}"
                                                     f"-out{c[9]}" + (f"-z{str(c[10])[6:]}" if c[10] else ""))
def test_every_cudnn_plan_matches_the_int8_reference(cudnn_available, case):
    x_dtype, cin, cout, k, stride, pads, has_bias, activation, params, out, z_dtype = case
    g = torch.Generator().manual_seed(cin * 7 + cout)
    low = 0 if x_dtype == torch.uint8 else -127
    x = torch.randint(low, 128 if x_dtype == torch.int8 else 256, (4, cin, 20, 20), generator=g, dtype=x_dtype).cuda()
    w = torch.randint(-127, 128, (cout, cin, k, k), generator=g, dtype=torch.int8).cuda()
    w_scale = (torch.rand(cout, generator=g) * 1e-3 + 1e-4).cuda()
    b = (torch.randn(cout, generator=g) * 0.3).cuda() if has_bias else None
    attrs = dict(x_scale=0.02, pads=pads, strides=[stride, stride], activation=activation, activation_params=params,
                 out_dtype=out, y_scale=0.03 if out in (INT8, UINT8) else 0.0)
    args = (x, w, w_scale, b)
    if z_dtype is not None:
        size = (20 + pads[0] + pads[2] - k) // stride + 1
        if z_dtype.is_floating_point:
            z = torch.randn(4, cout, size, size, generator=g).to(z_dtype)
        else:
            z = torch.randint(0 if z_dtype == torch.uint8 else -127, 128 if z_dtype == torch.int8 else 256,
                              (4, cout, size, size), generator=g, dtype=z_dtype)
            attrs["z_scale"] = 0.011
        args = (x, w, w_scale, b, z.cuda())
    ref = QConv(*args, **attrs)
    plans = [t for t in candidates("greenrt", "QConv", args, attrs) if t.name.startswith("cudnn-int8-")]
    assert plans, "no cuDNN plan for this layer"
    for t in plans:
        y = t.fn(*args, **attrs)
        assert y.shape == ref.shape and y.dtype == ref.dtype, t.name
        if out in (INT8, UINT8):
            diff = (y.int() - ref.int()).abs()
            assert int(diff.max()) <= 1 and float((diff > 0).float().mean()) < 1e-3, (t.name, int(diff.max()))
        else:
            torch.testing.assert_close(y.float(), ref.float(), rtol=1e-5 if out == FLOAT else 1e-3,
                                       atol=1e-5 * float(ref.float().abs().max()) + (1e-3 if out == FLOAT16 else 0))


@pytest.mark.gpu
def test_layers_cudnn_cannot_take_keep_the_reference(cudnn_available):
    """A residual with a zero point, a grouped conv."""
    g = torch.Generator().manual_seed(3)
    s = torch.full((8,), 1e-3).cuda()
    names = lambda args, attrs: {t.name for t in candidates("greenrt", "QConv", args, attrs)}  # noqa: E731
    x8 = torch.randint(-127, 128, (2, 8, 8, 8), generator=g, dtype=torch.int8).cuda()
    w8 = torch.randint(-127, 128, (8, 8, 3, 3), generator=g, dtype=torch.int8).cuda()
    z = torch.randint(0, 256, (2, 8, 6, 6), generator=g, dtype=torch.uint8).cuda()
    assert names((x8, w8, s, None, z), dict(x_scale=0.1, z_scale=0.1, z_zero_point=3)) == {"reference"}
    assert "cudnn-int8-p0" in names((x8, w8, s, None, z), dict(x_scale=0.1, z_scale=0.1))
    w_grouped = torch.randint(-127, 128, (8, 4, 3, 3), generator=g, dtype=torch.int8).cuda()
    assert names((x8, w_grouped, s), dict(x_scale=0.1, group=2)) == {"reference"}


def test_off_the_gpu_only_the_reference_applies_and_a_plan_name_falls_back_to_it():
    """On the CPU (or without the frontend) no cuDNN plan supports a layer; an engine that names one (built on a GPU)
    still runs, through the reference, with the same result."""
    g = torch.Generator().manual_seed(5)
    x = torch.randint(0, 256, (2, 8, 6, 6), generator=g, dtype=torch.uint8)
    w = torch.randint(-127, 128, (8, 8, 3, 3), generator=g, dtype=torch.int8)
    s = torch.rand(8, generator=g) * 1e-3 + 1e-4
    attrs = dict(x_scale=0.05, pads=[1, 1, 1, 1], activation="Relu", out_dtype=UINT8, y_scale=0.02)
    assert {t.name for t in candidates("greenrt", "QConv", (x, w, s), attrs)} == {"reference"}
    ref = QConv(x, w, s, **attrs)
    assert torch.equal(lookup("greenrt", "QConv", "cudnn-int8-p2").fn(x, w, s, **attrs), ref)
    assert int(ref.int().max()) > 0  # not a test on zeros


@pytest.mark.gpu
@pytest.mark.parametrize("out", [FLOAT, 17], ids=["float-out", "fp8-out"])
def test_fp8_cudnn_plans_match_the_reference_within_fp8_accumulation(cudnn_available, out):
    """--fp8 convs: float8 e4m3 in, Hopper's FP8 accumulation (about 14 mantissa bits, tests/ops/fp8_tolerance.py),
    so within 2^-12 of the largest output of the float64 reference, float8 outputs one step more. Where cuDNN has no
    FP8 engine for a layer, no plan is offered."""
    if torch.cuda.get_device_capability() < (8, 9):
        pytest.skip("FP8 needs compute capability 8.9 or later")
    g = torch.Generator().manual_seed(17)
    x = (torch.randn(4, 32, 14, 14, generator=g) * 60).to(torch.float8_e4m3fn).cuda()
    w = (torch.randn(64, 32, 3, 3, generator=g) * 60).to(torch.float8_e4m3fn).cuda()
    w_scale = (torch.rand(64, generator=g) * 1e-3 + 1e-4).cuda()
    b = torch.randn(64, generator=g).cuda()
    z = (torch.randn(4, 64, 14, 14, generator=g) * 60).to(torch.float8_e4m3fn).cuda()
    attrs = dict(x_scale=0.01, z_scale=0.02, pads=[1, 1, 1, 1], activation="Relu", out_dtype=out,
                 y_scale=0.01 if out == 17 else 0.0)
    args = (x, w, w_scale, b, z)
    ref = QConv(*args, **attrs)
    plans = [t for t in candidates("greenrt", "QConv", args, attrs) if t.name.startswith("cudnn-int8-")]
    if not plans:
        pytest.skip("this cuDNN offers no FP8 conv engine for the layer")
    for t in plans:
        y = t.fn(*args, **attrs)
        assert y.dtype == ref.dtype and y.shape == ref.shape
        assert_fp8_close(y, ref, t.name)
    assert float(ref.float().abs().max()) > 1  # not a test on zeros
