"""Real models through greenrt vs onnxruntime (fp32): max |ours - ref| <= 1e-4 * max |ref| on every output.

CI runs the light entries; `pytest -m heavy tests/corpus` runs the rest (see greenrt.zoo.corpus).
"""

import numpy as np
import pytest
import torch

import greenrt
from greenrt.tools.compare import compare_arrays, run_onnxruntime
from greenrt.zoo.corpus import CORPUS

REL_TOL = 1e-4  # relative to the reference output's largest magnitude


def _params(device_marks=()):
    out = []
    for name, entry in CORPUS.items():
        marks = [pytest.mark.heavy] if entry.heavy else []
        out.append(pytest.param(name, marks=marks + list(device_marks), id=name))
    return out


def _check(name: str, device: str):
    entry = CORPUS[name]
    path = entry.export()
    session = greenrt.InferenceSession(path, device=device)
    names = [o.name for o in session.get_outputs()]
    worst = 0.0
    for feeds in entry.inputs():
        ref = run_onnxruntime(str(path), feeds)
        ours = session.run(None, {k: torch.from_numpy(v).to(device) for k, v in feeds.items()})
        for out_name, o, r in zip(names, ours, ref):
            report = compare_arrays(out_name, o.cpu().numpy(), r, rtol=REL_TOL, atol=0.0)
            assert report.ok, f"{name} output {out_name}: max rel err {report.max_rel:.3g} {report.note}"
            assert np.abs(r).max() > 0, f"{name}: reference output {out_name} is all zeros; inputs too weak"
            worst = max(worst, report.max_rel)
    print(f"{name} [{device}]: max rel err {worst:.3g}")


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
