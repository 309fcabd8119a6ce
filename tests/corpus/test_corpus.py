"""Real models through greenrt vs onnxruntime (fp32): max |ours - ref| <= 1e-4 * max |ref| on every output.

CI runs the light entries; `pytest -m heavy tests/corpus` runs the rest (see greenrt.zoo.corpus).
"""

import numpy as np
import pytest
import torch

import greenrt
from greenrt.onnx.dtypes import torch_to_numpy
from greenrt.tools.compare import compare_arrays, run_onnxruntime
from greenrt.zoo.corpus import CORPUS, profile_for

REL_TOL = 1e-4  # relative to the reference output's largest magnitude


def _params(device_marks=()):
    out = []
    for name, entry in CORPUS.items():
        marks = [pytest.mark.heavy] if entry.heavy else []
        out.append(pytest.param(name, marks=marks + list(device_marks), id=name))
    return out


def _check_output(entry, what: str, out_name: str, ours: np.ndarray, ref: np.ndarray, rel_tol: float,
                  worst: tuple[float, float]) -> tuple[float, float]:
    """Check one output (piece by piece where the entry splits it); the (max rel err, its tolerance) of the piece
    nearest its tolerance so far."""
    got = entry.pieces(out_name, ours, rel_tol)
    for piece, (r_piece, tol) in entry.pieces(out_name, ref, rel_tol).items():
        report = compare_arrays(piece, got[piece][0], r_piece, rtol=tol, atol=0.0)
        assert report.ok, f"{entry.name} {what} output {piece}: max rel err {report.max_rel:.3g} {report.note}"
        assert np.abs(r_piece).max() > 0, f"{entry.name}: reference output {piece} is all zeros; inputs too weak"
        if report.max_rel / tol >= worst[0] / worst[1]:
            worst = (report.max_rel, tol)
    return worst


def _worst_text(worst: tuple[float, float], rel_tol: float) -> str:
    """'max rel err 0.000789' and, where a part of an output had its own tolerance, ', tolerance 0.002'."""
    return f"max rel err {worst[0]:.3g}" + (f", tolerance {worst[1]:g}" if worst[1] != rel_tol else "")


def _check(name: str, device: str):
    entry = CORPUS[name]
    path = entry.export()
    session = greenrt.InferenceSession(path, device=device)
    names = [o.name for o in session.get_outputs()]
    worst = (0.0, REL_TOL)
    for feeds in entry.inputs():
        ref = run_onnxruntime(str(path), feeds)
        ours = session.run(None, {k: torch.from_numpy(v).to(device) for k, v in feeds.items()})
        for out_name, o, r in zip(names, ours, ref):
            worst = _check_output(entry, "onnx", out_name, torch_to_numpy(o), r, REL_TOL, worst)
    print(f"{name} [{device}]: {_worst_text(worst, REL_TOL)}")


@pytest.mark.parametrize("name", _params())
def test_corpus_cpu(name):
    _check(name, "cpu")


@pytest.mark.parametrize("name", _params([pytest.mark.gpu]))
def test_corpus_cuda(name):
    _check(name, "cuda")


def test_efficientnet_lite0_recognises_the_cat():
    from greenrt.zoo import efficientnet_lite as e

    path = e.export()
    x = e.preprocess(e.photos()["chelsea"])
    ours = greenrt.InferenceSession(path).run(None, {"image": x})[0][0]
    ref = run_onnxruntime(str(path), {"image": x})[0][0]
    top5, ref_top5 = np.argsort(-ours)[:5], np.argsort(-ref)[:5]
    assert set(top5) & set(range(281, 286)), f"no domestic-cat class in top-5 {top5}"
    assert list(top5) == list(ref_top5)


def _check_engine(name: str, device: str, precision: str, tmp_path, rel_tol: float):
    """Build an engine of a corpus model and compare it with onnxruntime on every feed.

    Reduced precision is checked as the engine issue states it: on logits. Outputs computed by a final
    Sigmoid/Softmax are compared through the logits under them (marked as extra engine outputs), and the
    probabilities must make the same call at >= 99.5% of positions. Entries with ``fp16_max_error`` are built with
    the accuracy search on their feeds; their ``holdout`` feeds are checked too.
    """
    from greenrt.build import BuildConfig, build_engine
    from greenrt.zoo.corpus import decision_agreement, probability_logits

    entry = CORPUS[name]
    path = entry.export()
    feeds_list = entry.inputs()
    logits = probability_logits(path) if precision != "fp32" else {}
    samples = None
    if precision != "fp32":
        samples = feeds_list if entry.fp16_max_error else None
        feeds_list = feeds_list + (entry.holdout() if entry.holdout else [])
    config = BuildConfig(device=device, precision=precision, profiles=[profile_for(feeds_list)],
                         outputs=list(logits.values()))
    if samples:
        config.max_error, config.error_outputs = entry.fp16_max_error, list(logits.values()) or []
    engine = tmp_path / f"{name}_{device}_{precision}.engine"
    header = build_engine(path, engine, config, log=lambda m: None, samples=samples)
    session = greenrt.InferenceSession(engine, device=device)
    names = [o.name for o in session.get_outputs()]
    worst = (0.0, rel_tol)
    for feeds in feeds_list:
        ref = dict(zip(names, run_onnxruntime(str(path), feeds, extra_outputs=list(logits.values()))))
        ours = dict(zip(names, session.run(None, {k: torch.from_numpy(v).to(device) for k, v in feeds.items()})))
        for out_name in names:
            o, r = torch_to_numpy(ours[out_name]), ref[out_name]
            # the engine returns the model's dtypes whatever its precision (no cast here would hide a wrong one)
            assert o.dtype == r.dtype, f"{name} engine ({precision}) output {out_name}: dtype {o.dtype} vs {r.dtype}"
            if out_name in logits:
                agree = decision_agreement(o, r)
                assert agree >= 0.995, f"{name} engine ({precision}) output {out_name}: same call at {agree:.2%}"
                continue
            worst = _check_output(entry, f"engine ({precision})", out_name, o, r, rel_tol, worst)
    search = header["report"].get("accuracy_search")
    kept = f", accuracy search kept {search['kept_fp32']}/{search['layers']} layers fp32" if search else ""
    print(f"{name} engine [{device} {precision}]: {_worst_text(worst, rel_tol)}{kept}")


@pytest.mark.parametrize("name", _params())
def test_corpus_engine_cpu(name, tmp_path):
    _check_engine(name, "cpu", "fp32", tmp_path, REL_TOL)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("name", _params([pytest.mark.gpu]))
def test_corpus_engine_cuda(name, precision, tmp_path):
    _check_engine(name, "cuda", precision, tmp_path, REL_TOL if precision == "fp32" else 1e-2)


@pytest.mark.parametrize("name", [n for n, e in CORPUS.items() if e.fp16_max_error and not e.heavy])
def test_corpus_fp16_engine_with_accuracy_search_cpu(name, tmp_path):
    """The accuracy search path of the fp16 corpus check, on CPU (torch runs fp16 there too, with other kernels):
    searched on the corpus feeds, within 1e-2 on the logits of the held-out ones as well."""
    _check_engine(name, "cpu", "fp16", tmp_path, 1e-2)


def test_yolo_scores_get_their_own_tolerance():
    """The split is what makes a wrong score visible: zeroing every class score passes a check scaled by the box
    coordinates, and fails the per-part one."""
    rng = np.random.default_rng(0)
    out = np.concatenate([rng.uniform(0, 640, (1, 4, 50)), rng.uniform(0, 2e-4, (1, 80, 50))], 1).astype(np.float32)
    broken = out.copy()
    broken[:, 4:] = 0
    assert compare_arrays("output0", broken, out, rtol=REL_TOL, atol=0.0).ok  # the old check: blind to scores
    entry = CORPUS["yolov8n"]
    got = entry.pieces("output0", broken, REL_TOL)
    verdicts = {k: compare_arrays(k, got[k][0], v, rtol=tol, atol=0.0).ok
                for k, (v, tol) in entry.pieces("output0", out, REL_TOL).items()}
    assert verdicts == {"output0[boxes]": True, "output0[scores]": False}


COMPILED_LIGHT = ("efficientnet_lite0", "minilm", "ppocr_cls")  # the rest compile for minutes: -m heavy


@pytest.mark.parametrize("name", [pytest.param(n, marks=[] if n in COMPILED_LIGHT else [pytest.mark.heavy], id=n)
                                  for n in CORPUS])
def test_corpus_compiled_engine_cpu(name, tmp_path, monkeypatch):
    """Issue 12: a corpus engine run compiled by Inductor on the CPU (frozen weights, C++ wrapper, the compiled-code
    cache), as `--opt-level 4` keeps it where it times faster, is within the corpus tolerance of onnxruntime on
    every feed. The compiled path is forced here (not left to timing) and must really be taken."""
    from greenrt.build import BuildConfig, build_engine
    from greenrt.plan.engine_file import read_engine
    from greenrt.runtime.runner import Runner

    monkeypatch.setenv("GREENRT_CACHE", str(tmp_path / "cache"))
    entry = CORPUS[name]
    path = entry.export()
    feeds_list = entry.inputs()
    build_engine(path, tmp_path / "e.engine", BuildConfig(device="cpu", profiles=[profile_for(feeds_list)]),
                 log=lambda m: None)
    engine = read_engine(tmp_path / "e.engine")
    engine.plan.compiled = "inductor"
    config = engine.header["config"]
    runner = Runner(engine.plan, engine.weights, "cpu", precision=config.get("precision"),
                    channels_last=bool(config.get("channels_last")), specialize=True, compile_key=f"corpus-{name}")
    names = [o.name for o in greenrt.InferenceSession(tmp_path / "e.engine").get_outputs()]
    worst = (0.0, REL_TOL)
    for feeds in feeds_list:
        ref = run_onnxruntime(str(path), feeds)
        ours = runner.run({k: torch.from_numpy(v) for k, v in feeds.items()})
        for out_name, o, r in zip(names, ours, ref):
            worst = _check_output(entry, "compiled engine", out_name, torch_to_numpy(o), r, REL_TOL, worst)
    assert runner.compiled is not None and not runner.compiled.failed and runner.compiled.compiles >= 1
    print(f"{name} compiled engine [cpu]: {_worst_text(worst, REL_TOL)}")
