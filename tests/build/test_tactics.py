"""The tactic stage on CPU: candidates timed and the fastest kept, the engine still right, the timing cache (a warm
cache times nothing; another target misses), the choice following the opt shape, a wrong candidate rejected, bad
cache files and unknown tactics refused clearly, --opt-level."""

import json
import time

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import greenrt
from greenrt.build import BuildConfig, build_engine
from greenrt.build import tactics as tactics_stage
from greenrt.errors import GreenrtError
from greenrt.ops import tactics as registry
from greenrt.plan.engine_file import read_engine
from greenrt.plan.profiles import parse_profile
from greenrt.tools.cli import main

R = np.random.default_rng(0)


def convnet_model() -> onnx.ModelProto:
    """conv + bias + ReLU -> conv + bias + residual + ReLU -> depthwise conv + ReLU, dynamic batch (also the model
    of the committed H200 timing cache in tests/build/data, which a build without a GPU builds for)."""
    rng = np.random.default_rng(0)

    def init(name, shape):
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32) * 0.5, name)

    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], name="conv2"),
        helper.make_node("Add", ["c2", "r1"], ["s2"], name="residual"),
        helper.make_node("Relu", ["s2"], ["r2"], name="relu2"),
        helper.make_node("Conv", ["r2", "w3", "b3"], ["c3"], pads=[1, 1, 1, 1], group=8, name="dwconv"),
        helper.make_node("Relu", ["c3"], ["y"], name="relu3"),
    ]
    inits = [init("w1", [8, 3, 3, 3]), init("b1", [8]), init("w2", [8, 8, 3, 3]), init("b2", [8]),
             init("w3", [8, 1, 3, 3]), init("b3", [8])]
    graph = helper.make_graph(nodes, "convnet", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 12, 12])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8, 12, 12])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


@pytest.fixture(scope="module")
def convnet(tmp_path_factory):
    path = tmp_path_factory.mktemp("tactics") / "convnet.onnx"
    onnx.save(convnet_model(), path)
    return path


def _config(batch=2, **kw):
    return BuildConfig(device="cpu", profiles=[parse_profile(f"x:1x3x12x12/{batch}x3x12x12/8x3x12x12")], **kw)


def _reference(path, x):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def test_each_layer_with_a_choice_is_timed_and_the_engine_stays_right(convnet, tmp_path):
    engine = tmp_path / "e.engine"
    header = build_engine(convnet, engine, _config(), log=lambda m: None)
    report = header["report"]["tactics"]
    assert report["opt_level"] == 3 and report["shapes"] == {"x": [2, 3, 12, 12]}
    assert report["target"]["device_type"] == "cpu" and report["timed"] == len(report["layers"]) == 3
    for layer in report["layers"]:
        assert set(layer["timings_ms"]) == {"onednn-fused", "conv-then-epilogue"}
        assert layer["winner"] == min(layer["timings_ms"], key=layer["timings_ms"].get)
        assert all(ms > 0 for ms in layer["timings_ms"].values())
    sess = greenrt.load(engine)
    steps = {s.name: s.tactic for s in read_engine(engine).plan.steps}
    assert {steps[layer["layer"]] for layer in report["layers"]} <= {"onednn-fused", "conv-then-epilogue"}
    x = R.standard_normal((5, 3, 12, 12)).astype(np.float32)
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], _reference(convnet, x), rtol=1e-4, atol=1e-5)
    assert header["build"]["seconds"] > 0 and header["build"]["tactic_seconds"] > 0


@pytest.mark.parametrize("winner", ["onednn-fused", "conv-then-epilogue"])
def test_every_candidate_runs_right_when_forced(convnet, tmp_path, winner, monkeypatch):
    """Whichever candidate the timer keeps, the engine computes the model (forced by a timer that favours one)."""

    def timer(run, runs):
        t0 = time.perf_counter()
        run()
        return time.perf_counter() - t0

    real = tactics_stage._time_candidates

    def favour(step, found, args, kwargs, default_fn, _timer, runs, tol):
        choice = real(step, found, args, kwargs, default_fn, timer, 1, tol)
        choice.timings_ms = {k: (0.0 if k == winner else 1.0) for k in choice.timings_ms}
        choice.winner = winner
        return choice

    monkeypatch.setattr(tactics_stage, "_time_candidates", favour)
    engine = tmp_path / "e.engine"
    build_engine(convnet, engine, _config(), log=lambda m: None)
    sess = greenrt.load(engine)
    assert {s.tactic for s in read_engine(engine).plan.steps if s.op_type == "FusedConv"} == {winner}
    x = R.standard_normal((3, 3, 12, 12)).astype(np.float32)
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], _reference(convnet, x), rtol=1e-4, atol=1e-5)


def test_a_warm_timing_cache_times_nothing(convnet, tmp_path, monkeypatch):
    cache = tmp_path / "cache.json"
    first = build_engine(convnet, tmp_path / "a.engine", _config(timing_cache=str(cache)), log=lambda m: None)
    data = json.loads(cache.read_text())
    assert data["format"] == "greenrt-timing-cache/1" and len(data["entries"]) == 3

    def no_timing(*args, **kwargs):
        raise AssertionError("a warm cache must not time anything")

    monkeypatch.setattr(tactics_stage, "_time_candidates", no_timing)
    second = build_engine(convnet, tmp_path / "b.engine", _config(timing_cache=str(cache)), log=lambda m: None)
    report = second["report"]["tactics"]
    assert report["timed"] == 0 and report["cached"] == 3 and all(layer["cached"] for layer in report["layers"])
    assert [l["winner"] for l in report["layers"]] == [l["winner"] for l in first["report"]["tactics"]["layers"]]
    # same model, same warm cache: the same tactics in the plan
    assert [s.tactic for s in read_engine(tmp_path / "b.engine").plan.steps] == \
        [s.tactic for s in read_engine(tmp_path / "a.engine").plan.steps]


def test_the_cache_is_per_target(convnet, tmp_path, monkeypatch):
    cache = tmp_path / "cache.json"
    build_engine(convnet, tmp_path / "a.engine", _config(timing_cache=str(cache)), log=lambda m: None)
    other = dict(tactics_stage.target_of(torch.device("cpu")), torch="9.9.9")
    monkeypatch.setattr(tactics_stage, "target_of", lambda device: other)
    report = build_engine(convnet, tmp_path / "b.engine", _config(timing_cache=str(cache)),
                          log=lambda m: None)["report"]["tactics"]
    assert report["timed"] == 3 and report["cached"] == 0  # other versions: timed again, not reused
    assert len(json.loads(cache.read_text())["entries"]) == 6


def test_the_choice_follows_the_opt_shape(convnet, tmp_path, monkeypatch):
    """Two variants that are each fastest at one batch size: the opt shape decides which one the engine keeps."""

    def slow_when(big):
        def fn(*args, **kwargs):
            if (args[0].shape[0] >= 4) == big:
                time.sleep(0.03)  # far above a preempted run of the other on a loaded 2-core machine
            return registry.TACTICS[("greenrt", "FusedConv")]["conv-then-epilogue"].fn(*args, **kwargs)
        return fn

    variants = dict(registry.TACTICS[("greenrt", "FusedConv")])
    fake = {"fast-at-small": registry.Tactic("greenrt", "FusedConv", "fast-at-small", slow_when(True),
                                             lambda a, k: True),
            "fast-at-big": registry.Tactic("greenrt", "FusedConv", "fast-at-big", slow_when(False), lambda a, k: True)}
    fake["conv-then-epilogue"] = variants["conv-then-epilogue"]
    monkeypatch.setitem(registry.TACTICS, ("greenrt", "FusedConv"), fake)
    # keep the real one out of the race (it would win both): only the two fakes support these layers
    fake["conv-then-epilogue"] = registry.Tactic("greenrt", "FusedConv", "conv-then-epilogue",
                                                 variants["conv-then-epilogue"].fn, lambda a, k: False)
    winners = {}
    for batch in (1, 8):
        report = build_engine(convnet, tmp_path / f"b{batch}.engine", _config(batch=batch, opt_level=1),
                              log=lambda m: None)["report"]["tactics"]
        winners[batch] = {layer["winner"] for layer in report["layers"]}
    assert winners == {1: {"fast-at-small"}, 8: {"fast-at-big"}}


def test_a_candidate_that_disagrees_is_rejected_never_kept(convnet, tmp_path, monkeypatch):
    good = registry.TACTICS[("greenrt", "FusedConv")]["conv-then-epilogue"]
    wrong = registry.Tactic("greenrt", "FusedConv", "wrong-but-fast", lambda *a, **k: good.fn(*a, **k) * 2,
                            lambda a, k: True)
    variants = {"conv-then-epilogue": good, "wrong-but-fast": wrong}
    monkeypatch.setitem(registry.TACTICS, ("greenrt", "FusedConv"), variants)
    report = build_engine(convnet, tmp_path / "e.engine", _config(opt_level=1), log=lambda m: None)["report"]["tactics"]
    for layer in report["layers"]:
        assert layer["winner"] == "conv-then-epilogue"
        assert "wrong-but-fast" in layer["rejected"] and "max rel error" in layer["rejected"]["wrong-but-fast"]


def test_opt_level_0_times_nothing_and_levels_are_checked(convnet, tmp_path, monkeypatch):
    monkeypatch.setattr(tactics_stage, "_time_candidates", lambda *a, **k: pytest.fail("timed at level 0"))
    header = build_engine(convnet, tmp_path / "e.engine", _config(opt_level=0), log=lambda m: None)
    report = header["report"]["tactics"]
    assert report["layers"] == [] and "--opt-level 0" in report["reason"]
    assert "--opt-level 0" in header["config"]["build_command"]
    with pytest.raises(GreenrtError, match="opt_level 7: expected 0"):
        build_engine(convnet, tmp_path / "x.engine", _config(opt_level=7), log=lambda m: None)


@pytest.mark.parametrize("content, message", [
    ("{not json", "not readable as JSON"),
    ('{"format": "other", "entries": {}}', "not a greenrt-timing-cache/1 file"),
    ('{"format": "greenrt-timing-cache/1", "entries": {"k": {"timings_ms": {}}}}', "lacks a winner"),
])
def test_a_bad_timing_cache_is_refused_naming_the_file(convnet, tmp_path, content, message, capsys):
    cache = tmp_path / "bad.json"
    cache.write_text(content)
    with pytest.raises(GreenrtError, match=message) as exc:
        build_engine(convnet, tmp_path / "e.engine", _config(timing_cache=str(cache)), log=lambda m: None)
    assert str(cache) in str(exc.value)
    assert main(["build", str(convnet), "-o", str(tmp_path / "e.engine"), "--device", "cpu",
                 "--timing-cache", str(cache)]) == 2
    assert message in capsys.readouterr().err


def test_an_engine_naming_an_unknown_tactic_is_refused(convnet, tmp_path):
    from greenrt.runtime.executor import Executor

    build_engine(convnet, tmp_path / "e.engine", _config(), log=lambda m: None)
    engine = read_engine(tmp_path / "e.engine")
    step = next(s for s in engine.plan.steps if s.op_type == "FusedConv")
    step.tactic = "from-the-future"
    with pytest.raises(GreenrtError, match="tactic 'from-the-future' is not in this greenrt; rebuild"):
        Executor(engine.plan, engine.weights, "cpu")


def test_cli_opt_level_and_inspect_lists_the_candidates(convnet, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "240")
    engine = tmp_path / "e.engine"
    assert main(["build", str(convnet), "-o", str(engine), "--device", "cpu", "--opt-level", "2",
                 "--shapes", "x:1x3x12x12/2x3x12x12/8x3x12x12"]) == 0
    capsys.readouterr()
    assert main(["inspect", "model", str(engine)]) == 0
    out = capsys.readouterr().out
    assert "tactics (opt level 2" in out and "3 layer(s) timed" in out
    for text in ("onednn-fused", "conv-then-epilogue"):
        assert text in out, text
    assert main(["build", str(convnet), "--opt-level", "9"]) == 2
    assert "--opt-level: invalid choice: 9" in capsys.readouterr().err


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_cuda_tactics_are_timed_and_the_engine_matches_onnxruntime(convnet, tmp_path, precision):
    """On a GPU: the ReLU convs choose between cuDNN's fused call and conv-then-epilogue, the engine (CUDA graphs,
    NHWC) matches onnxruntime, and a warm cache on the same GPU times nothing."""
    cache = tmp_path / "cache.json"
    config = BuildConfig(device="cuda", precision=precision, timing_cache=str(cache),
                         profiles=[parse_profile("x:1x3x12x12/4x3x12x12/8x3x12x12")])
    report = build_engine(convnet, tmp_path / "e.engine", config, log=lambda m: None)["report"]["tactics"]
    assert report["target"]["device_type"] == "cuda" and report["target"]["capability"]
    assert report["timed"] == 3
    for layer in report["layers"]:
        assert set(layer["timings_ms"]) == {"cudnn-fused", "conv-then-epilogue"}, layer
    x = R.standard_normal((4, 3, 12, 12)).astype(np.float32)
    got = greenrt.load(tmp_path / "e.engine").run(None, {"x": x})[0]
    ref = _reference(convnet, x)
    tol = 1e-4 if precision == "fp32" else 1e-2
    assert np.abs(got - ref).max() / np.abs(ref).max() < tol
    again = build_engine(convnet, tmp_path / "f.engine", config, log=lambda m: None)["report"]["tactics"]
    assert again["timed"] == 0 and again["cached"] == 3


def test_the_tactic_timer_reports_progress_per_layer(convnet, tmp_path):
    seen = []
    build_engine(convnet, tmp_path / "e.engine", _config(opt_level=1), log=lambda m: None,
                 progress=lambda what, done, total: seen.append((what, done, total)))
    assert seen == [("timing tactics", i, 3) for i in (1, 2, 3)]


def test_inspect_json_holds_every_candidate_and_the_layers(convnet, tmp_path, capsys):
    engine, out = tmp_path / "e.engine", tmp_path / "e.json"
    build_engine(convnet, engine, _config(), log=lambda m: None)
    assert main(["inspect", "model", str(engine), "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    tactics = doc["report"]["tactics"]
    assert tactics["timed"] == 3 and "plan" not in doc
    layers = {layer["name"]: layer for layer in doc["layers"]}
    for choice in tactics["layers"]:
        assert layers[choice["layer"]]["tactic"] == choice["winner"]
        assert choice["winner"] in layers[choice["layer"]]["implementation"]
        assert len(choice["timings_ms"]) == 2
    assert main(["inspect", "model", str(convnet), "--json", str(out)]) == 2
    assert "--json describes an engine" in capsys.readouterr().err


def test_timing_caches_merge_and_a_merged_cache_serves_a_build(convnet, tmp_path, monkeypatch):
    """Caches taken separately (here: two opt shapes) merge into one that serves both builds without timing."""
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    build_engine(convnet, tmp_path / "a.engine", _config(batch=2, timing_cache=str(a)), log=lambda m: None)
    build_engine(convnet, tmp_path / "b.engine", _config(batch=4, timing_cache=str(b)), log=lambda m: None)
    merged = tactics_stage.TimingCache.load(a)
    assert merged.merge(tactics_stage.TimingCache.load(b)) == 3 and merged.merge(tactics_stage.TimingCache.load(b)) == 0
    merged.save(tmp_path / "merged.json")
    monkeypatch.setattr(tactics_stage, "_time_candidates", lambda *a, **k: pytest.fail("merged cache missed"))
    for batch in (2, 4):
        report = build_engine(convnet, tmp_path / f"m{batch}.engine",
                              _config(batch=batch, timing_cache=str(tmp_path / "merged.json")),
                              log=lambda m: None)["report"]["tactics"]
        assert report["cached"] == 3 and report["timed"] == 0


def test_attention_tactics_are_gpu_only(tmp_path):
    """On the CPU the attention has one path (torch's choice): no SDPA kernel tactic is offered, nothing timed."""
    q = torch.randn(2, 4, 6, 16)
    assert registry.candidates("greenrt", "ScaledDotProductAttention", [q, q, q, None], {"scale": 0.25}) == []


@pytest.mark.gpu
def test_cuda_attention_kernels_are_timed_and_the_engine_matches_onnxruntime(tmp_path):
    """On a GPU: the fused attention's SDPA kernels (flash where no mask, memory-efficient, cuDNN, torch's choice)
    are candidates where each runs the layer's arguments; the fastest is kept and the engine matches onnxruntime."""
    import onnxruntime as ort

    from tests.precision.test_convert import attention_block

    path = tmp_path / "attention.onnx"
    onnx.save(attention_block(), path)
    rng = np.random.default_rng(3)
    feeds = {n: rng.standard_normal((2, 4, 6, 16)).astype(np.float32) for n in "qkv"}
    feeds["mask"] = np.where(rng.random((2, 1, 1, 6)) < 0.3, -1e4, 0).astype(np.float32)
    np.savez(tmp_path / "in.npz", **feeds)
    config = BuildConfig(device="cuda", precision="fp16", inputs=[str(tmp_path / "in.npz")])
    report = build_engine(path, tmp_path / "e.engine", config, log=lambda m: None)["report"]["tactics"]
    attention = [layer for layer in report["layers"] if layer["op"] == "ScaledDotProductAttention"]
    assert len(attention) == 1, report
    assert {"sdpa-efficient", "sdpa-torch-choice"} <= set(attention[0]["timings_ms"]), attention
    got = greenrt.load(tmp_path / "e.engine").run(None, feeds)[0]
    ref = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    assert np.abs(got - ref).max() / np.abs(ref).max() < 1e-2


def _transposed_projection(path):
    """x (B, S, E) -> Transpose to (S, B, E) -> MatMul W + b: torch MultiheadAttention's in-projection as exported."""
    rng = np.random.default_rng(5)
    nodes = [helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0, 2], name="to_sbe"),
             helper.make_node("MatMul", ["xt", "W"], ["m"], name="in_proj"),
             helper.make_node("Add", ["m", "b"], ["y"], name="in_proj_bias")]
    inits = [numpy_helper.from_array((rng.standard_normal((16, 24)) * 0.3).astype(np.float32), "W"),
             numpy_helper.from_array(rng.standard_normal(24).astype(np.float32), "b")]
    graph = helper.make_graph(nodes, "proj", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", 7, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [7, "B", 24])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


@pytest.mark.parametrize("winner", ["linear", "linear-rows-in-memory-order", "onednn"])
def test_a_gemm_over_a_permuted_input_has_both_row_orders_and_each_is_right(tmp_path, winner, monkeypatch):
    """FusedMatMul reading a transposed view: F.linear on the view (a copy first) or over the rows in memory order
    (no copy, a permuted view out), and on the CPU oneDNN's linear on the view; each, forced, matches onnxruntime,
    shape and values."""
    import onnxruntime as ort

    path = _transposed_projection(tmp_path / "proj.onnx")

    def favour(step, found, args, kwargs, default_fn, _timer, runs, tol):
        names = {t.name for t in found}
        assert names == {"linear", "linear-rows-in-memory-order"} | (
            {"onednn"} if hasattr(torch.ops.mkldnn, "_linear_pointwise") else set()), names
        return tactics_stage.LayerChoice(step.name, step.op_type, winner, {n: 1.0 for n in names})

    monkeypatch.setattr(tactics_stage, "_time_candidates", favour)
    config = BuildConfig(profiles=[parse_profile("x:1x7x16/3x7x16/4x7x16")])
    header = build_engine(path, tmp_path / "e.engine", config, log=lambda m: None)
    assert [s["tactic"] for s in header["plan"]["steps"] if s["op_type"] == "FusedMatMul"] == [winner]
    x = np.random.default_rng(6).standard_normal((3, 7, 16)).astype(np.float32)
    got = greenrt.load(tmp_path / "e.engine").run(None, {"x": x})[0]
    ref = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert got.shape == ref.shape == (7, 3, 24)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def test_bad_arguments_do_not_turn_the_fused_conv_off_for_the_process():
    """A conv given the wrong channel count fails in oneDNN's fused call and in the plain conv alike: the error is
    the plain conv's, and the fused path stays on for the calls after it (it once turned itself off for good)."""
    from greenrt.ops import fused

    assert fused._ONEDNN["ok"]
    w, b = torch.randn(8, 3, 3, 3), torch.randn(8)
    attrs = {"auto_pad": "NOTSET", "dilations": [1, 1], "group": 1, "kernel_shape": [3, 3], "pads": [1, 1, 1, 1],
             "strides": [1, 1]}
    with pytest.raises(RuntimeError):
        fused._onednn_conv(torch.randn(2, 5, 12, 12), w, b, None, "Relu", [], attrs)
    assert fused._ONEDNN["ok"]
    x = torch.randn(2, 3, 12, 12)
    got = fused._onednn_conv(x, w, b, None, "Relu", [], attrs)
    torch.testing.assert_close(got, torch.relu(torch.nn.functional.conv2d(x, w, b, padding=1)), rtol=1e-4, atol=1e-4)


def test_bf16_convs_stay_bf16_on_a_cpu_that_runs_them_natively(monkeypatch):
    """On a CPU with native bf16 (avx512_bf16 / AMX) a bf16 conv runs in bf16 (oneDNN accumulates in fp32) through
    the fused call, about twice fp32's speed; elsewhere it computes in fp32. Either way it matches the fp32 conv of
    the same bf16 values to bf16's rounding of the output."""
    from greenrt.ops import conv, fused

    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 16, 12, 12, generator=g).bfloat16()
    w, b = (torch.randn(24, 16, 3, 3, generator=g) * 0.2).bfloat16(), torch.randn(24, generator=g).bfloat16()
    attrs = {"auto_pad": "NOTSET", "dilations": [1, 1], "group": 1, "kernel_shape": [3, 3], "pads": [1, 1, 1, 1],
             "strides": [1, 1]}
    want = torch.relu(torch.nn.functional.conv2d(x.float(), w.float(), b.float(), padding=1))
    for native in (True, False):
        if native and not conv.cpu_bf16_native():
            continue
        monkeypatch.setattr(conv, "_BF16_NATIVE", native)
        assert (fused._onednn_applies(x, w, None, "Relu", [], attrs) is not None) == native
        got = fused.FusedConv(x, w, b, activation="Relu", **attrs)
        assert got.dtype == torch.bfloat16
        torch.testing.assert_close(got.float(), want, rtol=1e-2, atol=1e-2 * float(want.abs().max()))
        plain = conv.Conv(x, w, b, pads=[1, 1, 1, 1])
        assert plain.dtype == torch.bfloat16


def test_a_candidate_far_slower_in_one_call_is_not_timed_further():
    """The exact INT8 reference next to cuDNN's plans: a checked candidate over SLOW_FACTOR x the fastest one call
    is called twice (its check and that one call), its one call its timing; the others are timed fully."""
    calls = {"fast": 0, "slow": 0}
    x = torch.from_numpy(R.standard_normal((4, 4)).astype(np.float32))

    def fast(a):
        calls["fast"] += 1
        return a * 2

    def slow(a):
        calls["slow"] += 1
        time.sleep(0.05)
        return a * 2

    found = [registry.Tactic("t", "Op", "fast", fast, lambda a, k: True),
             registry.Tactic("t", "Op", "slow", slow, lambda a, k: True)]

    class Step:
        name, op_type, label = "layer", "Op", "layer (Op)"

    timed = []

    def timer(run, runs):
        timed.append(runs)
        for _ in range(runs):
            run()
        return 0.001

    choice = tactics_stage._time_candidates(Step(), found, [x], {}, fast, timer, 5, 1e-6)
    assert choice.winner == "fast" and choice.timed_once == ["slow"] and calls["slow"] == 2
    assert choice.timings_ms["slow"] >= 50 and timed == [5] and choice.to_json()["timed_once"] == ["slow"]
    # the same two, equally fast: both timed fully
    calls.update(fast=0, slow=0)
    choice = tactics_stage._time_candidates(Step(), found[:1] * 1 + [registry.Tactic("t", "Op", "other", fast,
                                                                                     lambda a, k: True)],
                                            [x], {}, fast, timer, 5, 1e-6)
    assert choice.timed_once == [] and len(timed) == 3


@pytest.mark.parametrize("activation", ["", "Relu", "Gelu", "GeluTanh", "Sigmoid", "Tanh", "HardSwish", "Clip",
                                        "LeakyRelu", "HardSigmoid", "SiLU"])
def test_onednn_linear_tactic_matches_the_layer_with_every_activation(activation):
    """The CPU tactic 'onednn' (oneDNN's linear, weight reordered once, bias and activation as post-ops) computes
    what the layer's default does, on 2-D and 3-D inputs and at row counts other than the first call's (its
    reordered weight serves any row count); where it cannot run it is not offered."""
    from greenrt.ops.fused import FusedMatMul
    from greenrt.ops.tactics import candidates, lookup

    if not hasattr(torch.ops.mkldnn, "_linear_pointwise"):
        pytest.skip("this torch has no oneDNN linear")
    params = {"LeakyRelu": [0.1], "Clip": [-1.0, 2.0], "HardSigmoid": [1 / 6, 0.5]}.get(activation, [])
    attrs = {"activation": activation, "activation_params": params, "trans_w": 1}
    gen = torch.Generator().manual_seed(3)
    w, b = torch.randn(48, 64, generator=gen) / 8, torch.randn(48, generator=gen)
    tactic = lookup("greenrt", "FusedMatMul", "onednn")
    for shape in [(7, 64), (2, 5, 64), (1, 64), (33, 64)]:
        a = torch.randn(*shape, generator=gen)
        assert "onednn" in {t.name for t in candidates("greenrt", "FusedMatMul", (a, w, b), attrs)}
        got, want = tactic.fn(a, w, b, **attrs), FusedMatMul(a, w, b, **attrs)
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    # not offered: weights as (K, N), a float64 input, a bias of another dtype
    a = torch.randn(4, 64, generator=gen)
    assert "onednn" not in {t.name for t in candidates("greenrt", "FusedMatMul", (a, w.t(), b), {**attrs, "trans_w": 0})}
    assert "onednn" not in {t.name for t in candidates("greenrt", "FusedMatMul", (a.double(), w.double(), b.double()),
                                                       attrs)}
    assert "onednn" not in {t.name for t in candidates("greenrt", "FusedMatMul", (a, w, b.double()), attrs)}
