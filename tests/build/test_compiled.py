"""The engine as a whole compiled by Inductor, chosen by timing (build/tactics.choose_compiled), its code in the
local compiled-code cache (runtime/compiled.py). Each compile takes some seconds on the CPU (the C++ wrapper)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import greenrt
from greenrt.build import BuildConfig, build_engine
from greenrt.build import tactics as tactics_stage
from greenrt.plan.engine_file import read_engine
from greenrt.plan.profiles import parse_profile
from greenrt.runtime import compiled as compiled_runtime
from greenrt.runtime.runner import Runner

from ..conftest import timer_favouring


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    """x -> MatMul + bias -> Relu -> MatMul + bias -> Tanh: no layer with a tactic, so the only choice timed is
    the engine's (executor or Inductor)."""
    rng = np.random.default_rng(11)
    nodes = [helper.make_node("MatMul", ["x", "W1"], ["m1"]), helper.make_node("Add", ["m1", "b1"], ["a1"]),
             helper.make_node("Relu", ["a1"], ["r1"]), helper.make_node("MatMul", ["r1", "W2"], ["m2"]),
             helper.make_node("Add", ["m2", "b2"], ["a2"]), helper.make_node("Tanh", ["a2"], ["y"])]
    inits = [numpy_helper.from_array((rng.standard_normal(s) * 0.3).astype(np.float32), n)
             for n, s in (("W1", (16, 32)), ("b1", (32,)), ("W2", (32, 8)), ("b2", (8,)))]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path_factory.mktemp("compiled") / "mlp.onnx"
    onnx.save(model, path)
    return path


@pytest.fixture()
def cache_root(tmp_path, monkeypatch):
    monkeypatch.setenv("GREENRT_CACHE", str(tmp_path / "greenrt-cache"))
    return tmp_path / "greenrt-cache" / "compiled"


def _config(**kw):
    return BuildConfig(profiles=[parse_profile("x:1x16/4x16/8x16")], **kw)


def _reference(path, x):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def test_inductor_is_kept_where_faster_and_its_code_lives_in_the_local_cache(mlp, tmp_path, cache_root, monkeypatch,
                                                                             capsys):
    monkeypatch.setattr(tactics_stage, "_timer", timer_favouring("inductor"))
    header = build_engine(mlp, tmp_path / "e.engine", _config(opt_level=4, timing_cache=str(tmp_path / "tc.json")),
                          log=lambda m: None)
    choice = header["report"]["tactics"]["engine"]
    assert choice["winner"] == "inductor" and set(choice["timings_ms"]) == {"executor", "inductor"}
    assert header["plan"]["compiled"] == "inductor"
    from greenrt.tools.cli import main

    assert main(["inspect", "model", str(tmp_path / "e.engine")]) == 0
    assert "engine: runs compiled by Inductor" in capsys.readouterr().out.replace("\n", " ")
    assert not list(cache_root.glob("build-*"))  # the build's own compiled code is not kept
    # the engine file holds the choice, no code: its plan names no compiled artefact
    assert b"cpp_wrapper" not in (tmp_path / "e.engine").read_bytes()

    sess = greenrt.InferenceSession(tmp_path / "e.engine")
    x = np.random.default_rng(1).standard_normal((4, 16)).astype(np.float32)
    got = sess.run(None, {"x": x})[0]
    np.testing.assert_allclose(got, _reference(mlp, x), rtol=1e-5, atol=1e-6)
    inner = sess.runner._inner
    assert isinstance(inner, compiled_runtime.CompiledSpecializer) and inner.compiles == 1 and not inner.failed
    # the first run's cost is measured: Inductor compiled into this engine's folder, which held no code before
    assert list(inner.compile_seconds.values())[0] > 0 and list(inner.compile_cache_warm.values()) == [False]
    folder = cache_root / f"{sess.header['header_sha256'][:24]}-cpu"
    meta = json.loads((folder / "greenrt.json").read_text())
    assert meta["versions"]["torch"] == torch.__version__ and any(p.name != "greenrt.json" for p in folder.iterdir())
    # a caller inside its own inference_mode gets the same compiled graph (no second compile)
    with torch.inference_mode():
        got2 = sess.run(None, {"x": x})[0]
    np.testing.assert_allclose(got2, got)
    assert inner.compiles == 1

    warm = greenrt.InferenceSession(tmp_path / "e.engine")  # a second session: Inductor's cache holds the code
    np.testing.assert_allclose(warm.run(None, {"x": x})[0], got, rtol=1e-6)
    assert list(warm.runner._inner.compile_cache_warm.values()) == [True]

    # stale: the cache says other versions -> wiped and built again, and still right
    (folder / "sentinel").write_text("from the old versions")
    meta["versions"]["torch"] = "1.0.0"
    (folder / "greenrt.json").write_text(json.dumps(meta))
    again = greenrt.InferenceSession(tmp_path / "e.engine")
    np.testing.assert_allclose(again.run(None, {"x": x})[0], got, rtol=1e-6)
    assert list(again.runner._inner.compile_cache_warm.values()) == [False]  # wiped: compiled afresh
    assert not (folder / "sentinel").exists()
    assert json.loads((folder / "greenrt.json").read_text())["versions"]["torch"] == torch.__version__

    # a warm timing cache: the choice is read, nothing compiled or timed at build
    monkeypatch.setattr(tactics_stage, "_timer", lambda device: lambda run, runs: pytest.fail("timed, warm cache"))
    monkeypatch.setattr(compiled_runtime.CompiledSpecializer, "_compile",
                        lambda *a: pytest.fail("compiled at build with a warm cache"))
    warm = build_engine(mlp, tmp_path / "f.engine", _config(opt_level=4, timing_cache=str(tmp_path / "tc.json")),
                        log=lambda m: None)
    assert warm["report"]["tactics"]["engine"]["cached"] and warm["plan"]["compiled"] == "inductor"


def test_the_executor_is_kept_where_inductor_is_not_faster(mlp, tmp_path, cache_root, monkeypatch):
    monkeypatch.setattr(tactics_stage, "_timer", timer_favouring("executor"))
    header = build_engine(mlp, tmp_path / "e.engine", _config(opt_level=4), log=lambda m: None)
    assert header["report"]["tactics"]["engine"]["winner"] == "executor" and header["plan"]["compiled"] == ""
    sess = greenrt.InferenceSession(tmp_path / "e.engine")
    assert not isinstance(sess.runner._inner, compiled_runtime.CompiledSpecializer)


def test_below_opt_level_4_nothing_is_compiled(mlp, tmp_path, cache_root):
    header = build_engine(mlp, tmp_path / "e.engine", _config(), log=lambda m: None)
    choice = header["report"]["tactics"]["engine"]
    assert choice["winner"] == "executor" and "--opt-level 4" in choice["reason"] and not choice["timings_ms"]
    assert header["plan"]["compiled"] == ""


def test_where_inductor_fails_the_engine_runs_on_the_executor_and_says_so(mlp, tmp_path, cache_root):
    build_engine(mlp, tmp_path / "e.engine", _config(opt_level=0), log=lambda m: None)
    engine = read_engine(tmp_path / "e.engine")
    engine.plan.compiled = "inductor"

    def no_compiler(*args, **kwargs):
        raise RuntimeError("no C++ compiler found")

    runner = Runner(engine.plan, engine.weights, "cpu", specialize=True, compile_key="test-failure")
    runner._inner._compile_fn = no_compiler
    x = np.random.default_rng(2).standard_normal((3, 16)).astype(np.float32)
    with pytest.warns(UserWarning, match="no C\\+\\+ compiler found.*greenrt's executor"):
        got = runner.run({"x": torch.from_numpy(x)})[0]
    np.testing.assert_allclose(got.numpy(), _reference(mlp, x), rtol=1e-5, atol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once
        runner.run({"x": torch.from_numpy(x[:2])})


class _FakeRunner:
    device = torch.device("cpu")

    def __init__(self, outputs):
        self.outputs = outputs
        self.compiled = type("Compiled", (), {"failed": ""})()

    def run(self, feeds):
        return self.outputs


@pytest.mark.parametrize("compiled_off, kept", [(0.03, True), (0.05, False)])
def test_inductor_is_judged_against_the_fp32_graph_next_to_the_executors_own_error(compiled_off, kept):
    """fp16 engines round: the executor is 2% off the fp32 graph here, so a compiled graph 3% off passes (within
    twice the executor's error) and one 5% off does not; compared with each other, both would have failed."""
    from greenrt.plan.plan import Plan

    ref = torch.linspace(1.0, 2.0, 16)
    runners = {"": _FakeRunner([ref * 1.02]), "inductor": _FakeRunner([ref * (1 + compiled_off)])}
    plan = Plan(inputs=[], outputs=[], steps=[], constants={}, opsets={})
    times = iter([2.0, 1.0])
    choice = tactics_stage.choose_compiled(lambda compiled: runners[compiled], plan, {"x": ref}, 4,
                                           tactics_stage.TimingCache(), "fp16", reference=[ref],
                                           timer=lambda run, runs: next(times))
    assert (choice.winner == "inductor") == kept and (plan.compiled == "inductor") == kept
    if not kept:
        assert "vs the fp32 graph, over 4.00e-02" in choice.reason
