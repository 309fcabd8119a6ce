"""CLI: run / compare / inspect with their stable exit codes (0 ok, 1 mismatch, 2 could not run)."""

import subprocess
import sys

import numpy as np
import pytest

from greenrt.tools import compare as compare_mod
from greenrt.tools.cli import main


def test_run_random_inputs_and_save(mlp_path, tmp_path, capsys):
    out = tmp_path / "out.npz"
    assert main(["run", str(mlp_path), "--shapes", "x:3x8", "--save-outputs", str(out)]) == 0
    saved = np.load(out)
    assert saved["probs"].shape == (3, 4)
    np.testing.assert_allclose(saved["probs"].sum(axis=1), 1.0, rtol=1e-5)
    assert "probs" in capsys.readouterr().out


def test_run_with_inputs_file_matches_api(mlp_path, tmp_path, rng):
    x = rng.standard_normal((2, 8)).astype(np.float32)
    np.savez(tmp_path / "in.npz", x=x)
    assert main(["run", str(mlp_path), "--inputs", str(tmp_path / "in.npz"), "--save-outputs",
                 str(tmp_path / "o.npz")]) == 0
    import greenrt

    np.testing.assert_array_equal(np.load(tmp_path / "o.npz")["probs"], greenrt.InferenceSession(mlp_path).run(
        None, {"x": x})[0])


def test_compare_match_exit_0(mlp_path, capsys):
    assert main(["compare", str(mlp_path), "--shapes", "x:4x8"]) == 0
    assert "verdict: match" in capsys.readouterr().out


def test_compare_mismatch_exit_1(mlp_path, monkeypatch, capsys):
    real = compare_mod.run_onnxruntime

    def perturbed(path, feeds):
        return [o + 0.1 for o in real(path, feeds)]

    monkeypatch.setattr(compare_mod, "run_onnxruntime", perturbed)
    assert main(["compare", str(mlp_path)]) == 1
    assert "MISMATCH" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "missing.onnx"], "no such file"),
        (["run", "{mlp}", "--shapes", "x:3by8"], "cannot parse"),
        (["run", "{mlp}", "--shapes", "nope:3x8"], "unknown input"),
        (["run", "{mlp}", "--shapes", "x:3x9"], "dimension 1 must be 8"),
        (["compare", "{mlp}", "--inputs", "missing.npz"], "no such file"),
        (["run", "{mlp}", "--device", "tpu"], "invalid choice"),
    ],
)
def test_could_not_run_exit_2(argv, message, mlp_path, capsys):
    argv = [a.replace("{mlp}", str(mlp_path)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_unsupported_op_exit_2_lists_nodes(tmp_path, capsys):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("FusedConv", ["x"], ["y"], name="fc", domain="com.microsoft")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
    )
    path = tmp_path / "contrib.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                      helper.make_opsetid("com.microsoft", 1)]), path)
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "'fc'" in err and "com.microsoft" in err


def test_console_entry_point_runs_as_a_process(mlp_path):
    proc = subprocess.run([sys.executable, "-m", "greenrt", "compare", str(mlp_path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run([sys.executable, "-m", "greenrt", "run", str(mlp_path) + ".missing"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "no such file" in proc.stderr and "Traceback" not in proc.stderr


def test_inspect_ops_lists_families(capsys):
    assert main(["inspect", "ops"]) == 0
    out = capsys.readouterr().out
    assert "Conv" in out and "ops supported" in out


def test_inspect_model(mlp_path, capsys):
    assert main(["inspect", "model", str(mlp_path)]) == 0
    out = capsys.readouterr().out
    assert "Gemm" in out and "probs" in out


def test_random_token_ids_stay_inside_the_embedding_table(tmp_path, capsys):
    """`greenrt run` on a model whose integer input indexes a 7-row table: ids drawn from [0, 7), so it runs."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    table = numpy_helper.from_array(np.random.default_rng(0).standard_normal((7, 4)).astype(np.float32), "emb")
    graph = helper.make_graph(
        [helper.make_node("Cast", ["ids"], ["ids64"], to=TensorProto.INT64),
         helper.make_node("Gather", ["emb", "ids64"], ["y"])],
        "g", [helper.make_tensor_value_info("ids", TensorProto.INT32, ["B", "S"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", "S", 4])], [table])
    path = tmp_path / "emb.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    from greenrt import InferenceSession
    from greenrt.build.inputs import index_bounds

    sess = InferenceSession(path)
    assert index_bounds(sess.plan, sess.executor.constants) == {"ids": 7}
    assert main(["compare", str(path), "--shapes", "ids:3x50"]) == 0
