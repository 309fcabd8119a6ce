"""The CI slice of the fuzz campaigns (issue 13): each campaign of bench/fuzz/ with a fixed seed and a small case
budget (about 10-20 s each on the 2-core machine), asserting no findings. The full campaigns and their committed
results: bench/results/fuzz_<campaign>.json (`python bench/fuzz/fuzz_onnx.py --help`)."""

from __future__ import annotations

import json
import shutil

import pytest

from bench.fuzz.fuzz_calibration import CalibrationCampaign, _DictCampaign
from bench.fuzz.fuzz_engine import EngineCampaign
from bench.fuzz.fuzz_inputs import InputsCampaign, _FeedCampaign
from bench.fuzz.fuzz_onnx import OnnxCampaign
from bench.fuzz.supervisor import Campaign, run_cases

SEED = 20261207

# campaign -> (its cases and files, the counting it uses, cases in the slice)
SLICES = {
    "onnx": (OnnxCampaign, Campaign, 350),
    "engine": (EngineCampaign, Campaign, 200),
    "inputs": (InputsCampaign, _FeedCampaign, 400),
    "calibration": (CalibrationCampaign, _DictCampaign, 280),
}


@pytest.mark.parametrize("name", list(SLICES))
def test_campaign_slice_has_no_findings(name):
    fuzz_cls, count_cls, n = SLICES[name]
    fuzz = fuzz_cls()
    try:
        cases = fuzz.cases(SEED, n)
        campaign = count_cls(name, SEED, fuzz.sup, fuzz.run)
        run_cases(campaign, cases, fuzz.run, quiet=True)
    finally:
        fuzz.sup.close()
        shutil.rmtree(fuzz.work, ignore_errors=True)
    totals = {k: sum(c[k] for c in campaign.counts.values()) for k in next(iter(campaign.counts.values()))}
    assert campaign.cases == len(cases) >= n * 0.9, totals
    # the slice reaches both allowed outcomes: results and clear errors (a harness that only ever errors tests little)
    assert totals["ok"] > 0 and totals["clean-error"] > 0, totals
    assert not campaign.findings, json.dumps(list(campaign.findings.values()), indent=1, default=str)[:4000]
