"""INT8 calibration (build/calibration): streaming histograms, the four calibrators, the data readers, the cache
that is reused when it fits and refused when stale, and memory that does not grow with the set."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import onnx
import pytest

from greenrt.build.calibration import (
    BINS, AbsHistogram, CalibrationDataError, ImageSpec, calibrate, open_calibration_data, threshold)
from greenrt.errors import GreenrtError
from greenrt.tools.cli import main

from .test_tactics import convnet_model

RNG = np.random.default_rng(0)


def _gaussian_with_outlier(chunks=10, n=50_000, outlier=40.0):
    rng = np.random.default_rng(1)
    data = [rng.standard_normal(n) * (1 + i / chunks) for i in range(chunks)]  # the range grows as it streams
    data.append(np.array([outlier]))
    return data


def test_a_streamed_histogram_counts_every_value_in_fixed_memory():
    h = AbsHistogram()
    data = _gaussian_with_outlier()
    for chunk in data:
        h.add(chunk)
    everything = np.abs(np.concatenate(data))
    assert h.total == everything.size and h.counts.sum() == everything.size and len(h.counts) == BINS
    assert h.amax == everything.max() == 40.0 and h.range >= 40.0
    # counts at the final width equal a one-shot histogram at that width, but for values on a bin edge that float
    # rounding puts in the neighbouring bin (a handful in 500,000)
    want = np.bincount(np.minimum((everything * BINS / h.range).astype(np.int64), BINS - 1), minlength=BINS)
    assert np.abs(h.counts - want).sum() <= 1e-5 * everything.size


def test_the_calibrators_on_a_gaussian_with_one_outlier():
    h = AbsHistogram()
    data = _gaussian_with_outlier()
    for chunk in data:
        h.add(chunk)
    everything = np.abs(np.concatenate(data))
    assert threshold(h, "minmax") == 40.0
    p = threshold(h, "percentile", 99.9)
    assert abs(p - np.percentile(everything, 99.9)) <= 2 * h.width
    entropy, mse = threshold(h, "entropy"), threshold(h, "mse")
    assert 2.0 < entropy < 20.0 and 2.0 < mse < 20.0  # the outlier is clipped, the bulk (sigma up to 2) is not
    with pytest.raises(GreenrtError, match="choose one of entropy, percentile, minmax, mse"):
        threshold(h, "kl")


def test_zeros_and_non_finite_values():
    h = AbsHistogram()
    h.add(np.zeros(100))
    assert threshold(h, "entropy") == 0.0 and h.total == 100
    h.add(np.array([np.nan, np.inf, -np.inf, 2.0, -3.0]))
    assert h.nonfinite == 3 and h.amax == 3.0 and h.total == 102
    assert threshold(h, "minmax") == 3.0


@pytest.fixture()
def convnet(tmp_path):
    path = tmp_path / "convnet.onnx"
    onnx.save(convnet_model(), path)
    return path


def _npz(path, n=24, **extra):
    np.savez(path, x=RNG.standard_normal((n, 3, 12, 12)).astype(np.float32), **extra)
    return path


def test_calibrate_writes_a_cache_that_is_reused_and_refused_when_stale(convnet, tmp_path):
    data = open_calibration_data(str(_npz(tmp_path / "calib.npz")), ["x"])
    cache = tmp_path / "convnet.calib.json"
    seen = []
    result = calibrate(convnet, data, "percentile", percentile=99.9, batch_size=5, cache=cache,
                       progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (24, 24) and len(seen) == 5
    assert set(result.ranges) >= {"x", "y"} and all(v > 0 for v in result.ranges.values())
    assert result.samples == 24 and not result.reused
    doc = json.loads(cache.read_text())
    assert doc["method"] == "percentile" and doc["settings"] == {"bins": BINS, "percentile": 99.9}
    # reused without data when it fits
    again = calibrate(convnet, None, "percentile", percentile=99.9, cache=cache)
    assert again.reused and again.ranges == pytest.approx(result.ranges)
    # refused, naming what changed
    with pytest.raises(GreenrtError, match="stale: .*--calib-method percentile, this run asks for entropy"):
        calibrate(convnet, data, "entropy", cache=cache)
    with pytest.raises(GreenrtError, match="stale: its settings"):
        calibrate(convnet, data, "percentile", percentile=99.0, cache=cache)
    model = onnx.load(convnet)
    model.graph.initializer[0].float_data.extend([])  # same graph, re-saved with a changed weight
    w = onnx.numpy_helper.to_array(model.graph.initializer[0]) * 2
    model.graph.initializer[0].CopyFrom(onnx.numpy_helper.from_array(w, model.graph.initializer[0].name))
    onnx.save(model, convnet)
    with pytest.raises(GreenrtError, match="stale: the model .* changed"):
        calibrate(convnet, data, "percentile", percentile=99.9, cache=cache)


def test_calibration_memory_does_not_grow_with_the_set(convnet, tmp_path, monkeypatch):
    """10,000 samples streamed from a callable in batches of 250: traced memory stays under 8 MiB, while the set
    itself would take 16.5 MiB (each tensor keeps a 2048-bin histogram, 16 KiB)."""
    import types
    import sys

    def batches():
        rng = np.random.default_rng(3)
        for _ in range(40):
            yield {"x": rng.standard_normal((250, 3, 12, 12)).astype(np.float32)}

    module = types.ModuleType("calib_stream_for_test")
    module.batches = batches
    monkeypatch.setitem(sys.modules, "calib_stream_for_test", module)
    source = open_calibration_data("calib_stream_for_test:batches", ["x"])
    calibrate(convnet, source, "minmax", batch_size=250)  # warm (imports, first-run allocations)
    tracemalloc.start()
    try:
        result = calibrate(convnet, source, "entropy", batch_size=250)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.samples == 10_000
    assert peak < 8 * 2**20, f"peak {peak / 2**20:.1f} MiB"


@pytest.mark.parametrize("make, message", [
    (lambda p: np.savez(p, image=np.zeros((4, 3, 12, 12), np.float32)), r"do not match the model's inputs \['x'\]"),
    (lambda p: np.savez(p, x=np.zeros((4, 3, 12, 12), np.float32), y=np.zeros((3, 1))), "not inputs"),
    (lambda p: np.savez(p, x=np.zeros((0, 3, 12, 12), np.float32)), "holds no samples"),
    (lambda p: np.savez(p, x=np.ones((4, 5, 12, 12), np.float32)), "does not run on batch 0"),
])
def test_calibration_data_that_does_not_fit_is_refused_clearly(convnet, tmp_path, make, message):
    path = tmp_path / "bad.npz"
    make(path)
    with pytest.raises(CalibrationDataError, match=message):
        calibrate(convnet, open_calibration_data(str(path), ["x"]), "minmax")


def test_nan_samples_are_counted_and_left_out_of_the_ranges(convnet, tmp_path):
    x = RNG.standard_normal((6, 3, 12, 12)).astype(np.float32)
    x[0, 0, 0, 0] = np.nan
    np.savez(tmp_path / "nan.npz", x=x)
    result = calibrate(convnet, open_calibration_data(str(tmp_path / "nan.npz"), ["x"]), "minmax")
    assert result.stats["x"]["nonfinite"] == 1
    assert result.ranges["x"] == pytest.approx(float(np.nanmax(np.abs(x))))


def test_images_with_a_preprocessing_spec(tmp_path):
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(RNG.integers(0, 255, (40 + i, 50, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    source = open_calibration_data(str(folder), ["image"], "resize=32,crop=24,mean=0.5/0.5/0.5,std=0.25/0.25/0.25")
    batches = list(source.batches(2))
    assert source.samples == 3 and [b["image"].shape for b in batches] == [(2, 3, 24, 24), (1, 3, 24, 24)]
    assert ImageSpec.parse("layout=nhwc").layout == "nhwc"
    with pytest.raises(CalibrationDataError, match="cannot read 'size=3'"):
        ImageSpec.parse("size=3")
    with pytest.raises(CalibrationDataError, match="one input"):
        open_calibration_data(str(folder), ["a", "b"])


def test_cli_calibrate_prints_the_widest_clipping_and_refuses_a_stale_cache(convnet, tmp_path, capsys):
    data = _npz(tmp_path / "calib.npz")
    assert main(["calibrate", str(convnet), "--calib", str(data), "--calib-method", "percentile"]) == 0
    out = capsys.readouterr().out
    assert "written; percentile over 24 samples" in out and "widest clipping" in out
    assert (tmp_path / "convnet.calib.json").exists()
    assert main(["calibrate", str(convnet), "--calib-method", "percentile"]) == 0
    assert "reused" in capsys.readouterr().out
    assert main(["calibrate", str(convnet), "--calib", str(data), "--calib-method", "mse"]) == 2
    assert "is stale" in capsys.readouterr().err


def test_drift_check_names_the_tensors_at_risk_on_shifted_data(convnet, tmp_path, capsys):
    """Calibrated on N(0, 1) inputs; checked on more of the same (fits), on inputs three times brighter (the input
    and layers after it clip far more often: recalibrate, exit 1), and on darkened ones (a tenth of the range: the
    calibrated INT8 steps are too coarse for them, also named)."""
    rng = np.random.default_rng(7)
    np.savez(tmp_path / "calib.npz", x=rng.standard_normal((64, 3, 12, 12)).astype(np.float32))
    np.savez(tmp_path / "same.npz", x=rng.standard_normal((32, 3, 12, 12)).astype(np.float32))
    np.savez(tmp_path / "bright.npz", x=3 * rng.standard_normal((32, 3, 12, 12)).astype(np.float32))
    np.savez(tmp_path / "dark.npz", x=0.1 * rng.standard_normal((32, 3, 12, 12)).astype(np.float32))
    assert main(["calibrate", str(convnet), "--calib", str(tmp_path / "calib.npz"), "--calib-method", "percentile",
                 "--percentile", "99.9"]) == 0
    capsys.readouterr()
    assert main(["calibrate", str(convnet), "--check", str(tmp_path / "same.npz")]) == 0
    assert "still fits" in capsys.readouterr().out
    assert main(["calibrate", str(convnet), "--check", str(tmp_path / "bright.npz")]) == 1
    out = capsys.readouterr().out.replace("\n", " ")
    assert "recalibrate:" in out and "clips" in out and " x " in out.replace("│", " ")
    assert main(["calibrate", str(convnet), "--check", str(tmp_path / "dark.npz")]) == 1
    assert "of its calibrated range" in capsys.readouterr().out.replace("\n", " ")
    (tmp_path / "convnet.calib.json").unlink()
    assert main(["calibrate", str(convnet), "--check", str(tmp_path / "same.npz")]) == 2
    assert "calibrate first" in capsys.readouterr().err
