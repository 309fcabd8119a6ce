"""`greenrt compare --per-layer`: every fused layer judged against onnxruntime's tensor of the same name, the first
bad layer named, and the plan run as it is fused."""

import dataclasses
import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from greenrt.build import BuildConfig, build_engine
from greenrt.ops import REGISTRY
from greenrt.runtime.session import InferenceSession
from greenrt.tools import per_layer
from greenrt.tools.cli import main
from greenrt.tools.compare import MATCH, MISMATCH


def make_chain() -> onnx.ModelProto:
    """x[2,8] -> MatMul+Add -> Tanh -> Sin -> MatMul+Add -> Sigmoid -> MatMul: fuses into 4 steps, Sin on its own."""
    r = np.random.default_rng(3)
    inits = [numpy_helper.from_array(r.standard_normal(s).astype(np.float32) * 0.5, n)
             for n, s in (("W1", (8, 16)), ("b1", (16,)), ("W2", (16, 16)), ("b2", (16,)), ("W3", (16, 4)))]
    nodes = [
        helper.make_node("MatMul", ["x", "W1"], ["m1"], name="mm1"),
        helper.make_node("Add", ["m1", "b1"], ["a1"], name="add1"),
        helper.make_node("Tanh", ["a1"], ["t1"], name="tanh1"),
        helper.make_node("Sin", ["t1"], ["s1"], name="sin1"),
        helper.make_node("MatMul", ["s1", "W2"], ["m2"], name="mm2"),
        helper.make_node("Add", ["m2", "b2"], ["a2"], name="add2"),
        helper.make_node("Sigmoid", ["a2"], ["g2"], name="sig2"),
        helper.make_node("MatMul", ["g2", "W3"], ["y"], name="mm3"),
    ]
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.fixture
def chain(tmp_path):
    path = tmp_path / "chain.onnx"
    onnx.save(make_chain(), path)
    return path


@pytest.fixture
def chain_engine(chain, tmp_path):
    path = tmp_path / "chain.engine"
    build_engine(chain, path, BuildConfig(device="cpu"), log=lambda msg: None)
    return path


@pytest.fixture
def corrupt_sin(monkeypatch):
    """greenrt's Sin adds 1e-2 * its output: one deliberately wrong layer."""
    lookup = REGISTRY.lookup

    def wrapped(domain, op_type, opset):
        impl = lookup(domain, op_type, opset)
        if impl is None or op_type != "Sin":
            return impl

        def wrong(*args, **kwargs):
            out = impl.fn(*args, **kwargs)
            return out + 1e-2 * out

        return dataclasses.replace(impl, fn=wrong)

    monkeypatch.setattr(REGISTRY, "lookup", wrapped)


def _feeds(seed=0):
    return {"x": np.random.default_rng(seed).standard_normal((2, 8)).astype(np.float32)}


def test_clean_model_matches_every_layer(chain_engine, chain, tmp_path, capsys):
    out = tmp_path / "layers.json"
    assert main(["compare", "--per-layer", str(chain_engine), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "every layer within the tolerance" in text and "verdict: match" in text
    data = json.loads(out.read_text())
    assert data["format"] == per_layer.JSON_FORMAT and data["reference"] == str(chain)
    assert data["first_over_tolerance"] is None and data["first_mismatch"] is None
    assert [r["tensor"] for r in data["layers"]] == ["t1", "s1", "g2", "y"]  # graph order, fused names kept
    assert all(r["verdict"] == MATCH and r["max_rel"] < 1e-5 for r in data["layers"])
    assert data["inputs"]["source"] == "random, seed 0" and data["inputs"]["shapes"] == {"x": [2, 8]}


def test_corrupted_layer_is_the_first_bad_one(chain_engine, corrupt_sin, tmp_path, capsys):
    out = tmp_path / "layers.json"
    assert main(["compare", "--per-layer", str(chain_engine), "--json", str(out)]) == 1
    text = capsys.readouterr().out
    assert "first layer over the tolerance: #1 s1 (Sin" in text and "first MISMATCH: #1 s1" in text
    data = json.loads(out.read_text())
    assert data["first_over_tolerance"] == "s1" and data["first_mismatch"] == "s1" and data["verdict"] == MISMATCH
    layers = data["layers"]
    assert layers[0]["tensor"] == "t1" and layers[0]["verdict"] == MATCH  # everything before it matches
    assert layers[1]["verdict"] == MISMATCH and layers[1]["max_rel"] > 3e-3
    assert layers[1]["spread_abs"] is not None and layers[1]["spread_abs"] < 1e-5  # the references agree


def test_per_layer_run_does_not_change_the_fused_plan(chain_engine):
    session = InferenceSession(str(chain_engine))
    built = [(s.domain, s.op_type) for s in session.plan.steps]
    seen, outputs = per_layer.observe(session, _feeds(), lambda name: True)
    ran = [(step.domain, step.op_type) for _, step, _, _ in seen]
    assert ran == built and len(seen) == len(session.plan.steps) == 4
    assert ("greenrt", "FusedMatMul") in built  # the fusion is what ran
    np.testing.assert_allclose(outputs[0].numpy(), session.run(None, _feeds())[0], rtol=0, atol=0)
    report = per_layer.per_layer_compare(session, session.header["config"]["model"], _feeds(), spread=False)
    assert report.steps == len(built) and not report.skipped


def test_save_and_load_inputs_round_trip(chain, tmp_path, capsys):
    saved = tmp_path / "in.npz"
    assert main(["compare", "--per-layer", str(chain), "--seed", "5", "--save-inputs", str(saved),
                 "--json", str(tmp_path / "a.json")]) == 0
    with np.load(saved) as f:
        assert f["x"].shape == (2, 8) and np.abs(f["x"]).min() > 0
        x = f["x"].copy()
    assert main(["compare", "--per-layer", str(chain), "--load-inputs", str(saved), "--save-inputs",
                 str(tmp_path / "again.npz"), "--json", str(tmp_path / "b.json")]) == 0
    with np.load(tmp_path / "again.npz") as f:
        np.testing.assert_array_equal(f["x"], x)
    a, b = (json.loads((tmp_path / n).read_text()) for n in ("a.json", "b.json"))
    assert [r["max_abs"] for r in a["layers"]] == [r["max_abs"] for r in b["layers"]]  # the same inputs ran
    assert b["inputs"]["source"] == f"file {saved}"


def test_data_loader_script_is_used(chain, tmp_path):
    script = tmp_path / "loader.py"
    script.write_text("import numpy as np\n\ndef load_data():\n"
                      "    rng = np.random.default_rng(11)\n"
                      "    for _ in range(3):\n"
                      "        yield {'x': rng.standard_normal((2, 8)).astype(np.float32) * 3}\n")
    saved, out = tmp_path / "used.npz", tmp_path / "o.json"
    assert main(["compare", "--per-layer", str(chain), "--data-loader", str(script), "--save-inputs", str(saved),
                 "--json", str(out)]) == 0
    expected = np.random.default_rng(11).standard_normal((2, 8)).astype(np.float32) * 3
    with np.load(saved) as f:
        np.testing.assert_array_equal(f["x"], expected)
    assert json.loads(out.read_text())["inputs"]["source"].startswith("data loader")


def test_data_loader_without_load_data_is_an_error(chain, tmp_path, capsys):
    script = tmp_path / "bad.py"
    script.write_text("x = 1\n")
    assert main(["compare", "--per-layer", str(chain), "--data-loader", str(script)]) == 2
    assert "load_data" in capsys.readouterr().err


def test_plot_writes_a_png(chain_engine, corrupt_sin, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "growth.png"
    assert main(["compare", "--per-layer", str(chain_engine), "--no-spread", "--plot", str(png)]) == 1
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_fp16_build_of_an_onnx_file_reports_growth(tmp_path, capsys):
    from tests.conftest import make_mlp_model

    model = tmp_path / "mlp.onnx"
    onnx.save(make_mlp_model(batch=4), model)
    out = tmp_path / "o.json"
    assert main(["compare", "--per-layer", str(model), "--precision", "fp16", "--rtol", "1e-2",
                 "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["precision"] == "fp16" and "--fp16" in data["build_command"]
    assert data["skipped"]["count"] >= 1  # the casts the precision stage inserted have no ONNX tensor
    layers = data["layers"]
    assert layers[-1]["tensor"] == "probs" and len(layers) >= 3
    assert layers[-1]["op_type"] == "Softmax + Cast"  # the reduced graph output and its cast back to fp32
    assert all(0 < r["max_rel"] < 1e-2 for r in layers)  # fp16 rounding, not zero, not large


def test_build_flags_are_refused_for_an_engine_and_without_per_layer(chain_engine, chain, capsys):
    assert main(["compare", "--per-layer", str(chain_engine), "--precision", "fp16"]) == 2
    assert "engine" in capsys.readouterr().err
    assert main(["compare", str(chain), "--plot", "x.png"]) == 2
    assert "--per-layer" in capsys.readouterr().err


def test_plot_without_matplotlib_says_what_to_install_and_continues(chain_engine, tmp_path, monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    png, out = tmp_path / "growth.png", tmp_path / "o.json"
    assert main(["compare", "--per-layer", str(chain_engine), "--plot", str(png), "--json", str(out)]) == 0
    assert "pip install matplotlib" in capsys.readouterr().err
    assert not png.exists() and out.exists()
