"""greenrt inspect model: the layer table, --export (the optimized graph as an ONNX file onnxruntime runs, fused ops
as model-local functions) and --profile/--plot (per-layer timing), on small CNN and transformer-block models."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import greenrt
from greenrt.build import BuildConfig, build_engine
from greenrt.plan.engine_file import read_engine
from greenrt.plan.profiles import parse_profile
from greenrt.tools.cli import main
from greenrt.tools.export_onnx import GREENRT, NotExportableError, plan_to_onnx

R = np.random.default_rng(7)


def _init(name, shape, positive=False, scale=0.3):
    a = R.standard_normal(shape).astype(np.float32) * scale
    return numpy_helper.from_array(np.abs(a) + 0.5 if positive else a, name)


def _scalar(name, value):
    return numpy_helper.from_array(np.array(value, np.float32), name)


def _cnn(path):
    """Conv-BN-Relu -> Conv + bias + residual Add -> Relu -> Conv + HardSigmoid-times (HardSwish) -> pool -> Gemm-Relu
    -> Gemm, dynamic batch."""
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("BatchNormalization", ["c1", "g", "b", "m", "v"], ["bn"], name="bn1"),
        helper.make_node("Relu", ["bn"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], name="conv2"),
        helper.make_node("Add", ["c2", "r1"], ["res"], name="residual"),
        helper.make_node("Relu", ["res"], ["r2"], name="relu2"),
        helper.make_node("Conv", ["r2", "w3", "b3"], ["c3"], strides=[2, 2], name="conv3"),
        helper.make_node("HardSwish", ["c3"], ["h3"], name="hswish3"),
        helper.make_node("GlobalAveragePool", ["h3"], ["p"], name="pool"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc1", "fc1b"], ["g1"], transB=1, name="fc1"),
        helper.make_node("Relu", ["g1"], ["gr"], name="fc1_relu"),
        helper.make_node("Gemm", ["gr", "fc2", "fc2b"], ["logits"], transB=1, name="fc2"),
    ]
    inits = [_init("w1", [8, 3, 3, 3]), _init("g", [8]), _init("b", [8]), _init("m", [8]), _init("v", [8], True),
             _init("w2", [8, 8, 3, 3]), _init("b2", [8]), _init("w3", [8, 8, 1, 1]), _init("b3", [8]),
             _init("fc1", [12, 8]), _init("fc1b", [12]), _init("fc2", [10, 12]), _init("fc2b", [10])]
    graph = helper.make_graph(nodes, "cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 16, 16])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def _block(path):
    """A transformer block over x [B, S, 16]: decomposed LayerNorm, single-head attention (Transpose, MatMul,
    Div by sqrt(d), Add mask, Softmax, MatMul), residual, MatMul + bias + decomposed erf GELU, MatMul + bias."""
    d = 16

    def mean(inp, out):
        return helper.make_node("ReduceMean", [inp], [out], axes=[-1])

    nodes = [
        mean("x", "mu"), helper.make_node("Sub", ["x", "mu"], ["xc"]),
        helper.make_node("Pow", ["xc", "two"], ["sq"]), mean("sq", "var"),
        helper.make_node("Add", ["var", "eps"], ["ve"]), helper.make_node("Sqrt", ["ve"], ["sd"]),
        helper.make_node("Div", ["xc", "sd"], ["n"]), helper.make_node("Mul", ["n", "gamma"], ["gn"]),
        helper.make_node("Add", ["gn", "beta"], ["ln"]),
        helper.make_node("MatMul", ["ln", "wq"], ["q"]), helper.make_node("MatMul", ["ln", "wk"], ["k"]),
        helper.make_node("MatMul", ["ln", "wv"], ["v"]),
        helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
        helper.make_node("MatMul", ["q", "kt"], ["qk"]), helper.make_node("Div", ["qk", "scale"], ["qks"]),
        helper.make_node("Add", ["qks", "mask"], ["qkm"]), helper.make_node("Softmax", ["qkm"], ["p"], axis=-1),
        helper.make_node("MatMul", ["p", "v"], ["att"]), helper.make_node("Add", ["att", "x"], ["h"]),
        helper.make_node("MatMul", ["h", "w1"], ["m1"]), helper.make_node("Add", ["m1", "b1"], ["hb"]),
        helper.make_node("Div", ["hb", "sqrt2"], ["hd"]), helper.make_node("Erf", ["hd"], ["he"]),
        helper.make_node("Add", ["he", "one"], ["he1"]), helper.make_node("Mul", ["hb", "he1"], ["hp"]),
        helper.make_node("Mul", ["hp", "half"], ["gelu"]),
        helper.make_node("MatMul", ["gelu", "w2"], ["m2"]), helper.make_node("Add", ["m2", "b2"], ["y"]),
    ]
    inits = [_scalar("two", 2.0), _scalar("eps", 1e-5), _scalar("scale", d ** 0.5), _scalar("sqrt2", 2 ** 0.5),
             _scalar("one", 1.0), _scalar("half", 0.5), _init("gamma", [d]), _init("beta", [d]),
             _init("wq", [d, d]), _init("wk", [d, d]), _init("wv", [d, d]), _init("w1", [d, 32]), _init("b1", [32]),
             _init("w2", [32, d]), _init("b2", [d])]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 6, d]),
              helper.make_tensor_value_info("mask", TensorProto.FLOAT, [2, 1, 6])]
    output = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 6, d])
    graph = helper.make_graph(nodes, "block", inputs, [output], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def _feeds(name):
    if name == "cnn":
        return {"x": R.standard_normal((3, 3, 16, 16)).astype(np.float32)}
    mask = np.where(R.random((2, 1, 6)) < 0.3, -1e4, 0.0).astype(np.float32)
    return {"x": R.standard_normal((2, 6, 16)).astype(np.float32) * 2 + 0.5, "mask": mask}


EXPECTED_FUSED = {"cnn": {"FusedConv", "FusedMatMul"},
                  "block": {"LayerNormalization", "ScaledDotProductAttention", "FusedMatMul"}}


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("inspect")
    out = {}
    for name, make in (("cnn", _cnn), ("block", _block)):
        model = make(tmp / f"{name}.onnx")
        for precision in ("fp32", "fp16"):
            profiles = [parse_profile("x:1x3x16x16/3x3x16x16/4x3x16x16")] if name == "cnn" else []
            path = tmp / f"{name}_{precision}.engine"
            build_engine(model, path, BuildConfig(device="cpu", precision=precision, profiles=profiles),
                         log=lambda m: None)
            out[name, precision] = (model, path)
    return out


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("name", ["cnn", "block"])
def test_export_is_valid_onnx_with_local_functions_and_runs_like_the_engine(engines, name, precision, tmp_path):
    _, engine_path = engines[name, precision]
    out = tmp_path / "optimized.onnx"
    assert main(["inspect", "model", str(engine_path), "--export", str(out)]) == 0
    model = onnx.load(out)
    onnx.checker.check_model(model, full_check=True)

    fused = [n for n in model.graph.node if n.domain == GREENRT]
    assert EXPECTED_FUSED[name] <= {n.op_type for n in fused}, [n.op_type for n in model.graph.node]
    functions = {(f.domain, f.name, f.overload) for f in model.functions}
    assert all((GREENRT, n.op_type, n.overload) in functions for n in fused)
    assert all(n.domain == "" for f in model.functions for n in f.node)  # bodies are standard ONNX ops
    if precision == "fp16":  # weights stay fp16, with the precision stage's Casts
        assert any(t.data_type == TensorProto.FLOAT16 for t in model.graph.initializer)
        assert any(n.op_type == "Cast" for n in model.graph.node)

    feeds = _feeds(name)
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, feeds)
    want = greenrt.load(engine_path).run(None, feeds)
    rtol = 1e-5 if precision == "fp32" else 1e-3
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.astype(np.float32), w.astype(np.float32), rtol=rtol, atol=rtol * np.abs(w).max())


def test_export_of_an_onnx_file_builds_it_first(engines, tmp_path):
    model, _ = engines["block", "fp32"]
    out = tmp_path / "block_optimized.onnx"
    assert main(["inspect", "model", str(model), "--export", str(out)]) == 0
    exported = onnx.load(out)
    onnx.checker.check_model(exported, full_check=True)
    feeds = _feeds("block")
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, feeds)
    want = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, feeds)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-4, atol=1e-4 * np.abs(want[0]).max())


def test_a_fused_op_without_an_onnx_form_is_named_not_written(engines):
    engine = read_engine(engines["cnn", "fp32"][1])
    step = next(s for s in engine.plan.steps if s.op_type == "FusedConv")
    step.attrs["activation"] = "Mish"  # no ONNX form in the exporter
    with pytest.raises(NotExportableError) as exc:
        plan_to_onnx(engine.plan, engine.weights)
    assert len(exc.value.ops) == 1 and step.name in exc.value.ops[0] and "Mish" in exc.value.ops[0]


def test_inspect_lists_layers_with_fused_ops_precision_layout_and_implementation(engines, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "240")
    assert main(["inspect", "model", str(engines["cnn", "fp16"][1])]) == 0
    out = capsys.readouterr().out
    for text in ("layers: ", "conv2", "greenrt.FusedConv", "Conv + bias + residual Add + Relu", "FusedConv-1",
                 "FusedMatMul-1", "MatMul (W as N x K) + bias + Relu", "NHWC", "fp16", "optimization profiles", "3x3x16x16",
                 "graph passes", "fuse_conv", "memory plan", "precision fp16"):
        assert text in out, text
    assert main(["inspect", "model", str(engines["block", "fp32"][1])]) == 0
    out = capsys.readouterr().out
    for text in ("LayerNorm: ReduceMean", "attention: MatMul(Q, K^T)", "fp32", "ScaledDotProductAttention-1"):
        assert text in out, text


def test_profile_times_every_layer_and_plots(engines, capsys, monkeypatch, tmp_path):
    from greenrt.runtime.runner import Runner
    from greenrt.tools.profile_layers import profile_layers
    import torch

    engine = read_engine(engines["cnn", "fp32"][1])
    runner = Runner(engine.plan, engine.weights, "cpu", channels_last=True)
    prof = profile_layers(runner, {"x": torch.from_numpy(_feeds("cnn")["x"])}, runs=5)
    assert len(prof.layers) == len(engine.plan.steps) and all(l.ms >= 0 for l in prof.layers)
    assert prof.total_ms > 0
    assert 0.3 * prof.full_run_ms < prof.total_ms < 3 * prof.full_run_ms + 1.0  # close to a full run (ms)

    monkeypatch.setenv("COLUMNS", "240")
    png = tmp_path / "layers.png"
    assert main(["inspect", "model", str(engines["cnn", "fp32"][1]), "--profile", "--top", "3", "--runs", "3",
                 "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "slowest 3 of" in out and "sum of layers" in out and "full run" in out
    pytest.importorskip("matplotlib")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _activations(path):
    """Opset 13: decomposed erf GELU and x * Clip(x + 3, 0, 6) / 6 after Adds (nothing to fuse them into), so they
    stay greenrt.Gelu and greenrt.HardSwish (ONNX's HardSwish needs opset 14)."""
    nodes = [
        helper.make_node("Add", ["x", "y"], ["a"]),
        helper.make_node("Div", ["a", "sqrt2"], ["d"]), helper.make_node("Erf", ["d"], ["e"]),
        helper.make_node("Add", ["e", "one"], ["e1"]), helper.make_node("Mul", ["a", "e1"], ["p"]),
        helper.make_node("Mul", ["p", "half"], ["g"]),
        helper.make_node("Add", ["g", "y"], ["b"]),
        helper.make_node("Add", ["b", "three"], ["b3"]), helper.make_node("Clip", ["b3", "zero", "six"], ["c"]),
        helper.make_node("Mul", ["b", "c"], ["bc"]), helper.make_node("Div", ["bc", "six"], ["out"]),
    ]
    inits = [_scalar("sqrt2", 2 ** 0.5), _scalar("one", 1.0), _scalar("half", 0.5), _scalar("three", 3.0),
             _scalar("zero", 0.0), _scalar("six", 6.0)]
    vi = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [4, 8]) for n in ("x", "y")]
    graph = helper.make_graph(nodes, "acts", vi, [helper.make_tensor_value_info("out", TensorProto.FLOAT, [4, 8])],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    onnx.save(model, path)
    return path


def _control_flow(path):
    """If on data (then: Conv + Relu, else: Neg) and a Loop adding 1 three times: subgraphs as graph attributes."""
    out = lambda n: helper.make_tensor_value_info(n, TensorProto.FLOAT, None)  # noqa: E731
    then_g = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
                                helper.make_node("Relu", ["c"], ["t"])], "then", [], [out("t")])
    else_g = helper.make_graph([helper.make_node("Neg", ["x"], ["e"])], "else", [], [out("e")])
    body = helper.make_graph(
        [helper.make_node("Add", ["acc", "one"], ["acc2"]), helper.make_node("Identity", ["cond_in"], ["cond_out"])],
        "body", [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                 helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []), out("acc")],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []), out("acc2")])
    nodes = [helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
             helper.make_node("Greater", ["s", "zero"], ["cond"]),
             helper.make_node("If", ["cond"], ["y"], then_branch=then_g, else_branch=else_g),
             helper.make_node("Loop", ["n", "true", "x"], ["z"], body=body), helper.make_node("Add", ["y", "z"], ["o"])]
    inits = [_init("w", [3, 3, 3, 3]), _scalar("zero", 0.0), _scalar("one", 1.0),
             numpy_helper.from_array(np.array(3, np.int64), "n"), numpy_helper.from_array(np.array(True), "true")]
    graph = helper.make_graph(nodes, "cf", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("o", TensorProto.FLOAT, [1, 3, 8, 8])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


@pytest.mark.parametrize("make", [_activations, _control_flow])
def test_export_standalone_activations_and_subgraphs(make, tmp_path):
    model = make(tmp_path / "m.onnx")
    engine = tmp_path / "m.engine"
    build_engine(model, engine, BuildConfig(device="cpu"), log=lambda m: None)
    out = tmp_path / "m_optimized.onnx"
    assert main(["inspect", "model", str(engine), "--export", str(out)]) == 0
    exported = onnx.load(out)
    onnx.checker.check_model(exported, full_check=True)
    ops = {n.op_type for n in exported.graph.node if n.domain == GREENRT}
    if make is _activations:
        assert ops == {"Gelu", "HardSwish"}
    else:
        assert {"If", "Loop"} <= {n.op_type for n in exported.graph.node}
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    ours = greenrt.load(engine)
    inputs = [i.name for i in session.get_inputs()]
    for sign in (1.0, -1.0):  # both If branches
        feeds = {n: (np.abs(R.standard_normal(i.shape)) * sign).astype(np.float32)
                 for n, i in zip(inputs, session.get_inputs())}
        got, want = session.run(None, feeds)[0], ours.run(None, feeds)[0]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


def test_plot_without_matplotlib_says_what_to_install(monkeypatch, tmp_path):
    import sys

    from greenrt.tools.profile_layers import LayerProfile, LayerTime, plot_layers

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails as if not installed
    prof = LayerProfile("cpu", 1, [LayerTime(0, "conv1", "greenrt.FusedConv", "FusedConv-1", "fp32", 1.0)], 1.0)
    assert "pip install matplotlib" in plot_layers(prof, str(tmp_path / "p.png"))
    assert not (tmp_path / "p.png").exists()


def test_inspect_lists_each_profile_range(tmp_path, capsys):
    """The profiles table shows every input's min/opt/max (it printed an empty table for engines with profiles)."""
    from ..conftest import make_mlp_model

    onnx_path, engine = tmp_path / "mlp.onnx", tmp_path / "mlp.engine"
    import onnx

    onnx.save(make_mlp_model(), onnx_path)
    assert main(["build", str(onnx_path), "-o", str(engine), "--shapes", "x:1x8/4x8/16x8"]) == 0
    capsys.readouterr()
    assert main(["inspect", "model", str(engine)]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if "1x8" in line and "│" in line)
    assert [cell.strip() for cell in row.strip("│ ").split("│")] == ["0", "x", "1x8", "4x8", "16x8"]
