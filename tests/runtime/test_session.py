"""InferenceSession: onnxruntime-shaped API, numpy and torch in/out, clear run-time input errors."""

import numpy as np
import onnxruntime as ort
import pytest
import torch

import greenrt


@pytest.fixture
def session(mlp_path):
    return greenrt.InferenceSession(mlp_path)


def _ort(path, feeds):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)


def test_io_metadata_like_onnxruntime(session, mlp_path):
    ref = ort.InferenceSession(str(mlp_path), providers=["CPUExecutionProvider"])
    for ours, theirs in ((session.get_inputs(), ref.get_inputs()), (session.get_outputs(), ref.get_outputs())):
        assert [a.name for a in ours] == [a.name for a in theirs]
        assert [a.shape for a in ours] == [a.shape for a in theirs]
        assert [a.type for a in ours] == [a.type for a in theirs]


def test_numpy_in_numpy_out_matches_onnxruntime(session, mlp_path, rng):
    x = rng.standard_normal((5, 8)).astype(np.float32)
    (ours,) = session.run(None, {"x": x})
    assert isinstance(ours, np.ndarray) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, _ort(mlp_path, {"x": x})[0], rtol=1e-5, atol=1e-6)


def test_torch_in_torch_out(session, mlp_path, rng):
    x = rng.standard_normal((2, 8)).astype(np.float32)
    (ours,) = session.run(["probs"], {"x": torch.from_numpy(x)})
    assert isinstance(ours, torch.Tensor)
    np.testing.assert_allclose(ours.numpy(), _ort(mlp_path, {"x": x})[0], rtol=1e-5, atol=1e-6)


def test_dynamic_batch_sizes(session, mlp_path, rng):
    for n in (1, 3, 17):
        x = rng.standard_normal((n, 8)).astype(np.float32)
        np.testing.assert_allclose(session.run(None, {"x": x})[0], _ort(mlp_path, {"x": x})[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "feed, pattern",
    [
        ({"y": np.ones((2, 8), np.float32)}, r"unknown input name\(s\) \['y'\].*inputs are \['x'\]"),
        ({}, r"missing input\(s\) \['x'\]"),
        ({"x": np.ones((2, 8), np.float64)}, r"'x': expected dtype tensor\(float\), got tensor\(double\)"),
        ({"x": np.ones((2, 8, 1), np.float32)}, r"'x': expected rank 2"),
        ({"x": np.ones((2, 7), np.float32)}, r"'x': dimension 1 must be 8"),
        ({"x": "text"}, r"'x': expected a numpy array or torch tensor"),
    ],
)
def test_bad_inputs_are_named(session, feed, pattern):
    with pytest.raises(greenrt.InvalidInputError, match=pattern):
        session.run(None, feed)


def test_unknown_output_name(session, rng):
    with pytest.raises(greenrt.InvalidInputError, match="'nope'"):
        session.run(["nope"], {"x": rng.standard_normal((1, 8)).astype(np.float32)})


def test_cuda_unavailable_is_clear(mlp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(greenrt.GreenrtError, match="no CUDA GPU"):
        greenrt.InferenceSession(mlp_path, device="cuda")


@pytest.mark.gpu
def test_cuda_matches_cpu(mlp_path, rng):
    x = rng.standard_normal((4, 8)).astype(np.float32)
    cpu = greenrt.InferenceSession(mlp_path).run(None, {"x": x})[0]
    gpu_sess = greenrt.InferenceSession(mlp_path, device="cuda")
    out = gpu_sess.run(None, {"x": torch.from_numpy(x).cuda()})[0]
    assert out.is_cuda
    np.testing.assert_allclose(out.cpu().numpy(), cpu, rtol=1e-4, atol=1e-5)
