"""bench/suite.py, the standard suite's driver: profiles span batch 1..large, every torch source resolves and holds
the weights of the ONNX file the suite exports (else the torch baselines' accuracy would mean nothing)."""

import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench import suite  # noqa: E402


def test_profile_spans_batch_one_to_large(mlp_path):
    profile = suite.profile_for(mlp_path, 64, "")
    assert profile.shapes == {"x": ([1, 8], [64, 8], [64, 8])}


def test_text_models_take_the_sequence_from_shapes(tmp_path, mlp_path):
    profile = suite.profile_for(mlp_path, 16, "x:1x8")
    assert profile.shapes["x"] == ([1, 8], [16, 8], [16, 8])


def test_torch_source_and_export_hold_the_same_weights(tmp_path):
    """MobileNetV3 (the lightest suite CNN): the factory's module and the exported file agree to fp32 rounding."""
    import onnxruntime as ort

    from greenrt.tools.bench import load_factory

    path = suite.export("mobilenet_v3_large", tmp_path)
    x = np.random.default_rng(0).standard_normal((2, 3, 224, 224)).astype(np.float32)
    module = load_factory(suite.SUITE["mobilenet_v3_large"][2])()
    with torch.inference_mode():
        ours = module(torch.from_numpy(x)).numpy()
    ref = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
    assert np.abs(ours - ref).max() <= 1e-4 * np.abs(ref).max()
