"""A CUDA engine built on a machine without a GPU, from a timing cache taken on the GPU (build/target.py).

The caches here are written in the test: a CPU build records each layer's signature (the very signatures a build
on the GPU computes: bench/gpu_cross_build.py found all 49 tactic layers of ResNet-50 at batch 256 in the cache
the H200 wrote: the heavy test below), re-keyed for a GPU target with made-up timings,
labelled so. The GPU half (the engine built here loads and runs on the H200) is bench/gpu_cross_build.py load.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

import greenrt
from greenrt.build import BuildConfig, build_engine
from greenrt.build.tactics import TimingCache, cache_key
from greenrt.errors import GreenrtError
from greenrt.plan.engine_file import EngineMismatchError, EngineMismatchWarning, read_engine
from greenrt.plan.profiles import parse_profile
from greenrt.tools.cli import main

from .test_tactics import _reference, convnet_model

SHAPES = "x:1x3x12x12/4x3x12x12/8x3x12x12"
# a GPU target as a build on it records it (build/tactics.target_of); made up here, as are the timings below
GPU = {"device_type": "cuda", "torch": "2.11.0", "device": "NVIDIA H200", "capability": "9.0", "cudnn": "91900",
       "triton": "3.6.0"}


@pytest.fixture()
def no_gpu(monkeypatch):
    """This machine as CI sees it (the development machine has no GPU either; on the GPU machine it pretends)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture()
def convnet(tmp_path):
    path = tmp_path / "convnet.onnx"
    onnx.save(convnet_model(), path)
    return path


def _gpu_cache(convnet, path: Path, target=GPU, shapes=SHAPES) -> Path:
    """A timing cache in the form a build on ``target`` writes: every FusedConv layer of the convnet at ``shapes``
    with cuDNN's fused call the (made-up) winner."""
    cpu_cache = path.with_suffix(".cpu.json")
    build_engine(convnet, path.with_suffix(".cpu.engine"),
                 BuildConfig(precision="fp16", profiles=[parse_profile(shapes)], timing_cache=str(cpu_cache)),
                 log=lambda m: None)
    cache = TimingCache()
    for entry in TimingCache.load(cpu_cache).entries.values():
        cache.entries[cache_key(entry["signature"], target)] = dict(
            entry, target=target, winner="cudnn-fused", timings_ms={"cudnn-fused": 0.011, "conv-then-epilogue": 0.02})
    return cache.save(path)


def _config(cache, **kw) -> BuildConfig:
    return BuildConfig(device="cuda", precision="fp16", profiles=[parse_profile(SHAPES)],
                       timing_cache=str(cache) if cache else None, **kw)


def test_an_engine_for_the_h200_is_built_without_a_gpu_from_its_cache(no_gpu, convnet, tmp_path):
    cache = _gpu_cache(convnet, tmp_path / "h200.json")
    before = cache.read_bytes()
    logs = []
    header = build_engine(convnet, tmp_path / "h200.engine", _config(cache), log=logs.append)
    target = GPU
    # the header names the target's GPU and versions, not this machine's
    assert header["device"] == {"type": "cuda", "name": "NVIDIA H200", "capability": [9, 0]}
    assert header["versions"]["torch"] == target["torch"] != torch.__version__
    assert header["versions"]["triton"] == target["triton"]
    assert header["versions"]["greenrt"] == greenrt.__version__
    assert any("no GPU here: building for NVIDIA H200" in m for m in logs)
    tactics = header["report"]["tactics"]
    assert tactics["timed"] == 0 and "missing_from_cache" not in tactics
    assert tactics["target"] == target
    # every layer's tactic is the winner the H200 timed, as a build there with this cache would choose
    chosen = [layer["winner"] for layer in tactics["layers"]]
    assert tactics["cached"] == 3 and chosen == ["cudnn-fused"] * 3
    plan_tactics = [s["tactic"] for s in header["plan"]["steps"] if s["op_type"] == "FusedConv"]
    assert plan_tactics == chosen
    assert header["report"]["built_for_another_device"]["target"] == target
    # the engine was checked here (on the CPU, with the ops' defaults) against the unoptimized fp32 graph
    errors = header["report"]["accuracy_vs_fp32_unoptimized"]
    assert errors and all(v < 1e-2 for a in errors for v in a["max_rel_err"].values())
    assert cache.read_bytes() == before  # nothing timed: the cache is left as it was


def test_the_engine_is_refused_here_and_runs_where_forced(no_gpu, convnet, tmp_path):
    engine = tmp_path / "h200.engine"
    build_engine(convnet, engine, _config(_gpu_cache(convnet, tmp_path / 'h200.json')), log=lambda m: None)
    with pytest.raises(EngineMismatchError, match="no CUDA device.*NVIDIA H200"):
        read_engine(engine)
    with pytest.raises(EngineMismatchError, match="built for cuda, asked to run on cpu"):
        read_engine(engine, device="cpu")
    # forced onto this CPU (the cuDNN tactic falls back to its unfused path here): the same numbers as onnxruntime
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EngineMismatchWarning)
        sess = greenrt.InferenceSession(engine, device="cpu", allow_mismatch=True)
    x = np.random.default_rng(1).standard_normal((4, 3, 12, 12)).astype(np.float32)
    got, ref = sess.run(None, {"x": x})[0], _reference(engine.parent / "convnet.onnx", x)
    assert np.abs(got - ref).max() / np.abs(ref).max() < 1e-2


def test_the_command_line_builds_for_the_cache_gpu_and_inspect_says_so(no_gpu, convnet, tmp_path, capsys):
    engine = tmp_path / "h200.engine"
    code = main(["build", str(convnet), "--device", "cuda", "--fp16", "--shapes", SHAPES,
                 "--timing-cache", str(_gpu_cache(convnet, tmp_path / "h200.json")), "-o", str(engine)])
    assert code == 0, capsys.readouterr()
    assert "no GPU here: building for NVIDIA H200" in capsys.readouterr().out.replace("\n", " ")
    assert main(["inspect", "model", str(engine)]) == 0
    out = capsys.readouterr().out.replace("\n", " ")
    assert "for NVIDIA H200" in out and "without that GPU" in out


def test_without_a_gpu_cache_the_build_says_what_to_do(no_gpu, convnet, tmp_path):
    with pytest.raises(GreenrtError, match="pass --timing-cache FILE taken on the target GPU"):
        build_engine(convnet, tmp_path / "e.engine", _config(None), log=lambda m: None)
    cpu_cache = tmp_path / "cpu.json"
    build_engine(convnet, tmp_path / "c.engine", BuildConfig(profiles=[parse_profile(SHAPES)],
                                                              timing_cache=str(cpu_cache)), log=lambda m: None)
    with pytest.raises(GreenrtError, match="holds no timings taken on a GPU"):
        build_engine(convnet, tmp_path / "e.engine", _config(cpu_cache), log=lambda m: None)


def test_a_cache_of_two_gpus_is_refused_naming_both(no_gpu, convnet, tmp_path):
    cache = TimingCache.load(_gpu_cache(convnet, tmp_path / "h200.json"))
    cache.merge(TimingCache.load(_gpu_cache(convnet, tmp_path / "h100.json", dict(GPU, device="NVIDIA H100 80GB HBM3"))))
    cache.save(tmp_path / "two.json")
    with pytest.raises(GreenrtError, match="2 GPU targets.*NVIDIA H200.*H100|2 GPU targets.*H100.*NVIDIA H200"):
        build_engine(convnet, tmp_path / "e.engine", _config(tmp_path / "two.json"), log=lambda m: None)


def test_layers_the_cache_lacks_are_reported(no_gpu, convnet, tmp_path):
    """Another opt shape than the cache was taken at: no layer is found, each keeps the op's default, and the
    report and the log say which."""
    logs = []
    config = _config(_gpu_cache(convnet, tmp_path / 'h200.json'))
    config.profiles = [parse_profile("x:1x3x12x12/2x3x12x12/8x3x12x12")]
    header = build_engine(convnet, tmp_path / "e.engine", config, log=logs.append)
    tactics = header["report"]["tactics"]
    assert tactics["cached"] == 0 and len(tactics["missing_from_cache"]) == 3
    assert all(s["tactic"] == "" for s in header["plan"]["steps"])
    assert any("3 layer(s) not in the timing cache" in m for m in logs)


@pytest.mark.heavy
def test_resnet50_for_the_h200_from_the_cache_the_h200_wrote(no_gpu, tmp_path):
    """The real cache: what the H200 wrote for ResNet-50 at batch 256 (bench/timing_caches, 2026-12-01) serves every
    tactic layer of a build here, so the engine chooses what a build there chooses (about 3 minutes on 2 cores)."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    model = tmp_path / "resnet50.onnx"
    subprocess.run([sys.executable, str(root / "bench" / "suite_models.py"), "resnet50", str(model)], check=True)
    cache = root / "bench" / "timing_caches" / "h200-2026-12-01.json"
    config = BuildConfig(device="cuda", precision="fp16", timing_cache=str(tmp_path / "h200.json"),
                         profiles=[parse_profile("image:1x3x224x224/256x3x224x224/256x3x224x224")])
    (tmp_path / "h200.json").write_bytes(cache.read_bytes())
    header = build_engine(model, tmp_path / "r50.engine", config, log=lambda m: None)
    tactics = header["report"]["tactics"]
    assert tactics["cached"] == 49 and tactics["timed"] == 0 and "missing_from_cache" not in tactics
    assert header["device"]["name"] == "NVIDIA H200"
    winners = {e["winner"] for e in json.loads(cache.read_text())["entries"].values()}
    assert {layer["winner"] for layer in tactics["layers"]} <= winners
