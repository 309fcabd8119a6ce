"""The one error measure of checks, the accuracy search and compare: NaN is never 'small'."""

import math

import numpy as np
import pytest
import torch

from greenrt.build.accuracy import compare_arrays, float_output_errors, max_rel_error, worst_error
from greenrt.precision.search import search_fp32_prefix

R = np.random.default_rng(5)


def test_nan_where_the_reference_has_none_is_an_infinite_error():
    ref = R.standard_normal((3, 4)).astype(np.float32)
    ours = ref.copy()
    ours[1, 2] = np.nan
    assert max_rel_error(ours, ref) == math.inf
    assert max_rel_error(torch.from_numpy(ours), torch.from_numpy(ref)) == math.inf
    report = compare_arrays("y", ours, ref, rtol=1e-3, atol=0.0)
    assert not report.ok and "NaN" in report.note


def test_nan_in_the_same_places_is_fine_and_the_rest_is_measured():
    ref = R.standard_normal((3, 4)).astype(np.float32)
    ref[0, 0] = np.nan
    ours = ref * (1 + 1e-3)
    assert max_rel_error(ours, ref) == pytest.approx(1e-3, rel=1e-3)


def test_an_infinity_the_reference_has_not():
    ref = R.standard_normal(8).astype(np.float32)
    ours = ref.copy()
    ours[3] = np.inf
    assert max_rel_error(ours, ref) == math.inf
    assert max_rel_error(np.full(2, np.inf), np.full(2, np.inf)) == 0.0
    assert max_rel_error(np.array([np.inf]), np.array([-np.inf])) == math.inf


def test_shape_mismatch_is_infinite():
    assert max_rel_error(np.ones((2, 3)) * R.random(), np.ones((3, 2))) == math.inf


def test_worst_error_takes_nan_as_worst():
    assert max([0.0, float("nan")]) == 0.0  # why the helper exists
    assert worst_error([0.0, float("nan"), 1e-3]) == math.inf
    assert worst_error([1e-4, 3e-3]) == 3e-3
    assert worst_error([]) == 0.0


def test_float_output_errors_skips_non_float_outputs():
    a = torch.from_numpy(R.standard_normal(4).astype(np.float32))
    ids = torch.arange(4)
    errs = float_output_errors(["y", "ids"], [a * 1.01, ids], [a, ids])
    assert list(errs) == ["y"] and errs["y"] == pytest.approx(0.01, rel=1e-4)


def test_accuracy_search_never_takes_a_nan_error_for_a_pass():
    """A prefix whose engine outputs NaN must count as missing the target (it used to count as 0.0)."""
    errors = {k: (float("nan") if k < 6 else 1e-3) for k in range(11)}
    result = search_fp32_prefix([f"n{i}" for i in range(10)], lambda k: errors[k], target=5e-3, log=lambda m: None)
    assert result.keep == 6 and result.error_after == 1e-3
    assert result.error_before == math.inf
