"""`greenrt bench`'s interleaved latency rounds, its thread count and its onnxruntime / OpenVINO baselines: the rounds
really interleave and rotate (fake runners recording their calls), the ratio is the median of the per-round ratios
(fake runners on a fake clock with known per-round times), threads are applied to every runner and restored,
onnxruntime runs twice (default and best) with the headline against the faster, OpenVINO missing is a skipped
record."""

import os
import sys

import pytest
import torch

from greenrt.tools import bench
from greenrt.tools.cli import main
from greenrt.tools.results import find_record, load_results, make_record, validate_results

FAST = ["--duration", "0.05", "--warmup", "2"]


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def fake_runner(name, calls, clock=None, ms_per_round=None, block=1):
    """A runner that appends (name, i) to ``calls``; on ``clock`` each call of round r takes ms_per_round[r] ms."""

    def step(i):
        calls.append((name, i))
        if clock is not None:
            clock.t += ms_per_round[min(i // block, len(ms_per_round) - 1)] / 1e3

    return bench.Runner(name, "fp32", step)


def test_rounds_interleave_with_the_order_rotated_and_the_same_inputs_per_round():
    calls = []
    runners = [fake_runner(n, calls) for n in "ABC"]
    times, failed = bench.run_rounds(runners, rounds=3, budget_s=1.0, warmup=1, block_calls=2)
    assert not failed and set(times) == {"A", "B", "C"}
    timed = calls[3:]  # after one warm-up call each
    assert calls[:3] == [("A", 0), ("B", 0), ("C", 0)]
    assert [n for n, _ in timed] == list("AABBCC" "BBCCAA" "CCAABB")  # each goes first once
    for r in range(3):  # round r: calls r*2 and r*2+1 for every runner, so every runner sees the same input sets
        block = timed[6 * r:6 * (r + 1)]
        assert {i for _, i in block} == {2 * r, 2 * r + 1}
    assert all(len(t.rounds_ms) == 3 and len(t.times_ms) == 6 and t.block_calls == 2 for t in times.values())
    assert bench.round_orders(2, 3) == [[0, 1], [1, 0], [0, 1]]


def test_ratio_is_the_median_of_per_round_ratios_not_the_ratio_of_medians():
    clock, calls = FakeClock(), []
    ours = fake_runner("greenrt onnx fp32", calls, clock, [1.0, 3.0, 10.0], block=2)
    theirs = fake_runner("onnxruntime fp32", calls, clock, [2.0, 1.0, 5.0], block=2)
    times, _ = bench.run_rounds([ours, theirs], rounds=3, budget_s=1.0, warmup=0, block_calls=2, clock=clock)
    assert times[ours.name].rounds_ms == pytest.approx([1.0, 3.0, 10.0])
    assert times[theirs.name].rounds_ms == pytest.approx([2.0, 1.0, 5.0])
    recs = [make_record("m", r.name, "fp32", 1, "cpu", status="ok", rounds_ms=times[r.name].rounds_ms,
                        latency_ms_p50=float(sorted(times[r.name].rounds_ms)[1])) for r in (ours, theirs)]
    bench._add_ratios(recs[0], recs[1:])
    # per-round ratios 0.5, 3, 2 -> median 2; the ratio of the medians would be 3 / 2 = 1.5
    assert recs[0]["round_latency_ratio_vs"] == {"onnxruntime fp32": pytest.approx(2.0)}
    assert recs[0]["latency_speedup_vs"] == {"onnxruntime fp32": pytest.approx(2.0 / 3.0)}
    validate_results({"format": "greenrt-results/1", "metadata": {"device": None, "driver": None, "versions": {},
                      "date": "2026-12-07", "command": "x", "notes": ""}, "records": recs})


def test_block_size_follows_the_slowest_runner_and_a_failing_baseline_drops_out():
    clock, calls = FakeClock(), []
    fast = fake_runner("fast", calls, clock, [1.0])
    slow = fake_runner("slow", calls, clock, [10.0])
    state = {"n": 0}

    def flaky_step(i):
        state["n"] += 1
        if state["n"] > 3:  # the warm-up passes, then it breaks in the first round
            raise RuntimeError("device lost\ndetail")

    flaky = bench.Runner("flaky", "fp32", flaky_step)
    times, failed = bench.run_rounds([fast, slow, flaky], rounds=4, budget_s=0.4, warmup=2, clock=clock)
    # 0.4 s over 4 rounds = 100 ms a round for the slowest (10 ms a call): 10 calls a block
    assert times["fast"].block_calls == times["slow"].block_calls == 10
    assert len(times["slow"].rounds_ms) == 4 and "flaky" not in times
    assert failed == {"flaky": "RuntimeError: device lost"}
    with pytest.raises(RuntimeError, match="device lost"):  # greenrt's own runner failing is an error
        state["n"] = 0
        bench.run_rounds([flaky, fast], rounds=4, budget_s=0.4, warmup=2, required=flaky, clock=clock)


def test_threads_applied_to_every_runner_and_restored(mlp_path, monkeypatch):
    before = torch.get_num_threads()
    threads = 1 if before != 1 else 2
    seen = []
    real = bench._greenrt_runner

    def recording(*args, **kwargs):
        runner = real(*args, **kwargs)
        step = runner.step
        runner.step = lambda i: (seen.append(torch.get_num_threads()), step(i))[1]
        return runner

    monkeypatch.setattr(bench, "_greenrt_runner", recording)
    records, extras = bench.run_bench(bench.BenchConfig(model=str(mlp_path), device="cpu", batches=[2],
                                                        duration_s=0.05, warmup=2, threads=threads, rounds=3))
    assert torch.get_num_threads() == before
    assert seen and set(seen) == {threads}
    assert extras["threads"] == threads and all(r["threads"] == threads for r in records)
    # onnxruntime's own session options, read back from its sessions
    assert find_record(records, "onnxruntime fp32")["intra_op_num_threads"] == threads
    best = find_record(records, "onnxruntime-best fp32")
    assert best["intra_op_num_threads"] == threads
    assert best["graph_optimization_level"] == "ORT_ENABLE_ALL" and best["execution_mode"] == "ORT_SEQUENTIAL"
    # restored when the run fails part-way too (an unknown input is found after the threads are set)
    with pytest.raises(Exception, match="unknown input"):
        bench.run_bench(bench.BenchConfig(model=str(mlp_path), device="cpu", threads=threads, shapes={"y": [1, 8]}))
    assert torch.get_num_threads() == before


def test_default_onnxruntime_keeps_its_own_thread_choice_without_threads(mlp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    records, extras = bench.run_bench(bench.BenchConfig(model=str(mlp_path), device="cpu", batches=[1],
                                                        duration_s=0.05, warmup=1, rounds=2))
    assert find_record(records, "onnxruntime fp32")["intra_op_num_threads"] == 0  # onnxruntime's default
    assert find_record(records, "onnxruntime-best fp32")["intra_op_num_threads"] == torch.get_num_threads()
    assert "keeps intra_op_num_threads 0" in extras["threads_note"]


@pytest.mark.parametrize("extra, message", [
    (["--threads", "0"], "--threads: 0 (expected a positive number"),
    (["--rounds", "-1"], "--rounds: -1 (expected >= 0"),
])
def test_bad_threads_and_rounds_exit_2(mlp_path, extra, message, capsys):
    assert main(["bench", str(mlp_path), *FAST, *extra]) == 2
    assert message in capsys.readouterr().err


def test_rounds_in_the_results_file_and_the_headline_against_the_faster_onnxruntime(mlp_path, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["bench", str(mlp_path), *FAST, "--batch", "1,3", "--rounds", "4", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "the faster onnxruntime" in printed and "interleaved rounds" in printed
    data = load_results(out)  # the validator recomputes every round ratio from rounds_ms
    assert data["metadata"]["rounds"] == 4 and data["metadata"]["threads"] == torch.get_num_threads()
    if hasattr(os, "getloadavg"):  # how busy the machine was, next to the figures
        assert all(len(v) == 3 and min(v) >= 0 for v in data["metadata"]["load_average"].values())
    for batch in (1, 3):
        ours = find_record(data["records"], "greenrt onnx fp32", batch=batch)
        assert len(ours["rounds_ms"]) == 4 and ours["round_calls"] >= bench.MIN_BLOCK_CALLS
        ratios = ours["round_latency_ratio_vs"]
        assert set(ratios) == {"onnxruntime fp32", "onnxruntime-best fp32"}
        assert ours["headline_vs"] == max(ratios, key=ratios.get)  # the one greenrt compares worst against
        assert bench.headline_ratio(ours) == ratios[ours["headline_vs"]]
        for name in [ours["runner"], *ratios]:  # each record's latency: the median of its rounds' medians
            rec = find_record(data["records"], name, batch=batch)
            middle = sorted(rec["rounds_ms"])[1:3]
            assert rec["latency_ms_p50"] == pytest.approx(sum(middle) / 2)


def test_headline_picks_the_faster_onnxruntime_either_way():
    def recs(best_ratio, default_ratio):
        ours = {"runner": "greenrt engine fp32", "round_latency_ratio_vs": {
            bench.ORT_DEFAULT: default_ratio, bench.ORT_BEST: best_ratio, "openvino fp32": 9.0}}
        others = [{"runner": n} for n in (bench.ORT_DEFAULT, bench.ORT_BEST, "openvino fp32")]
        bench._add_headline(ours, others)
        return ours

    assert recs(1.3, 1.1)["headline_vs"] == bench.ORT_BEST      # best is faster: greenrt's ratio to it is higher
    assert recs(1.1, 1.3)["headline_vs"] == bench.ORT_DEFAULT   # default options happened to be faster
    assert bench.headline_ratio(recs(1.1, 1.3)) == 1.3          # never OpenVINO's, though it is higher still
    sequential = {"runner": "greenrt", "latency_speedup_vs": {bench.ORT_DEFAULT: 0.5, bench.ORT_BEST: 0.8}}
    bench._add_headline(sequential, [{"runner": bench.ORT_DEFAULT}, {"runner": bench.ORT_BEST}])
    assert sequential["headline_vs"] == bench.ORT_DEFAULT and bench.headline_ratio(sequential) == 2.0


def test_rounds_0_times_each_runner_in_turn(mlp_path):
    records, extras = bench.run_bench(bench.BenchConfig(model=str(mlp_path), device="cpu", batches=[1],
                                                        duration_s=0.05, warmup=1, rounds=0))
    ours = find_record(records, "greenrt onnx fp32")
    assert extras["rounds"] == 0 and "rounds_ms" not in ours and "round_latency_ratio_vs" not in ours
    assert ours["headline_vs"] in (bench.ORT_DEFAULT, bench.ORT_BEST)
    assert ours["latency_calls"] >= bench.LATENCY_MIN_CALLS


def test_openvino_missing_is_a_skipped_record(mlp_path, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino raises ImportError
    out = tmp_path / "r.json"
    assert main(["bench", str(mlp_path), *FAST, "--batch", "2", "--rounds", "2", "--vs", "onnxruntime,openvino",
                 "--json", str(out)]) == 0
    records = load_results(out)["records"]
    ov = find_record(records, "openvino fp32")
    assert ov["status"] == "skipped" and "pip install 'greenrt[openvino]'" in ov["reason"]
    assert ov["items_per_s"] is None
    assert "openvino fp32" not in find_record(records, "greenrt onnx fp32")["round_latency_ratio_vs"]


def test_openvino_runs_with_the_threads_and_precision_hint_recorded(mlp_path):
    pytest.importorskip("openvino")
    records, _ = bench.run_bench(bench.BenchConfig(model=str(mlp_path), device="cpu", batches=[2], duration_s=0.05,
                                                   warmup=1, rounds=2, threads=1, vs=["onnxruntime", "openvino"]))
    ov = find_record(records, "openvino fp32")
    assert ov["status"] == "ok", ov.get("reason")
    assert ov["inference_precision_hint"] == "f32" and ov["inference_num_threads"] == 1
    assert 0 < ov["max_rel_err_vs_onnxruntime"] < 1e-5  # the same answers as onnxruntime, not all zeros
    assert "openvino fp32" in find_record(records, "greenrt onnx fp32")["round_latency_ratio_vs"]


@pytest.mark.gpu
def test_cuda_rounds_time_with_events(mlp_path):
    """--rounds on cuda: the blocks are timed with CUDA events, onnxruntime runs once (no CPU 'best' beside a GPU
    engine), and the round ratios are there."""
    records, extras = bench.run_bench(bench.BenchConfig(model=str(mlp_path), device="cuda", batches=[1, 16],
                                                        duration_s=0.1, warmup=2, rounds=3))
    assert extras["rounds"] == 3
    assert find_record(records, "onnxruntime-best fp32") is None
    for batch in (1, 16):
        ours = find_record(records, "greenrt onnx fp32", batch=batch)
        assert ours["timing"] == "cuda events" and len(ours["rounds_ms"]) == 3 and min(ours["rounds_ms"]) > 0
        ort = find_record(records, "onnxruntime fp32", batch=batch)
        if ort["status"] == "ok":
            assert ours["round_latency_ratio_vs"]["onnxruntime fp32"] > 0
            assert ours["headline_vs"] == "onnxruntime fp32"
