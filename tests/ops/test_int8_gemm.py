"""QMatMul's ``int-mm`` tactic (ops/int8_gemm.py, torch._int_mm) against greenrt's exact INT8 reference: the same
integer accumulator and the same float32 epilogue, so every output is the reference's bit for bit. On the CPU here
(oneDNN's VNNI kernels); on the GPU (cuBLASLt) with ``-m gpu``."""

from __future__ import annotations

import pytest
import torch

from greenrt.ops.int8 import FLOAT, FLOAT16, INT8, INT32, UINT8, QMatMul
from greenrt.ops.tactics import candidates, lookup

from .fp8_tolerance import assert_fp8_close

# (A dtype, leading dims, K, N, trans_w, bias, residual, activation, out dtype, runtime scale / zero point)
CASES = [
    (torch.int8, (24,), 64, 32, 1, "float", None, "", FLOAT, False),
    (torch.uint8, (2, 17), 128, 48, 1, "float", None, "Relu", UINT8, False),
    (torch.uint8, (40,), 32, 16, 0, "float", "float", "", INT8, False),
    (torch.int8, (3, 8), 64, 64, 1, "int32", None, "", FLOAT16, False),
    (torch.uint8, (32,), 48, 24, 1, None, None, "", INT32, False),
    (torch.uint8, (2, 9), 96, 40, 1, "float", None, "", FLOAT, True),  # DynamicQuantizeLinear's runtime scale / zp
]


def _case(case, device):
    a_dtype, lead, k, n, trans_w, bias, residual, activation, out, runtime = case
    g = torch.Generator().manual_seed(k * 31 + n)
    low, high = (0, 256) if a_dtype == torch.uint8 else (-127, 128)
    a = torch.randint(low, high, (*lead, k), generator=g, dtype=a_dtype)
    w = torch.randint(-127, 128, (n, k) if trans_w else (k, n), generator=g, dtype=torch.int8)
    w_scale = torch.rand(n, generator=g) * 1e-3 + 1e-4
    b = None
    if bias == "float":
        b = torch.randn(n, generator=g) * 0.5
    elif bias == "int32":
        b = torch.randint(-5000, 5000, (n,), generator=g, dtype=torch.int32)
    z = torch.randn(*lead, n, generator=g) if residual else None
    args = [a, w, w_scale, b, z]
    attrs = dict(a_scale=0.02, trans_w=trans_w, activation=activation, out_dtype=out,
                 y_scale=0.05 if out in (INT8, UINT8) else 0.0)
    if runtime:
        args += [None, torch.tensor(0.037), torch.tensor(113, dtype=torch.uint8)]
    while args and args[-1] is None:
        args.pop()
    args = [t.to(device) if isinstance(t, torch.Tensor) else t for t in args]
    return tuple(args), attrs


def _check(case, device):
    args, attrs = _case(case, device)
    names = [t.name for t in candidates("greenrt", "QMatMul", args, attrs)]
    assert "int-mm" in names, names
    ref = QMatMul(*args, **attrs)
    got = lookup("greenrt", "QMatMul", "int-mm").fn(*args, **attrs)
    assert got.dtype == ref.dtype and got.shape == ref.shape
    assert torch.equal(got, ref), float((got.double() - ref.double()).abs().max())
    assert float(ref.double().abs().max()) > 0  # not a test on zeros
    return args, attrs, ref


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{str(c[0])[6:]}-{'x'.join(map(str, c[1]))}x{c[2]}->{c[3]}"
                                                     f"-t{c[4]}-out{c[8]}" + ("-runtime" if c[9] else ""))
def test_int_mm_equals_the_reference_on_the_cpu(case):
    _check(case, "cpu")


def test_a_broken_zero_point_term_is_caught():
    """The check above can fail: dropping the UINT8 shift's 128 * colsum(W) changes the outputs."""
    args, attrs, ref = _check(CASES[1], "cpu")
    a, w = args[0], args[1]
    acc = torch._int_mm((a.reshape(-1, a.shape[-1]) ^ 128).view(torch.int8), w.t()).reshape(*a.shape[:-1], -1)
    assert not torch.equal(acc.double(), ref.double())


def test_weights_with_a_zero_point_keep_the_reference():
    g = torch.Generator().manual_seed(1)
    a = torch.randint(-127, 128, (20, 16), generator=g, dtype=torch.int8)
    w = torch.randint(-127, 128, (16, 8), generator=g, dtype=torch.int8)
    names = {t.name for t in candidates("greenrt", "QMatMul", (a, w, torch.rand(8), None, None,
                                                               torch.ones(8, dtype=torch.int8)), {"a_scale": 0.1})}
    assert names == {"reference"}


@pytest.mark.gpu
@pytest.mark.parametrize("case", [c for c in CASES if c[2] % 8 == 0 and c[3] % 8 == 0],
                         ids=lambda c: f"{str(c[0])[6:]}-{c[2]}->{c[3]}-out{c[8]}")
def test_int_mm_equals_the_reference_on_the_gpu(case):
    if not torch.cuda.is_available():
        pytest.skip("needs a GPU")
    lead = case[1]
    if torch.Size(lead).numel() < 17:  # cuBLASLt's INT8 GEMM wants more than 16 rows
        case = (case[0], (32,), *case[2:])
    _check(case, "cuda")


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
@pytest.mark.parametrize("trans_w", [1, 0])
def test_scaled_mm_on_float8_is_the_reference_within_its_accumulation(device, trans_w):
    """--fp8 GEMMs through torch._scaled_mm: on the CPU float32 accumulation, so within float32 rounding of the
    float64 reference and float8 outputs at most one step apart; on Hopper the FP8 tensor cores' narrower
    accumulation (tests/ops/fp8_tolerance.py)."""
    from greenrt.ops.int8 import FLOAT8E4M3FN

    if device == "cuda" and not (torch.cuda.is_available() and torch.cuda.get_device_capability() >= (8, 9)):
        pytest.skip("needs a GPU with FP8 (compute capability 8.9 or later)")
    g = torch.Generator().manual_seed(trans_w)
    a = (torch.randn(2, 24, 64, generator=g) * 40).to(torch.float8_e4m3fn).to(device)
    w = (torch.randn(*((32, 64) if trans_w else (64, 32)), generator=g) * 40).to(torch.float8_e4m3fn).to(device)
    w_scale = (torch.rand(32, generator=g) * 1e-3 + 1e-4).to(device)
    b = torch.randn(32, generator=g).to(device)
    attrs = dict(a_scale=0.02, trans_w=trans_w, activation="Relu")
    assert "scaled-mm" in {t.name for t in candidates("greenrt", "QMatMul", (a, w, w_scale, b), attrs)}
    fn = lookup("greenrt", "QMatMul", "scaled-mm").fn
    ref, got = QMatMul(a, w, w_scale, b, **attrs, out_dtype=FLOAT), fn(a, w, w_scale, b, **attrs, out_dtype=FLOAT)
    if device == "cpu":  # torch's CPU kernel: float32 accumulation
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5 * float(ref.abs().max()))
    else:
        assert_fp8_close(got, ref, "scaled-mm, float out")
    assert float(ref.abs().max()) > 1
    q_ref = QMatMul(a, w, w_scale, b, **attrs, out_dtype=FLOAT8E4M3FN, y_scale=0.01)
    q_got = fn(a, w, w_scale, b, **attrs, out_dtype=FLOAT8E4M3FN, y_scale=0.01)
    assert q_got.dtype == torch.float8_e4m3fn
    if device == "cpu":
        steps = (q_got.view(torch.uint8).int() - q_ref.view(torch.uint8).int()).abs()  # same sign: adjacent codes
        assert int(steps.max()) <= 1
    else:
        assert_fp8_close(q_got, q_ref, "scaled-mm, float8 out")
