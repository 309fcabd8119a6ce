"""`greenrt bench` on CPU with the tiny MLP: arguments and exit codes, the results file and its ratios, the energy
counters (RAPL on a fake sysfs tree, NVML's minimum window with a fake counter), gCO2e, the plot, --torch-module.
No timing thresholds: only that figures exist, are ordered and are consistent."""

import json

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from greenrt.tools import bench, energy
from greenrt.tools.cli import main
from greenrt.tools.results import find_record, load_results, validate_results

from ..conftest import make_mlp_model, timer_favouring

FAST = ["--duration", "0.05", "--warmup", "2"]


class MlpModule(torch.nn.Module):
    """The conftest MLP as a torch module with the ONNX file's weights (the --torch-module factory below)."""

    def __init__(self):
        super().__init__()
        inits = {i.name: torch.from_numpy(onnx.numpy_helper.to_array(i).copy())
                 for i in make_mlp_model().graph.initializer}
        for name, value in inits.items():
            self.register_buffer(name, value)

    def forward(self, x):
        h = torch.relu(x @ self.W1.T + self.b1)
        return torch.softmax(h @ self.W2 + self.b2, dim=-1)


def mlp_module():
    return MlpModule()


FACTORY = f"{__name__}:mlp_module"


@pytest.fixture
def seq_path(tmp_path):
    """x[N, S] -> Relu: a second dynamic dim that --batch does not size."""
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "seq",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "S"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "S"])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "seq.onnx"
    onnx.save(model, path)
    return path


# -- arguments and exit codes -------------------------------------------------------------------------------------
@pytest.mark.parametrize("extra, message", [
    (["--batch", "0"], "--batch: '0' is not a positive integer"),
    (["--batch", "1,x"], "--batch: 'x' is not a positive integer"),
    (["--vs", "onnxruntime,tensorrt"], "unknown baseline(s) ['tensorrt']"),
    (["--torch-module", "nomodule"], "write pkg.module:factory"),
    (["--torch-module", "no_such_module_xyz:f"], "cannot import"),
    (["--shapes", "y:1x8"], "unknown input"),
    (["--duration", "-1"], "must be positive"),
])
def test_bad_arguments_exit_2(mlp_path, extra, message, capsys):
    assert main(["bench", str(mlp_path), *FAST, *extra]) == 2
    assert message in capsys.readouterr().err


def test_missing_model_exit_2(tmp_path, capsys):
    assert main(["bench", str(tmp_path / "nope.onnx")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_dynamic_dim_without_size_asks_for_shapes(seq_path, capsys):
    assert main(["bench", str(seq_path), *FAST, "--batch", "2"]) == 2
    err = capsys.readouterr().err
    assert "dynamic dim 1 ('S')" in err and "--shapes x:2xN" in err


def test_dynamic_dim_from_shapes_and_batch_overrides_dim0(seq_path, tmp_path):
    out = tmp_path / "r.json"
    assert main(["bench", str(seq_path), *FAST, "--batch", "3", "--shapes", "x:1x5", "--json", str(out)]) == 0
    data = load_results(out)
    assert data["metadata"]["shapes"] == {"3": {"x": [3, 5]}}


def test_parsers():
    assert bench.parse_batches("1, 256,1") == [1, 256]
    assert bench.parse_vs("eager,onnxruntime") == ["eager", "onnxruntime"]


# -- the results file ---------------------------------------------------------------------------------------------
def test_json_records_ratios_and_percentiles(mlp_path, tmp_path, capsys):
    out = tmp_path / "r.json"
    argv = ["bench", str(mlp_path), *FAST, "--batch", "1,4", "--json", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "greenrt onnx" in printed and "onnxruntime" in printed  # (the table may wrap names)
    data = validate_results(json.loads(out.read_text()))
    meta = data["metadata"]
    assert meta["command"] == "greenrt " + " ".join(argv[:])
    assert meta["grid_intensity_g_per_kwh"] == bench.DEFAULT_GRID_INTENSITY
    assert "Ember" in meta["grid_intensity_source"]
    records = data["records"]
    assert [(r["runner"], r["batch"]) for r in records] == [
        (name, batch) for batch in (1, 4)
        for name in ("greenrt onnx fp32", "onnxruntime fp32", "onnxruntime-best fp32")]
    for r in records:
        assert r["status"] == "ok" and r["device"] == "cpu" and r["model"] == "mlp"
        assert 0 < r["latency_ms_p50"] <= r["latency_ms_p90"] <= r["latency_ms_p99"]
        assert r["items_per_s"] > 0 and r["window_calls"] >= 1 and r["latency_calls"] >= bench.LATENCY_MIN_CALLS
        if r["joules_per_item"] is None:  # no RAPL here: null with the reason, never a made-up number
            assert r["watts"] is None and r["gco2e_per_1000"] is None and r["energy_reason"]
    for batch in (1, 4):
        ours = find_record(records, "greenrt onnx fp32", batch=batch)
        ort = find_record(records, "onnxruntime fp32", batch=batch)
        assert ours["latency_speedup_vs"]["onnxruntime fp32"] == pytest.approx(
            ort["latency_ms_p50"] / ours["latency_ms_p50"])
        assert ours["throughput_ratio_vs"]["onnxruntime fp32"] == pytest.approx(
            ours["items_per_s"] / ort["items_per_s"])
        assert ours["max_rel_err_vs_onnxruntime"] < 1e-5


def test_energy_with_a_fake_counter_fills_joules_watts_and_gco2e(mlp_path, tmp_path, monkeypatch):
    """A 50 W counter: the window is stretched to the minimum, and watts, J/item and gCO2e follow from it."""
    import time

    class FakeCounter:
        available, source, reason = True, "nvml", ""

        def snapshot(self):
            return time.perf_counter() * 50_000.0  # mJ at 50 W

        def joules_between(self, a, b):
            return (b - a) / 1000.0

    monkeypatch.setattr(energy, "MIN_WINDOW_S", 0.2)
    monkeypatch.setattr(energy, "energy_counter", lambda device, index=0: FakeCounter())
    out = tmp_path / "r.json"
    assert main(["bench", str(mlp_path), *FAST, "--batch", "2", "--vs", "onnxruntime", "--grid-intensity", "100",
                 "--json", str(out)]) == 0
    data = load_results(out)
    for r in data["records"]:
        assert r["window_s"] >= 0.2 and r["window_calls"] >= energy.MIN_WINDOW_CALLS
        assert r["window_extended_to_minimum"] is True
        assert r["watts"] == pytest.approx(50.0, rel=0.05)
        assert r["joules_per_item"] == pytest.approx(r["watts"] * r["window_s"] / (r["window_calls"] * 2))
        assert r["gco2e_per_1000"] == pytest.approx(r["joules_per_item"] * 1000 / 3.6e6 * 100)
        assert r["energy_source"] == "nvml"
    assert data["metadata"]["grid_intensity_g_per_kwh"] == 100
    assert "given by the user" in data["metadata"]["grid_intensity_source"]


# -- energy counters ----------------------------------------------------------------------------------------------
def _zone(root, name, energy_uj, max_uj=1_000_000):
    zone = root / name
    zone.mkdir(parents=True)
    (zone / "energy_uj").write_text(f"{energy_uj}\n")
    (zone / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return zone


def test_rapl_reads_package_zones_and_handles_wrap_around(tmp_path):
    root = tmp_path / "powercap"
    p0 = _zone(root, "intel-rapl:0", 900_000)
    p1 = _zone(root, "intel-rapl:1", 100_000)
    _zone(root, "intel-rapl:0:0", 5)  # a subzone (core) is inside its package: not counted twice
    counter = energy.rapl_counter(root)
    assert counter.available and counter.source == "rapl"
    assert [z.name for z in counter.zones] == ["intel-rapl:0", "intel-rapl:1"]
    before = counter.snapshot()
    (p0 / "energy_uj").write_text("200000\n")   # wrapped: 900,000 -> 1,000,000 -> 200,000 = 300,000 uJ
    (p1 / "energy_uj").write_text("600000\n")   # 500,000 uJ
    assert counter.joules_between(before, counter.snapshot()) == pytest.approx(0.8)


def test_rapl_absent_or_empty_says_why(tmp_path):
    missing = energy.rapl_counter(tmp_path / "nope")
    assert not missing.available and missing.reason == f"RAPL not readable: {tmp_path / 'nope'} absent"
    (tmp_path / "empty").mkdir()
    assert "no intel-rapl:N package zone" in energy.rapl_counter(tmp_path / "empty").reason
    assert missing.joules_between(missing.snapshot(), missing.snapshot()) is None


class _FakeClock:
    def __init__(self, step_s):
        self.t, self.step_s = 0.0, step_s

    def __call__(self):
        return self.t


class _FakeNvml:
    """NVML-like counter that advances 100 mJ per call."""

    available, source, reason = True, "nvml", ""

    def __init__(self):
        self.mj = 5_000

    def snapshot(self):
        return self.mj

    def joules_between(self, a, b):
        return (b - a) / 1000.0


def _steps(clock, counter, seconds_per_call):
    calls = []

    def step(i):
        calls.append(i)
        clock.t += seconds_per_call
        counter.mj += 100

    return step, calls


def test_window_extended_to_the_minimum_time():
    clock, counter = _FakeClock(0), _FakeNvml()
    step, calls = _steps(clock, counter, 1 / 32)  # 0.3 s would be 10 calls; the 1 s minimum makes it 32
    w = energy.run_window(step, lambda: None, counter, duration_s=0.3, clock=clock)
    assert w.seconds == energy.MIN_WINDOW_S and w.calls == len(calls) == 32
    assert w.extended and w.joules == pytest.approx(3.2)


def test_window_extended_to_the_minimum_calls():
    clock, counter = _FakeClock(0), _FakeNvml()
    step, _ = _steps(clock, counter, 0.5)  # slow calls: 0.5 s reaches the time after 1 call, but 20 are needed
    w = energy.run_window(step, lambda: None, counter, duration_s=0.5, min_s=0.5, clock=clock)
    assert w.calls == energy.MIN_WINDOW_CALLS and w.seconds == pytest.approx(10.0) and w.extended
    clock, counter = _FakeClock(0), _FakeNvml()
    step, _ = _steps(clock, counter, 0.2)  # a 5 s window already has 25 calls: nothing to extend
    w = energy.run_window(step, lambda: None, counter, duration_s=5.0, clock=clock)
    assert w.calls == 25 and not w.extended


def test_window_without_counter_is_not_extended_and_counter_that_never_moves_is_null():
    clock = _FakeClock(0)
    none = energy.NoCounter("no counter here")
    w = energy.run_window(lambda i: setattr(clock, "t", clock.t + 0.01), lambda: None, none, 0.05, clock=clock)
    assert w.calls == 5 and w.joules is None and w.reason == "no counter here" and not w.extended
    stuck = _FakeNvml()
    w = energy.run_window(lambda i: setattr(clock, "t", clock.t + 0.1), lambda: None, stuck, 0.05, clock=clock)
    assert w.joules is None and "did not advance" in w.reason


def test_gco2e_arithmetic():
    # 36 mJ per item: 1,000 items = 36 J = 1e-5 kWh; at 480 g/kWh that is 4.8 mg
    assert bench.gco2e_per_1000(0.036, 480) == pytest.approx(4.8e-3)
    assert bench.gco2e_per_1000(3.6, 100) == pytest.approx(0.1)
    assert bench.gco2e_per_1000(None, 480) is None


def test_percentiles_ordered():
    rng = np.random.default_rng(0)
    p = bench.percentiles(rng.exponential(1.0, 500))
    assert p["latency_ms_p50"] <= p["latency_ms_p90"] <= p["latency_ms_p99"]


# -- plot and torch baselines -------------------------------------------------------------------------------------
def test_plot_writes_png(mlp_path, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "plots" / "bench.png"
    assert main(["bench", str(mlp_path), *FAST, "--batch", "1,2", "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_torch_module_baselines(mlp_path, tmp_path, monkeypatch):
    def no_compiler(*args, **kwargs):
        raise RuntimeError("no C++ compiler found\nmore detail")

    monkeypatch.setattr(torch, "compile", no_compiler)
    out = tmp_path / "r.json"
    assert main(["bench", str(mlp_path), *FAST, "--batch", "3", "--torch-module", FACTORY, "--json", str(out)]) == 0
    records = load_results(out)["records"]
    assert [r["runner"] for r in records] == ["greenrt onnx fp32", "onnxruntime fp32", "onnxruntime-best fp32",
                                              "torch eager fp32",
                                              "torch eager + CUDA graph fp32", "torch.compile fp32 (reduce-overhead)"]
    eager = find_record(records, "torch eager fp32")
    assert eager["status"] == "ok" and eager["max_rel_err_vs_onnxruntime"] < 1e-5
    graph = find_record(records, "torch eager + CUDA graph fp32")
    assert graph["status"] == "skipped" and "--device cuda" in graph["reason"] and graph["items_per_s"] is None
    compiled = find_record(records, "torch.compile fp32 (reduce-overhead)")
    assert compiled["status"] == "skipped" and "no C++ compiler found" in compiled["reason"]
    ours = find_record(records, "greenrt onnx fp32")
    assert set(ours["latency_speedup_vs"]) == {"onnxruntime fp32", "onnxruntime-best fp32", "torch eager fp32"}


def test_torch_baselines_without_module_are_skipped(mlp_path, tmp_path):
    out = tmp_path / "r.json"
    assert main(["bench", str(mlp_path), *FAST, "--batch", "1", "--vs", "eager", "--json", str(out)]) == 0
    (ours, eager) = load_results(out)["records"]
    assert eager["status"] == "skipped" and "--torch-module" in eager["reason"]
    assert "latency_speedup_vs" not in ours


def test_fixed_batch_model(tmp_path, capsys):
    path = tmp_path / "mlp1.onnx"
    onnx.save(make_mlp_model(batch=1), path)
    assert main(["bench", str(path), *FAST, "--batch", "4"]) == 2
    assert "fixed batch dim 1" in capsys.readouterr().err
    out = tmp_path / "r.json"
    assert main(["bench", str(path), *FAST, "--json", str(out)]) == 0  # default batches: the fixed one
    assert {r["batch"] for r in load_results(out)["records"]} == {1}


def test_engine_uses_its_recorded_model_for_onnxruntime(mlp_path, tmp_path):
    from greenrt.build import BuildConfig, build_engine

    engine = tmp_path / "mlp.engine"
    build_engine(str(mlp_path), str(engine), BuildConfig(device="cpu"))
    out = tmp_path / "r.json"
    assert main(["bench", str(engine), *FAST, "--batch", "2", "--json", str(out)]) == 0
    data = load_results(out)
    ours = find_record(data["records"], "greenrt engine fp32")
    assert data["metadata"]["reference"] == str(mlp_path)
    assert "onnxruntime fp32" in ours["latency_speedup_vs"]
    mlp_path.unlink()  # the recorded model is gone: onnxruntime is skipped, saying how to point at it
    assert main(["bench", str(engine), *FAST, "--batch", "2", "--json", str(out)]) == 0
    ort = find_record(load_results(out)["records"], "onnxruntime fp32")
    assert ort["status"] == "skipped" and "--reference" in ort["reason"]


def test_plot_without_matplotlib_says_what_to_install(mlp_path, tmp_path, monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    png = tmp_path / "bench.png"
    assert main(["bench", str(mlp_path), *FAST, "--batch", "1", "--plot", str(png)]) == 0
    assert "pip install matplotlib" in capsys.readouterr().err and not png.exists()


def test_bf16_engine_runs_torch_baseline_in_bf16(mlp_path, tmp_path):
    from greenrt.build import BuildConfig, build_engine

    engine = tmp_path / "mlp_bf16.engine"
    build_engine(str(mlp_path), str(engine), BuildConfig(device="cpu", precision="bf16"))
    out = tmp_path / "r.json"
    assert main(["bench", str(engine), *FAST, "--batch", "2", "--vs", "onnxruntime,eager", "--torch-module", FACTORY,
                 "--json", str(out)]) == 0
    records = load_results(out)["records"]  # reduced-precision records carry their error vs onnxruntime
    ours = find_record(records, "greenrt engine bf16")
    eager = find_record(records, "torch eager bf16")
    assert eager["precision"] == "bf16" and eager["status"] == "ok"
    assert 0 < eager["max_rel_err_vs_onnxruntime"] < 5e-2 and ours["max_rel_err_vs_onnxruntime"] < 5e-2


@pytest.mark.gpu
def test_cuda_bench_times_with_events_and_reads_nvml(mlp_path, tmp_path):
    out = tmp_path / "r.json"
    assert main(["bench", str(mlp_path), "--device", "cuda", "--duration", "0.2", "--batch", "1,64",
                 "--vs", "onnxruntime,eager,eager-cudagraph", "--torch-module", FACTORY, "--json", str(out)]) == 0
    records = load_results(out)["records"]
    for r in records:
        assert r["status"] == "ok", r
        assert 0 < r["latency_ms_p50"] <= r["latency_ms_p90"] <= r["latency_ms_p99"]
        if r["energy_source"] == "nvml":  # the counter's minimum window applies
            assert r["window_s"] >= energy.MIN_WINDOW_S and r["window_calls"] >= energy.MIN_WINDOW_CALLS
            assert r["watts"] > 0 and r["joules_per_item"] > 0
        else:
            assert r["joules_per_item"] is None and r["energy_reason"]
    ours = find_record(records, "greenrt onnx fp32", batch=64)
    assert ours["timing"] == "cuda events" and isinstance(ours["peak_mem_bytes"], int)
    assert set(ours["throughput_ratio_vs"]) == {"onnxruntime fp32", "torch eager fp32",
                                                "torch eager + CUDA graph fp32"}


def test_nvml_counter_not_supported_is_n_a_with_the_reason(monkeypatch):
    pynvml = pytest.importorskip("pynvml")

    class NotSupported(Exception):
        pass

    def refuse(handle):
        raise NotSupported("Not Supported")

    monkeypatch.setattr(energy, "nvml_handle", lambda index=0: (pynvml, object()))
    monkeypatch.setattr(pynvml, "nvmlDeviceGetTotalEnergyConsumption", refuse)
    counter = energy.energy_counter("cuda", 0)
    assert not counter.available and "NotSupported: Not Supported" in counter.reason


def test_runner_off_the_counted_device_gets_no_energy():
    """onnxruntime on the CPU in a CUDA bench: NVML would count an idle GPU, so its energy is n/a, saying why."""
    runner = bench.Runner("onnxruntime fp32", "fp32", step=lambda i: sum(range(100)), device="cpu")
    fields = bench.measure(runner, 1, bench.BenchConfig(model="m.onnx", warmup=1), "cuda", _FakeNvml(), 0.01)
    assert fields["joules_per_item"] is None and fields["watts"] is None
    assert fields["energy_reason"] == "runs on cpu; the nvml counter measures cuda"


def test_onnx_only_model_gets_torch_compile_of_greenrts_fx_lowering(mlp_path, tmp_path):
    """No torch source: the torch.compile baseline is greenrt's FX lowering of the ONNX graph, labelled so, and it
    computes what onnxruntime computes."""
    out = tmp_path / "r.json"
    assert main(["bench", str(mlp_path), *FAST, "--batch", "2", "--vs", "onnxruntime,torch-compile",
                 "--json", str(out)]) == 0
    records = validate_results(json.loads(out.read_text()))["records"]
    fx = next(r for r in records if "FX lowering" in r["runner"])
    assert fx["status"] == "ok", fx.get("reason")
    assert fx["max_rel_err_vs_onnxruntime"] < 1e-5 and fx["items_per_s"] > 0
    ours = next(r for r in records if r["runner"].startswith("greenrt"))
    assert fx["runner"] in ours["throughput_ratio_vs"]


def test_baseline_on_another_device_is_timed_at_the_smallest_batch_only(mlp_path, monkeypatch):
    """A CPU onnxruntime beside a GPU engine (simulated: its runner says it runs elsewhere) is timed at batch 1; at
    larger batches it is only the accuracy reference, and the engine's error is still measured against it."""
    real = bench._onnxruntime_runner

    def elsewhere(*args, **kwargs):
        runner = real(*args, **kwargs)
        runner.device = "elsewhere"
        return runner

    monkeypatch.setattr(bench, "_onnxruntime_runner", elsewhere)
    records, _ = bench.run_bench(bench.BenchConfig(model=str(mlp_path), device="cpu", batches=[1, 4],
                                                   duration_s=0.05, warmup=2, vs=["onnxruntime"]))
    ort1 = find_record(records, "onnxruntime fp32", batch=1)
    ort4 = find_record(records, "onnxruntime fp32", batch=4)
    assert ort1["status"] == "ok" and ort1["items_per_s"] > 0
    assert ort4["status"] == "reference only" and "timed at batch 1 only" in ort4["reason"]
    assert ort4["items_per_s"] is None and ort4["joules_per_item"] is None
    ours4 = find_record(records, "greenrt onnx fp32", batch=4)
    assert ours4["status"] == "ok" and "onnxruntime fp32" not in ours4.get("throughput_ratio_vs", {})
    assert find_record(records, "greenrt onnx fp32", batch=1)["latency_speedup_vs"]["onnxruntime fp32"] > 0
    validate_results({"format": "greenrt-results/1", "metadata": {
        "device": None, "driver": None, "versions": {}, "date": "2026-12-01", "command": "x", "notes": ""},
        "records": records})


def test_an_engine_compiled_by_inductor_reports_its_load_and_first_run(mlp_path, tmp_path, monkeypatch, capsys):
    """Issue 12's load targets in the bench's records: the engine's load time, and for an engine kept compiled by
    Inductor its first run at each shape and whether the compiled-code cache held code then (cold, then warm)."""
    import greenrt.build.tactics as tactics_stage
    from greenrt.build import BuildConfig, build_engine
    from greenrt.plan.profiles import parse_profile

    monkeypatch.setenv("GREENRT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(tactics_stage, "_timer", timer_favouring("inductor"))
    engine = tmp_path / "mlp.engine"
    build_engine(str(mlp_path), str(engine), BuildConfig(device="cpu", opt_level=4, profiles=[
        parse_profile("x:1x8/2x8/4x8")]), log=lambda m: None)
    out = tmp_path / "r.json"
    for warm in (False, True):
        assert main(["bench", str(engine), *FAST, "--batch", "2", "--json", str(out)]) == 0
        ours = find_record(load_results(out)["records"], "greenrt engine fp32")
        assert ours["load_s"] > 0 and ours["first_run_s"] > 0 and "compiled_failed" not in ours
        assert ours["compiled_cache_warm"] is warm
        assert "first run" in capsys.readouterr().out
