"""Sessions and builds leave the user's torch math settings as they found them (TF32, cudnn.benchmark), through
whichever API the user set them with: torch raises when the legacy allow_tf32 flags and the fp32_precision API are
mixed, so a save/restore that read one and wrote the other would break the user's next line."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import greenrt
from greenrt.build import BuildConfig, build_engine
from greenrt.runtime.math_mode import engine_math, restore_math, save_math

LEAVES = ["cuda.matmul", "cudnn.conv", "cudnn.rnn", "mkldnn.matmul", "mkldnn.conv"]


def _settings() -> dict:
    b = torch.backends
    out = {"benchmark": b.cudnn.benchmark}
    for path in LEAVES:
        obj = b
        for part in path.split("."):
            obj = getattr(obj, part)
        out[path] = obj.fp32_precision
    return out


@pytest.fixture
def user_settings():
    """Whatever the test sets, the process gets its settings back afterwards."""
    state = save_math()
    yield
    restore_math(state)


@pytest.mark.parametrize("precision", ["fp32", "tf32", "fp16"])
def test_engine_math_sets_then_restores(precision, user_settings):
    """The save/restore logic itself (no GPU needed: torch keeps the CUDA settings without one)."""
    torch.backends.cuda.matmul.fp32_precision = "tf32"
    torch.backends.cudnn.conv.fp32_precision = "tf32"
    torch.backends.mkldnn.matmul.fp32_precision = "bf16"
    torch.backends.cudnn.benchmark = False
    before = _settings()
    with engine_math(torch.device("cuda"), precision):
        on_cuda = _settings()
    assert _settings() == before
    with engine_math(torch.device("cpu"), precision):
        on_cpu = _settings()
    assert _settings() == before
    want = "tf32" if precision == "tf32" else "ieee"
    assert on_cuda["cuda.matmul"] == on_cuda["cudnn.conv"] == on_cuda["cudnn.rnn"] == want
    assert on_cuda["benchmark"] is True
    assert on_cpu["mkldnn.matmul"] == on_cpu["mkldnn.conv"] == "ieee"  # fp32 math on CPU is fp32, not bf16
    assert on_cpu["cuda.matmul"] == "tf32" and on_cpu["benchmark"] is False  # CPU runs leave CUDA settings be


def test_engine_math_restores_after_an_error(user_settings):
    torch.backends.cudnn.benchmark = False
    before = _settings()
    with pytest.raises(RuntimeError):
        with engine_math(torch.device("cuda"), "fp32"):
            raise RuntimeError("op failed")
    assert _settings() == before


_SCRIPT = """
import numpy as np, torch, greenrt
from greenrt.build import BuildConfig, build_engine
torch.backends.cuda.matmul.{flag}
torch.backends.cudnn.{flag2}
sess = greenrt.InferenceSession({model!r})
sess.run(None, {{"x": np.ones((2, 8), np.float32) * np.arange(8, dtype=np.float32)}})
build_engine({model!r}, {engine!r}, BuildConfig(device="cpu", precision="{precision}"), log=lambda m: None)
greenrt.InferenceSession({engine!r}).run(None, {{"x": np.arange(16, dtype=np.float32).reshape(2, 8)}})
print("AFTER", torch.backends.cuda.matmul.{read}, torch.backends.cudnn.{read2})
"""


@pytest.mark.parametrize(("api", "precision"), [("legacy", "fp32"), ("new", "tf32")])
def test_a_users_settings_survive_sessions_and_builds(api, precision, mlp_path, tmp_path):
    """In a fresh process (torch's API-mixing state is per process): the user sets TF32 with one API, opens an
    fp32 ONNX session and builds/runs an engine, then reads the settings back with the same API."""
    if api == "legacy":
        kw = dict(flag="allow_tf32 = True", flag2="allow_tf32 = False", read="allow_tf32", read2="allow_tf32")
        want = "AFTER True False"
    else:
        kw = dict(flag="fp32_precision = 'tf32'", flag2="conv.fp32_precision = 'ieee'", read="fp32_precision",
                  read2="conv.fp32_precision")
        want = "AFTER tf32 ieee"
    script = _SCRIPT.format(model=str(mlp_path), engine=str(tmp_path / "e.engine"), precision=precision, **kw)
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert want in out.stdout


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "tf32"])
def test_cuda_session_and_engine_leave_tf32_and_cudnn_settings(precision, mlp_path, tmp_path, user_settings):
    """On the GPU: an fp32 ONNX session, an engine build and a CUDA-graph engine run leave the user's TF32 and
    cudnn settings unchanged."""
    torch.backends.cuda.matmul.fp32_precision = "tf32"
    torch.backends.cudnn.conv.fp32_precision = "tf32"
    torch.backends.cudnn.benchmark = False
    before = _settings()
    x = np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32)
    greenrt.InferenceSession(mlp_path, device="cuda").run(None, {"x": x})
    assert _settings() == before
    build_engine(mlp_path, tmp_path / "e.engine", BuildConfig(device="cuda", precision=precision),
                 log=lambda m: None)
    assert _settings() == before
    sess = greenrt.InferenceSession(tmp_path / "e.engine")
    for _ in range(3):
        sess.run(None, {"x": x})
    assert _settings() == before
