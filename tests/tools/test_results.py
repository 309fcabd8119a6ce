"""The results format (greenrt.tools.results): every committed results file follows it, the README's measured
section is what scripts/readme_results.py renders from them, and the validator refuses what breaks the format."""

import copy
import importlib.util
import json
from pathlib import Path

import pytest

from greenrt.tools.results import (
    FORMAT,
    ResultsFormatError,
    collect_metadata,
    dumps_results,
    load_results,
    make_record,
    validate_results,
    write_results,
)

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench/results"
IMAGES = {".png", ".jpg", ".jpeg", ".svg"}


def _generator():
    spec = importlib.util.spec_from_file_location("readme_results", ROOT / "scripts/readme_results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _results_files():
    return sorted(p for p in RESULTS.iterdir() if p.is_file() and p.suffix.lower() not in IMAGES)


@pytest.mark.parametrize("path", _results_files(), ids=lambda p: p.name)
def test_every_results_file_validates(path):
    assert path.suffix == ".json", f"{path}: results files are greenrt-results/1 JSON (or images)"
    data = load_results(path)
    assert data["format"] == FORMAT
    # written by write_results: re-serializing gives the same bytes (fixed key order, indent, newline)
    text = path.read_text()
    one_line = '\n  {"model": ' in text  # write_results(..., one_line_records=True)
    assert dumps_results(data["metadata"], data["records"], one_line_records=one_line) == text, (
        f"{path} is not in write_results' layout")


def test_readme_measured_section_is_generated():
    gen = _generator()
    readme = (ROOT / "README.md").read_text()
    assert gen.render(readme) == readme, (
        "README.md's generated results blocks differ from bench/results/*.json: run "
        "`python scripts/readme_results.py` (and do not edit between the results:begin/end markers by hand)")


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


def test_rounding_rules():
    gen = _generator()
    assert [gen.num(x) for x in (0.4700800031, 5.3955, 26.88, 26293.76, 1.9246)] == ["0.470", "5.40", "26.9",
                                                                                      "26,294", "1.92"]
    assert gen.err(0.0008676470024511218) == "8.68e-4" and gen.tol(1e-4) == "1e-4"
    assert gen.pct(1.0) == "100%" and gen.pct(0.9895833) == "99.0%" and gen.pct(0.99999) != "100%"
    assert gen.ms(None) == gen.ratio(None) == gen.NOT_MEASURED  # a null is never shown as a number
