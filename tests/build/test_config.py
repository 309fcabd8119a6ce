"""BuildConfig: settings that contradict each other are refused up front, and the recorded build command rebuilds
the same engine (it is what an engine-mismatch error tells the user to run)."""

import shlex

import pytest

from greenrt.build import BuildConfig, build_command, build_engine
from greenrt.errors import GreenrtError
from greenrt.plan.profiles import parse_profile
from greenrt.tools.cli import build_parser


@pytest.mark.parametrize("precision", ["fp32", "tf32"])
def test_layer_precision_in_a_full_precision_build_is_refused(precision, mlp_path, tmp_path):
    """It used to be silently ignored: the user asked for fp16 layers and got none."""
    config = BuildConfig(precision=precision, layer_precision="Softmax=fp16")
    with pytest.raises(GreenrtError, match=f"layer_precision 'Softmax=fp16' .* this build is {precision}"):
        build_engine(mlp_path, tmp_path / "e.engine", config, log=lambda m: None)


def test_error_outputs_without_max_error_is_refused(mlp_path, tmp_path):
    with pytest.raises(GreenrtError, match="error_outputs .* set max_error"):
        build_engine(mlp_path, tmp_path / "e.engine", BuildConfig(error_outputs=["probs"]), log=lambda m: None)


def test_build_command_records_every_setting_that_changes_the_engine():
    config = BuildConfig(device="cpu", precision="fp16", layer_precision="Softmax=fp32",
                         profiles=[parse_profile("x:1x8/4x8/8x8")], workspace=1 << 20, outputs=["h"],
                         max_error=1e-2, error_outputs=["h"], inputs=["a b.npz"], optimize=False,
                         channels_last=False)
    argv = shlex.split(build_command("m.onnx", config))
    assert argv[:2] == ["greenrt", "build"]
    args = build_parser().parse_args(argv[1:])
    assert args.no_optimize and args.channels_last == "off" and args.precision == "fp16"
    assert args.layer_precision == "Softmax=fp32" and args.inputs == ["a b.npz"] and args.max_error == 1e-2
    assert args.shapes == ["x:1x8/4x8/8x8"] and args.outputs == "h" and args.error_outputs == "h"
    assert args.workspace == str(1 << 20)


def test_build_command_of_the_defaults_is_short():
    assert build_command("m.onnx", BuildConfig()) == "greenrt build m.onnx --device cpu"
    assert "--channels-last on" in build_command("m.onnx", BuildConfig(channels_last=True))


def test_recorded_command_is_the_one_asked_for_not_the_resolved_layout(mlp_path, tmp_path):
    header = build_engine(mlp_path, tmp_path / "e.engine", BuildConfig(device="cpu", optimize=False),
                          log=lambda m: None)
    assert header["config"]["build_command"] == f"greenrt build {mlp_path} --device cpu --no-optimize"
    assert header["config"]["channels_last"] is False  # resolved for the session


def test_the_calibrator_defaults_to_percentile_for_int8_and_minmax_for_fp8():
    from greenrt.build.config import build_command

    int8 = BuildConfig(device="cpu", int8=True, calib="c.npz")
    fp8 = BuildConfig(device="cpu", fp8=True, calib="c.npz")
    assert (int8.calib_method, fp8.calib_method) == ("percentile", "minmax") and fp8.int8
    assert "--calib-method" not in build_command("m.onnx", fp8) and "--fp8" in build_command("m.onnx", fp8)
    chosen = BuildConfig(device="cpu", fp8=True, calib="c.npz", calib_method="percentile")
    assert "--calib-method percentile" in build_command("m.onnx", chosen)
