"""The results format (greenrt.tools.results): the validator refuses what breaks the format, naming the file,
record and field."""

import copy
import json

import pytest

from greenrt.tools.results import (
    FORMAT,
    ResultsFormatError,
    collect_metadata,
    load_results,
    make_record,
    validate_results,
    write_results,
)

def _valid():
    records = [
        make_record("m", "greenrt engine fp16", "fp16", 1, "cuda", latency_ms_p50=0.5, max_rel_err_vs_fp32=1e-3,
                    latency_speedup_vs={"torch eager fp16": 4.0}),
        make_record("m", "torch eager fp16", "fp16", 1, "cuda", latency_ms_p50=2.0, max_rel_err_vs_fp32=None),
        make_record("m", "greenrt conformance", None, None, "cpu", timed=False, status="passed"),
    ]
    meta = {"device": "Some GPU", "driver": None, "versions": {"greenrt": "0.1.0"}, "date": "2026-11-24",
            "command": "python bench/x.py", "notes": ""}
    return {"format": FORMAT, "metadata": meta, "records": records}


def test_valid_results_pass_and_round_trip(tmp_path):
    data = _valid()
    validate_results(data, "x.json")
    path = write_results(tmp_path / "r.json", data["metadata"], data["records"])
    assert load_results(path) == json.loads(path.read_text())
    first = path.read_text()
    write_results(path, data["metadata"], list(data["records"]))
    assert path.read_text() == first  # deterministic


@pytest.mark.parametrize("mutate, where", [
    (lambda d: d["records"][1].pop("runner"), "records[1].runner: missing"),
    (lambda d: d["records"][0].pop("watts"), "records[0].watts: missing"),
    (lambda d: d["records"][0].update(items_per_s="fast"), "records[0].items_per_s: expected a number or null"),
    (lambda d: d["records"][0].update(batch=1.0), "records[0].batch: expected an integer or null"),
    (lambda d: d["records"][0].update(batch=True), "records[0].batch: expected an integer or null"),
    (lambda d: d["records"][0].update(latency_ms_p50=float("nan")), "records[0].latency_ms_p50"),
    (lambda d: d["records"][0].update(precision="half"), "records[0].precision"),
    (lambda d: d["records"][0].update(max_rel_err_vs_fp32="small"), "records[0].max_rel_err_vs_fp32"),
    (lambda d: d["records"][1].pop("max_rel_err_vs_fp32"), "records[1]: a fp16 record needs an accuracy field"),
    (lambda d: d["records"][0]["latency_speedup_vs"].update({"torch eager fp16": 4.1}),
     "records[0].latency_speedup_vs['torch eager fp16']"),
    (lambda d: d["records"][0].update(latency_speedup_vs={"torch.compile": 1.2}), "no record of runner"),
    (lambda d: d["records"].append(copy.deepcopy(d["records"][1])), "records[3]: same model, runner"),
    (lambda d: d["metadata"].pop("command"), "metadata.command: missing"),
    (lambda d: d["metadata"].update(date="yesterday"), "metadata.date"),
    (lambda d: d["metadata"]["versions"].update(torch=2.11), "metadata.versions.torch"),
    (lambda d: d.update(format="greenrt-results/0"), "format"),
])
def test_validator_names_file_record_and_field(mutate, where):
    data = _valid()
    mutate(data)
    with pytest.raises(ResultsFormatError) as info:
        validate_results(data, "bench/results/x.json")
    assert str(info.value).startswith("bench/results/x.json: ")
    assert where in str(info.value)


def test_load_results_names_the_file(tmp_path):
    data = _valid()
    del data["records"][0]["device"]
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ResultsFormatError, match=r"broken\.json: records\[0\]\.device: missing"):
        load_results(path)


def test_write_results_refuses_invalid_records(tmp_path):
    meta = _valid()["metadata"]
    with pytest.raises(ResultsFormatError):
        write_results(tmp_path / "r.json", meta, [{"model": "m", "runner": "r"}])
    assert not (tmp_path / "r.json").exists()


def test_collect_metadata_without_a_gpu():
    meta = collect_metadata("python bench/x.py --out r.json", device="cpu", notes="n", weights="random")
    assert meta["command"] == "python bench/x.py --out r.json" and meta["weights"] == "random"
    assert meta["versions"]["greenrt"] and meta["versions"]["python"] and meta["versions"]["torch"]
    assert meta["device"]  # the CPU's name
    validate_results({"format": FORMAT, "metadata": meta,
                      "records": [make_record("m", "r", "fp32", 1, "cpu", latency_ms_p50=1.0)]})
