"""INT8 builds (--int8, precision/int8.py): the quantized graph as an optimizing builder places it, calibration
caches reused and refused, layers kept float on request, and accuracy against onnxruntime fp32."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import greenrt
from greenrt.build import BuildConfig, build_engine
from greenrt.errors import GreenrtError
from greenrt.onnx.importer import load_model
from greenrt.passes import optimize
from greenrt.plan.engine_file import read_engine
from greenrt.plan.profiles import parse_profile
from greenrt.precision.int8 import quantize_int8
from greenrt.tools.cli import main
from greenrt.tools.compare import run_onnxruntime

from .test_builder import _cnn

R = np.random.default_rng(11)
PROFILE = "x:1x3x16x16/8x3x16x16/16x3x16x16"


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    return _cnn(tmp_path_factory.mktemp("int8") / "cnn.onnx")


@pytest.fixture(scope="module")
def calib(tmp_path_factory):
    path = tmp_path_factory.mktemp("calib") / "calib.npz"
    np.savez(path, x=R.standard_normal((96, 3, 16, 16)).astype(np.float32))
    return path


def _config(**kw) -> BuildConfig:
    return BuildConfig(device="cpu", profiles=[parse_profile(PROFILE)], **kw)


@pytest.fixture(scope="module")
def int8_engine(cnn, calib, tmp_path_factory):
    out = tmp_path_factory.mktemp("int8eng") / "cnn_int8.engine"
    header = build_engine(cnn, out, _config(int8=True, calib=str(calib), calib_method="percentile"),
                          log=lambda m: None)
    return out, header


def _agreement(ours: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """Mean |error| over mean |reference| (INT8's rounding is spread over every value; its max error is set by the
    inputs the calibration did not see, which clip), and top-1 agreement."""
    rel = float(np.abs(ours - ref).mean() / np.abs(ref).mean())
    return rel, float((ours.argmax(1) == ref.argmax(1)).mean())


def test_convs_and_gemm_run_as_int8_layers_handing_int8_between_them(int8_engine):
    path, header = int8_engine
    sess = greenrt.InferenceSession(path)
    ops = [s.op_type for s in sess.plan.steps]
    assert ops.count("QConv") == 2 and ops.count("QMatMul") == 1
    assert not {"FusedConv", "FusedMatMul", "Conv", "Gemm", "DequantizeLinear"} & set(ops)
    # the input is quantized once; conv1 hands INT8 to conv2 (its input and its residual), conv2 hands float to
    # the pool, the pool's output is quantized for the classifier
    assert ops.count("QuantizeLinear") == 2
    int8 = header["report"]["int8"]
    assert int8["int8_layers"] == 3 and int8["int8_outputs"] == 1 and int8["float_layers"] == 0
    conv1, conv2 = (s for s in sess.plan.steps if s.op_type == "QConv")
    assert conv2.attrs["z_scale"] == pytest.approx(conv2.attrs["x_scale"])  # the same INT8 tensor, one scale
    # ReLU outputs cannot be negative: UINT8 at twice the resolution (threshold / 255); the image input is INT8
    calibration = header["report"]["int8"]["calibration"]
    assert conv1.attrs["out_dtype"] == 2 and conv2.attrs["x_scale"] == pytest.approx(conv1.attrs["y_scale"])
    engine = read_engine(path)
    zero_points = {s.inputs[0]: engine.weights[engine.plan.constants[s.inputs[2]]].dtype
                   for s in engine.plan.steps if s.op_type == "QuantizeLinear"}
    assert zero_points == {"x": torch.int8, "f": torch.uint8}, zero_points
    assert calibration["method"] == "percentile" and calibration["samples"] == 96
    # the engine holds INT8 weights, not float weights quantized on the fly
    weights = [engine.weights[engine.plan.constants[s.inputs[1]]] for s in engine.plan.steps
               if s.op_type in ("QConv", "QMatMul")]
    assert len(weights) == 3 and all(w.dtype == torch.int8 for w in weights)


def test_int8_engine_agrees_with_onnxruntime_fp32(cnn, int8_engine):
    path, _ = int8_engine
    sess = greenrt.InferenceSession(path)
    x = R.standard_normal((64, 3, 16, 16)).astype(np.float32)
    ours = np.concatenate([sess.run(None, {"x": x[i:i + 16]})[0] for i in range(0, 64, 16)])
    ref = run_onnxruntime(str(cnn), {"x": x})[0]
    rel, top1 = _agreement(ours, ref)
    # an fp32 engine is at ~1e-7 here, a broken quantization (a wrong scale, a wrong channel axis) at ~1
    assert 1e-4 < rel < 3e-2 and top1 >= 0.95, (rel, top1)


def test_calibration_cache_is_reused_and_refused_when_stale(cnn, calib, tmp_path):
    cache = tmp_path / "cnn.calib.json"
    timing = str(tmp_path / "timing.json")  # the same tactics in both (timed once, then read from the cache)
    first = build_engine(cnn, tmp_path / "a.engine", _config(int8=True, calib=str(calib), calib_cache=str(cache),
                                                             timing_cache=timing), log=lambda m: None)
    assert cache.exists() and not first["report"]["int8"]["calibration"]["reused"]
    assert json.loads(cache.read_text())["channel_means"]  # the conv/GEMM inputs' means: bias correction from the cache
    second = build_engine(cnn, tmp_path / "b.engine", _config(int8=True, calib_cache=str(cache), timing_cache=timing),
                          log=lambda m: None)
    assert second["report"]["int8"]["calibration"]["reused"]
    a, b = read_engine(tmp_path / "a.engine"), read_engine(tmp_path / "b.engine")
    assert a.plan.to_json() == b.plan.to_json()  # the same quantized graph: same scales, same INT8 weights
    assert a.weights.keys() == b.weights.keys() and all(torch.equal(a.weights[k], b.weights[k]) for k in a.weights)
    with pytest.raises(GreenrtError, match="made with --calib-method percentile, this run asks for minmax"):
        build_engine(cnn, tmp_path / "c.engine", _config(int8=True, calib_cache=str(cache), calib_method="minmax"),
                     log=lambda m: None)


def test_layers_kept_float_on_request_and_int8_with_fp16(cnn, calib, tmp_path):
    header = build_engine(cnn, tmp_path / "keep.engine", _config(
        int8=True, calib=str(calib), layer_precision="fc=fp32,conv1=fp16"), log=lambda m: None)
    kept = {k["node"]: k["reason"] for k in header["report"]["int8"]["kept_float"]}
    assert kept == {"conv1": "override conv1=fp16", "fc": "override fc=fp32"}
    ops = [s.op_type for s in greenrt.InferenceSession(tmp_path / "keep.engine").plan.steps]
    assert ops.count("QConv") == 1 and ops.count("FusedConv") == 1 and ops.count("FusedMatMul") == 1
    header = build_engine(cnn, tmp_path / "fp16.engine", _config(int8=True, calib=str(calib), precision="fp16"),
                          log=lambda m: None)
    assert header["report"]["int8"]["int8_layers"] == 3
    x = R.standard_normal((16, 3, 16, 16)).astype(np.float32)
    rel, top1 = _agreement(greenrt.InferenceSession(tmp_path / "fp16.engine").run(None, {"x": x})[0],
                           run_onnxruntime(str(cnn), {"x": x})[0])
    assert rel < 3e-2 and top1 >= 0.9, (rel, top1)


def test_bad_int8_settings_are_refused_before_any_work(cnn, calib, tmp_path):
    with pytest.raises(GreenrtError, match="an INT8 build needs calibration"):
        build_engine(cnn, tmp_path / "x.engine", _config(int8=True), log=lambda m: None)
    with pytest.raises(GreenrtError, match="add --int8"):
        build_engine(cnn, tmp_path / "x.engine", _config(calib=str(calib)), log=lambda m: None)
    with pytest.raises(GreenrtError, match="is not one of fp32, fp16, bf16, tf32, int8"):
        build_engine(cnn, tmp_path / "x.engine", _config(int8=True, calib=str(calib), layer_precision="fc=int4"),
                     log=lambda m: None)


def test_layers_without_a_usable_range_stay_float_with_the_reason(cnn):
    model = load_model(cnn)
    optimize(model)
    ranges = {"x": 4.0, "r2": 0.0}  # conv2's input r1 uncalibrated; the classifier's input never non-zero
    ranges["f"] = 0.0
    report = quantize_int8(model, ranges)
    reasons = {x.node: x.reason for x in report.kept}
    assert "no calibrated range" in reasons["conv2"] and "never non-zero" in reasons["fc"]
    assert [x.node for x in report.quantized] == ["conv1"] and report.quantized[0].out == "float"


def test_a_matmul_model_quantizes_its_gemms(tmp_path, calib):
    w1 = numpy_helper.from_array(R.standard_normal((32, 64)).astype(np.float32) * 0.2, "w1")
    w2 = numpy_helper.from_array(R.standard_normal((64, 10)).astype(np.float32) * 0.2, "w2")
    b1 = numpy_helper.from_array(R.standard_normal(64).astype(np.float32), "b1")
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"], name="mm1"), helper.make_node("Add", ["h", "b1"], ["hb"]),
             helper.make_node("Relu", ["hb"], ["r"]), helper.make_node("MatMul", ["r", "w2"], ["y"], name="mm2")]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])], [w1, w2, b1])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "mlp.onnx")
    np.savez(tmp_path / "mlp.npz", x=R.standard_normal((64, 32)).astype(np.float32))
    header = build_engine(tmp_path / "mlp.onnx", tmp_path / "mlp.engine", BuildConfig(
        device="cpu", profiles=[parse_profile("x:1x32/8x32/16x32")], int8=True, calib=str(tmp_path / "mlp.npz"),
        calib_method="percentile"), log=lambda m: None)
    assert header["report"]["int8"]["int8_layers"] == 2 and header["report"]["int8"]["int8_outputs"] == 1
    x = R.standard_normal((16, 32)).astype(np.float32)
    rel, top1 = _agreement(greenrt.InferenceSession(tmp_path / "mlp.engine").run(None, {"x": x})[0],
                           run_onnxruntime(str(tmp_path / "mlp.onnx"), {"x": x})[0])
    assert 1e-4 < rel < 3e-2 and top1 >= 0.9, (rel, top1)


def test_cli_build_int8(cnn, calib, tmp_path, capsys):
    out = tmp_path / "cli.engine"
    assert main(["build", str(cnn), "--int8", "--calib", str(calib), "--shapes", PROFILE, "-o", str(out),
                 "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "int8: 3 layer(s) INT8" in text and "calibrated over 96 samples" in text
    assert main(["build", str(cnn), "--int8", "--shapes", PROFILE, "-o", str(out), "--device", "cpu"]) == 2
    assert "needs calibration" in capsys.readouterr().err


def test_per_layer_compare_dequantizes_int8_layers_and_names_the_layer_that_lost_accuracy(cnn, int8_engine, calib,
                                                                                          tmp_path):
    from greenrt.tools.per_layer import per_layer_compare

    path, _ = int8_engine
    feeds = {"x": R.standard_normal((4, 3, 16, 16)).astype(np.float32)}
    report = per_layer_compare(greenrt.InferenceSession(path), str(cnn), feeds, rtol=1e-1, spread=False)
    assert report.precision == "int8+fp32"
    by_tensor = {r.tensor: r for r in report.layers}
    r1 = by_tensor["r1"]  # conv1's output (a ReLU's: UINT8), compared as the float it stands for
    assert r1.op_type == "greenrt.QConv" and r1.dtype == "uint8" and 1e-4 < r1.max_rel < 0.2  # a few clip
    # a layer built with a range far too small (conv1's output clipped at a tenth) is the first one flagged
    cache = tmp_path / "bad.calib.json"
    build_engine(cnn, tmp_path / "ok.engine", _config(int8=True, calib=str(calib), calib_cache=str(cache)),
                 log=lambda m: None)
    import json

    data = json.loads(cache.read_text())
    data["ranges"]["r1"] /= 10
    cache.write_text(json.dumps(data))
    build_engine(cnn, tmp_path / "bad.engine", _config(int8=True, calib_cache=str(cache)), log=lambda m: None)
    report = per_layer_compare(greenrt.InferenceSession(tmp_path / "bad.engine"), str(cnn), feeds, rtol=1e-1,
                               spread=False)
    first = next(r for r in report.layers if r.verdict != "match")
    assert first.tensor == "r1" and first.max_rel > 0.5
    from greenrt.tools.per_layer import worst_layers

    assert worst_layers(report)[0].step_name == "conv1"  # the layer that adds the most error, not the last one


def test_max_accuracy_drop_keeps_the_costliest_layers_float_and_writes_a_reproducible_rule(cnn, calib, tmp_path):
    config = _config(int8=True, calib=str(calib), max_accuracy_drop=1e-6, metric="cosine")
    header = build_engine(cnn, tmp_path / "s.engine", config, log=lambda m: None)
    search = header["report"]["int8"]["accuracy_search"]
    assert search["all_int8_drop"] > 1e-6 and search["met"] and search["final_drop"] <= 1e-6
    assert search["kept_float"] and set(search["sensitivity"]) == {"conv1", "conv2", "fc"}
    assert all(v["cost"] > 0 for v in search["sensitivity"].values())
    kept = {k["node"] for k in header["report"]["int8"]["kept_float"]}
    assert kept == set(search["kept_float"])
    # the rule it wrote builds the same engine without searching
    again = build_engine(cnn, tmp_path / "r.engine", _config(int8=True, calib=str(calib),
                                                             layer_precision=search["layer_precision"]),
                         log=lambda m: None)
    assert "accuracy_search" not in again["report"]["int8"]
    def layers(path):  # the graph and its numbers; the tactics are timed anew by each build
        return [(s.op_type, s.inputs, s.attrs) for s in read_engine(path).plan.steps]

    assert layers(tmp_path / "s.engine") == layers(tmp_path / "r.engine")
    # a budget already met keeps everything INT8 after one trial
    easy = build_engine(cnn, tmp_path / "e.engine", _config(int8=True, calib=str(calib), max_accuracy_drop=0.5,
                                                            metric="top1-agreement"), log=lambda m: None)
    assert easy["report"]["int8"]["accuracy_search"]["trials"] == 1 and easy["report"]["int8"]["int8_layers"] == 3
    with pytest.raises(GreenrtError, match="add --int8"):
        build_engine(cnn, tmp_path / "x.engine", _config(max_accuracy_drop=0.01), log=lambda m: None)
    with pytest.raises(GreenrtError, match="--metric 'nope'"):
        build_engine(cnn, tmp_path / "x.engine", _config(int8=True, calib=str(calib), max_accuracy_drop=0.01,
                                                         metric="nope"), log=lambda m: None)


@pytest.mark.gpu
def test_the_int8_reference_runs_on_the_gpu_as_on_the_cpu(cnn, calib, tmp_path):
    """The same calibration, the same quantized graph, built for CUDA: every INT8 layer's integer output is the
    CPU's (exact accumulators; a float32 epilogue that may round a tie the other way: at most one step, rarely)."""
    from greenrt.tools.per_layer import observe

    cache = tmp_path / "c.json"
    for device in ("cpu", "cuda"):
        build_engine(cnn, tmp_path / f"{device}.engine", BuildConfig(
            device=device, profiles=[parse_profile(PROFILE)], int8=True, calib=str(calib), calib_cache=str(cache)),
            log=lambda m: None)
    feeds = {"x": R.standard_normal((16, 3, 16, 16)).astype(np.float32)}
    seen = {}
    for device in ("cpu", "cuda"):
        steps, outputs = observe(greenrt.InferenceSession(tmp_path / f"{device}.engine", device=device), feeds,
                                 lambda name: True)
        seen[device] = {name: value for _, step, name, value in steps if step.op_type in ("QConv", "QMatMul")}
    assert seen["cpu"].keys() == seen["cuda"].keys() and len(seen["cpu"]) == 3
    for name, a in seen["cpu"].items():
        b = seen["cuda"][name]
        if a.dtype.kind in "iu":
            diff = np.abs(a.astype(np.int32) - b.astype(np.int32))
            assert diff.max() <= 1 and (diff == 0).mean() > 0.999, name
        else:
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5 * np.abs(a).max())


def test_drift_check_of_an_int8_engine_reads_its_model_and_cache(cnn, calib, tmp_path, capsys):
    cache, engine = tmp_path / "d.calib.json", tmp_path / "d.engine"
    build_engine(cnn, engine, _config(int8=True, calib=str(calib), calib_cache=str(cache)), log=lambda m: None)
    x = np.load(calib)["x"]
    np.savez(tmp_path / "same.npz", x=R.standard_normal(x.shape).astype(np.float32))
    np.savez(tmp_path / "bright.npz", x=(x * 3 + 1).astype(np.float32))  # a shifted, brighter set
    assert main(["calibrate", str(engine), "--check", str(tmp_path / "same.npz")]) == 0
    assert main(["calibrate", str(engine), "--check", str(tmp_path / "bright.npz")]) == 1
    assert "recalibrate" in capsys.readouterr().out
    plain = tmp_path / "plain.engine"
    build_engine(cnn, plain, _config(), log=lambda m: None)
    assert main(["calibrate", str(plain), "--check", str(tmp_path / "same.npz")]) == 2
    assert "not an INT8 engine" in capsys.readouterr().err


def test_embedding_tables_become_int8_rows(tmp_path):
    table = numpy_helper.from_array(R.standard_normal((300, 32)).astype(np.float32), "emb")
    w = numpy_helper.from_array(R.standard_normal((32, 8)).astype(np.float32) * 0.3, "w")
    nodes = [helper.make_node("Gather", ["emb", "ids"], ["e"], name="embed"),
             helper.make_node("MatMul", ["e", "w"], ["y"], name="proj")]
    graph = helper.make_graph(nodes, "emb", [helper.make_tensor_value_info("ids", TensorProto.INT64, ["N", 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5, 8])], [table, w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "emb.onnx")
    np.savez(tmp_path / "ids.npz", ids=R.integers(0, 300, (64, 5)))
    header = build_engine(tmp_path / "emb.onnx", tmp_path / "emb.engine", BuildConfig(
        device="cpu", profiles=[parse_profile("ids:1x5/8x5/16x5")], int8=True, calib=str(tmp_path / "ids.npz")),
        log=lambda m: None)
    layers = {x["node"]: x["precision"] for x in header["report"]["int8"]["layers"]}
    assert layers == {"embed": "int8", "proj": "int8"}
    engine = read_engine(tmp_path / "emb.engine")
    assert [s.op_type for s in engine.plan.steps if s.op_type.startswith("Q")] == ["QGather", "QuantizeLinear",
                                                                                   "QMatMul"]
    floats = sum(v.numel() for v in engine.weights.values() if v.dtype == torch.float32)
    assert floats < 1000  # the row and channel scales; no float copy of the 9,600-value table or the weight
    ids = R.integers(0, 300, (16, 5))
    ours = greenrt.InferenceSession(tmp_path / "emb.engine").run(None, {"ids": ids})[0]
    ref = run_onnxruntime(str(tmp_path / "emb.onnx"), {"ids": ids})[0]
    assert float(np.abs(ours - ref).mean() / np.abs(ref).mean()) < 2e-2


def test_bias_correction_takes_out_the_mean_shift_of_rounded_weights(tmp_path):
    """A depthwise conv with few, coarsely rounded weights per channel on inputs with a large mean: the rounding
    shifts each channel's mean by (W_q - W) E[x]; the corrected bias takes it out (no padding: the correction is
    exact in expectation there)."""
    c = 16
    w1 = R.standard_normal((c, 1, 3, 3)).astype(np.float32)
    w2 = (R.standard_normal((8, c, 1, 1)) * 0.3).astype(np.float32)
    inits = [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(R.standard_normal(c).astype(np.float32), "b1"),
             numpy_helper.from_array(w2, "w2"), numpy_helper.from_array(np.zeros(8, np.float32), "b2")]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["h"], name="dw", group=c, kernel_shape=[3, 3]),
             helper.make_node("Conv", ["h", "w2", "b2"], ["y"], name="pw", kernel_shape=[1, 1])]
    graph = helper.make_graph(nodes, "dw", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", c, 12, 12])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8, 10, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "dw.onnx")
    offset = R.uniform(2.0, 6.0, (1, c, 1, 1))  # a large mean per channel, different per channel
    data = lambda n: (offset + R.uniform(-1.0, 1.0, (n, c, 12, 12))).astype(np.float32)  # noqa: E731
    np.savez(tmp_path / "cal.npz", x=data(256))
    x = data(256)
    ref = run_onnxruntime(str(tmp_path / "dw.onnx"), {"x": x})[0].astype(np.float64)
    shift = {}
    for corrected in (True, False):
        out = tmp_path / f"dw_{corrected}.engine"
        header = build_engine(tmp_path / "dw.onnx", out, BuildConfig(
            device="cpu", profiles=[parse_profile(f"x:1x{c}x12x12/8x{c}x12x12/256x{c}x12x12")], int8=True,
            calib=str(tmp_path / "cal.npz"), bias_correction=corrected), log=lambda m: None)
        assert header["report"]["int8"]["bias_corrected"] == (2 if corrected else 0)
        ours = greenrt.InferenceSession(out).run(None, {"x": x})[0].astype(np.float64)
        shift[corrected] = float(np.abs((ours - ref).mean(axis=(0, 2, 3))).max())
        assert float(np.abs(ours - ref).mean() / np.abs(ref).mean()) < 3e-2
    assert shift[False] > 0.01 and shift[True] < 0.25 * shift[False], shift


def test_smoothing_moves_an_activation_outlier_channel_into_the_weights(tmp_path):
    """One input channel 40x larger than the rest (as in transformers' LayerNorm outputs): per-tensor INT8 spends
    its range on it and rounds the others coarsely; --smooth divides each channel by s_k and scales the weight rows
    by it (a per-axis QuantizeLinear, the GEMM itself unchanged), and the error drops."""
    k, n = 32, 16
    w = (R.standard_normal((k, n)) * 0.2).astype(np.float32)
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="fc")], "mm",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8, n])],
                              [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "mm.onnx")
    spread = np.ones((1, 1, k))
    spread[..., 5] = 40.0
    data = lambda m: (R.standard_normal((m, 8, k)) * spread).astype(np.float32)  # noqa: E731
    np.savez(tmp_path / "cal.npz", x=data(128))
    x = data(64)
    ref = run_onnxruntime(str(tmp_path / "mm.onnx"), {"x": x})[0]
    err = {}
    for smooth in (None, 0.5, "auto"):
        out = tmp_path / f"mm_{smooth}.engine"
        header = build_engine(tmp_path / "mm.onnx", out, BuildConfig(
            device="cpu", profiles=[parse_profile("x:1x8x32/8x8x32/64x8x32")], int8=True,
            calib=str(tmp_path / "cal.npz"), calib_method="minmax", smooth=smooth), log=lambda m: None)
        assert header["report"]["int8"]["smoothed"] == (1 if smooth else 0)
        if smooth == "auto":  # chosen on the tuning data (here the calibration data) among 0.5-0.9 and none
            chosen = header["report"]["int8"]["smooth"]
            assert chosen["chosen"] in (0.5, 0.6, 0.7, 0.8, 0.9) and chosen["errors"]["none"] > min(
                chosen["errors"].values())
        plan = read_engine(out).plan
        quantize = next(s for s in plan.steps if s.op_type == "QuantizeLinear")
        assert ("axis" in quantize.attrs) == bool(smooth)  # per channel of x only when smoothed
        ours = greenrt.InferenceSession(out).run(None, {"x": x})[0]
        err[smooth] = float(np.abs(ours - ref).mean() / np.abs(ref).mean())
    assert err[0.5] < 0.5 * err[None] and err["auto"] < 0.5 * err[None], err
    with pytest.raises(GreenrtError, match="--smooth 2"):
        BuildConfig(int8=True, calib="c.npz", smooth=2.0).validate()
    assert main(["build", str(tmp_path / "mm.onnx"), "--int8", "--calib", str(tmp_path / "cal.npz"), "--smooth",
                 "x"]) == 2


def test_int8_passes_through_max_pooling_in_its_type_and_scale(tmp_path):
    """ResNet's stem: conv + ReLU -> MaxPool -> conv. The stem hands UINT8 through the MaxPool to the next conv (no
    float tensor, no QuantizeLinear between them), and the result still agrees with onnxruntime fp32."""
    w1 = numpy_helper.from_array(R.standard_normal((16, 3, 3, 3)).astype(np.float32) * 0.3, "w1")
    b1 = numpy_helper.from_array(R.standard_normal(16).astype(np.float32) * 0.1, "b1")
    w2 = numpy_helper.from_array(R.standard_normal((8, 16, 3, 3)).astype(np.float32) * 0.1, "w2")
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="stem"),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu"),
             helper.make_node("MaxPool", ["r1"], ["p"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
                              name="pool"),
             helper.make_node("Conv", ["p", "w2"], ["y"], pads=[1, 1, 1, 1], name="conv")]
    graph = helper.make_graph(nodes, "stem", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 16, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8, 8, 8])], [w1, b1, w2])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "stem.onnx")
    np.savez(tmp_path / "c.npz", x=R.standard_normal((64, 3, 16, 16)).astype(np.float32))
    header = build_engine(tmp_path / "stem.onnx", tmp_path / "stem.engine", BuildConfig(
        device="cpu", profiles=[parse_profile("x:1x3x16x16/8x3x16x16/16x3x16x16")], int8=True,
        calib=str(tmp_path / "c.npz")), log=lambda m: None)
    assert header["report"]["int8"]["passed_through"] == 1
    steps = read_engine(tmp_path / "stem.engine").plan.steps
    assert [s.op_type for s in steps] == ["QuantizeLinear", "QConv", "MaxPool", "QConv"]
    stem, conv = steps[1], steps[3]
    assert stem.attrs["out_dtype"] == 2 and conv.attrs["x_scale"] == pytest.approx(stem.attrs["y_scale"])
    x = R.standard_normal((16, 3, 16, 16)).astype(np.float32)
    ours = greenrt.InferenceSession(tmp_path / "stem.engine").run(None, {"x": x})[0]
    ref = run_onnxruntime(str(tmp_path / "stem.onnx"), {"x": x})[0]
    rel = float(np.abs(ours - ref).mean() / np.abs(ref).mean())
    assert 1e-4 < rel < 3e-2, rel


def test_fp8_builds_the_same_layers_in_float8_e4m3(cnn, calib, int8_engine, tmp_path, capsys):
    """--fp8: the INT8 pipeline with float8 e4m3 layers: float8 weights (no float copies), float8 handed between the
    layers (no UINT8: float8 is signed), activation scales threshold / 448; its accuracy against onnxruntime fp32
    next to the INT8 engine's (on this model e4m3's 3-bit mantissa costs more than INT8's 127 steps)."""
    out = tmp_path / "cnn_fp8.engine"
    assert main(["build", str(cnn), "-o", str(out), "--device", "cpu", "--shapes", PROFILE, "--fp8",
                 "--calib", str(calib), "--calib-method", "percentile"]) == 0
    assert "fp8: 3 layer(s) FP8" in capsys.readouterr().out.replace("\n", " ")
    engine = read_engine(out)
    assert engine.header["config"]["fp8"] and "--fp8" in engine.header["config"]["build_command"]
    int8_steps = {s.name: s for s in read_engine(int8_engine[0]).plan.steps}
    for s in engine.plan.steps:
        if s.op_type in ("QConv", "QMatMul"):
            assert engine.weights[engine.plan.constants[s.inputs[1]]].dtype == torch.float8_e4m3fn
            x_scale = s.attrs.get("x_scale", s.attrs.get("a_scale"))
            int8_x_scale = int8_steps[s.name].attrs.get("x_scale", int8_steps[s.name].attrs.get("a_scale"))
            # the same calibrated threshold: / 448 here, / 127 (INT8) or / 255 (UINT8) there
            assert any(x_scale * 448 == pytest.approx(int8_x_scale * top, rel=1e-5) for top in (127, 255))
    assert [s.attrs["out_dtype"] for s in engine.plan.steps if s.op_type == "QConv"] == [17, 1]
    x = R.standard_normal((64, 3, 16, 16)).astype(np.float32)
    ref = run_onnxruntime(str(cnn), {"x": x})[0]
    fp8 = greenrt.InferenceSession(out)
    ours = np.concatenate([fp8.run(None, {"x": x[i:i + 16]})[0] for i in range(0, 64, 16)])
    rel, top1 = _agreement(ours, ref)
    assert 1e-3 < rel < 6e-2 and top1 >= 0.7, (rel, top1)


def test_inspect_shows_the_int8_tensors_between_layers_and_the_reformats(int8_engine, capsys):
    """conv1 hands UINT8 to conv2 (input and residual: one tensor); conv2 and the classifier write float; the
    input and the pool's output are quantized: two QuantizeLinear reformats."""
    from greenrt.tools.precision_flow import precision_flow

    path, _ = int8_engine
    flow = precision_flow(read_engine(path).plan)
    assert flow.to_json() == {"quantized_layers": 3, "handed_on": {"UINT8": 1}, "float_out": 2,
                              "reformats": {"QuantizeLinear": 2}}
    assert main(["inspect", "model", str(path)]) == 0
    out = " ".join(capsys.readouterr().out.split())  # the console wraps at its width
    assert ("precision flow: 3 quantized layers hand 1 tensor(s) on without leaving low precision (UINT8 1); 2 write "
            "float for float readers; reformats in the plan: 2 QuantizeLinear") in out
