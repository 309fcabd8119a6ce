"""The accuracy search (--max-error): bisection over an fp32 prefix, and the builder stage that runs it."""

import math

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import greenrt
from greenrt.errors import GreenrtError
from greenrt.build import BuildConfig, build_engine
from greenrt.precision.search import search_fp32_prefix
from greenrt.tools.cli import main
from greenrt.tools.compare import run_onnxruntime


def _deep_mlp(path, layers=12, width=64, seed=0):
    """MatMul + Add + Tanh x layers, then Softmax: fp16 rounding builds up to ~2e-3 on the logits."""
    r = np.random.default_rng(seed)
    nodes, inits, prev = [], [], "x"
    for i in range(layers):
        w = (r.standard_normal((width, width)) / np.sqrt(width) * 1.3).astype(np.float32)
        b = (r.standard_normal(width) * 0.1).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes += [helper.make_node("MatMul", [prev, f"w{i}"], [f"m{i}"], name=f"mm{i}"),
                  helper.make_node("Add", [f"m{i}", f"b{i}"], [f"h{i}"], name=f"add{i}"),
                  helper.make_node("Tanh", [f"h{i}"], [f"t{i}"], name=f"tanh{i}")]
        prev = f"t{i}"
    nodes.append(helper.make_node("Softmax", [f"h{layers - 1}"], ["probs"], axis=-1, name="softmax"))
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", width])],
                              [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", width])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    return _deep_mlp(tmp_path_factory.mktemp("mlp") / "mlp.onnx")


@pytest.fixture(scope="module")
def sample():
    return {"x": np.random.default_rng(1).standard_normal((8, 64)).astype(np.float32)}


# -- the bisection ----------------------------------------------------------------------------------------
def test_bisection_finds_the_shortest_passing_prefix_in_log_steps():
    names = [f"n{i}" for i in range(100)]
    error = lambda k: 0.05 * (1 - k / 100) ** 2  # noqa: E731  monotone: more fp32, less error
    result = search_fp32_prefix(names, error, target=0.01, log=lambda m: None)
    shortest = next(k for k in range(101) if error(k) <= 0.01)
    assert result.keep == shortest == 56
    assert result.error_after == pytest.approx(error(56)) and result.error_before == pytest.approx(0.05)
    assert len(result.trials) <= math.ceil(math.log2(100)) + 2
    assert list(result.keep_fp32()) == names[:56]
    assert "first 56 of 100" in result.reason


def test_no_fp32_layers_when_reduced_precision_already_meets_the_target():
    result = search_fp32_prefix(["a", "b"], lambda k: 1e-3, target=1e-2, log=lambda m: None)
    assert result.keep == 0 and result.keep_fp32() == {} and len(result.trials) == 1


def test_a_non_monotone_error_still_gives_a_prefix_that_meets_the_target():
    errs = [0.9, 0.2, 0.001, 0.3, 0.2, 0.002, 0.5, 0.004, 0.003, 0.001, 0.0]
    result = search_fp32_prefix([f"n{i}" for i in range(10)], lambda k: errs[k], target=0.01, log=lambda m: None)
    assert errs[result.keep] <= 0.01


def test_a_target_fp32_itself_misses_is_a_clear_error():
    with pytest.raises(GreenrtError, match="cannot meet max error 1e-06.*all 3 reduced-precision layers"):
        search_fp32_prefix(["a", "b", "c"], lambda k: 1e-3, target=1e-6, log=lambda m: None)
    with pytest.raises(GreenrtError, match="no layer left in reduced precision"):
        search_fp32_prefix([], lambda k: 1e-3, target=1e-6, log=lambda m: None)
    with pytest.raises(GreenrtError, match="must be > 0"):
        search_fp32_prefix(["a"], lambda k: 0.0, target=0.0)


# -- in the builder ---------------------------------------------------------------------------------------
def test_build_with_max_error_keeps_a_prefix_fp32_and_meets_the_target_vs_onnxruntime(mlp, sample, tmp_path):
    target = 1e-3
    out = tmp_path / "mlp.engine"
    header = build_engine(mlp, out, BuildConfig(precision="fp16", outputs=["h11"], max_error=target,
                                                error_outputs=["h11"]), log=lambda m: None, samples=[sample])
    search = header["report"]["accuracy_search"]
    assert search["max_rel_err_before"] > target, "the model must need the search for this test to mean anything"
    assert 0 < search["kept_fp32"] < search["layers"]
    kept = [n for n in header["report"]["precision"]["kept_or_overridden"] if "accuracy search" in n["reason"]]
    assert [n["node"] for n in kept] == [f"mm{i}" for i in range(search["kept_fp32"])]  # a prefix, in order

    session = greenrt.InferenceSession(out)
    assert [o.name for o in session.get_outputs()] == ["probs", "h11"]
    probs, logits = session.run(None, sample)
    ref_probs, ref_logits = run_onnxruntime(str(mlp), sample, extra_outputs=["h11"])
    err = np.abs(logits - ref_logits).max() / np.abs(ref_logits).max()
    assert err <= target * 1.01, err  # onnxruntime and greenrt's fp32 reference agree to ~1e-7
    assert np.abs(probs - ref_probs).max() < 1e-3

    plain = build_engine(mlp, tmp_path / "plain.engine", BuildConfig(precision="fp16", outputs=["h11"]),
                         log=lambda m: None, samples=[sample])
    assert "accuracy_search" not in plain["report"]
    got = greenrt.InferenceSession(tmp_path / "plain.engine").run(None, sample)[1]
    assert np.abs(got - ref_logits).max() / np.abs(ref_logits).max() > target  # without the search it misses


def test_max_error_needs_reduced_precision_and_known_outputs(mlp, sample, tmp_path):
    with pytest.raises(GreenrtError, match="max_error .* fp16 or bf16"):
        build_engine(mlp, tmp_path / "e", BuildConfig(max_error=1e-2), log=lambda m: None)
    with pytest.raises(GreenrtError, match=r"--error-outputs \['h11'\] are not outputs.*--outputs"):
        build_engine(mlp, tmp_path / "e", BuildConfig(precision="fp16", max_error=1e-2, error_outputs=["h11"]),
                     log=lambda m: None)
    with pytest.raises(GreenrtError, match="no tensor named 'h99' .*did you mean 'h9'"):
        build_engine(mlp, tmp_path / "e", BuildConfig(outputs=["h99"]), log=lambda m: None)


def test_sample_inputs_must_match_the_model(mlp, tmp_path):
    from greenrt.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match=r"sample input 0 has arrays \['y'\]; the model's inputs are \['x'\]"):
        build_engine(mlp, tmp_path / "e", BuildConfig(), log=lambda m: None, samples=[{"y": np.ones((2, 64))}])
    with pytest.raises(InvalidInputError, match=r"sample input 0: input 'x': expected dtype tensor\(float\), got "
                                                r"tensor\(int64\)"):
        build_engine(mlp, tmp_path / "e", BuildConfig(), log=lambda m: None, samples=[{"x": np.ones((2, 64), int)}])
    with pytest.raises(InvalidInputError, match=r"sample input 0: input 'x': expected rank 2 .* got shape \[64\]"):
        build_engine(mlp, tmp_path / "e", BuildConfig(), log=lambda m: None,
                     samples=[{"x": np.ones(64, np.float32)}])


def test_cli_build_with_inputs_outputs_and_max_error(mlp, sample, tmp_path, capsys):
    np.savez(tmp_path / "s.npz", **sample)
    out = tmp_path / "cli.engine"
    rc = main(["build", str(mlp), "-o", str(out), "--device", "cpu", "--fp16", "--inputs", str(tmp_path / "s.npz"),
               "--outputs", "h11", "--max-error", "1e-3", "--error-outputs", "h11"])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "accuracy search" in text and "layers fp32" in text
    session = greenrt.InferenceSession(out)
    assert [o.name for o in session.get_outputs()] == ["probs", "h11"]
    cmd = session.header["config"]["build_command"]
    assert "--max-error 0.001" in cmd and "--outputs h11" in cmd and "--inputs" in cmd


def test_inspect_shows_the_search(mlp, sample, tmp_path, capsys):
    np.savez(tmp_path / "s.npz", **sample)
    out = tmp_path / "i.engine"
    assert main(["build", str(mlp), "-o", str(out), "--device", "cpu", "--fp16", "--inputs", str(tmp_path / "s.npz"),
                 "--outputs", "h11", "--max-error", "1e-3", "--error-outputs", "h11"]) == 0
    capsys.readouterr()
    assert main(["inspect", "model", str(out)]) == 0
    text = capsys.readouterr().out
    assert "accuracy search:" in text and "kept fp32 for max error 0.001 on h11" in text
