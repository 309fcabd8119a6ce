"""The ONNX node conformance suite as a regression gate: failures must equal the committed expected list."""

import numpy as np
import pytest

from greenrt.tools.conformance import (
    collect_cases,
    compare,
    check_against_expected,
    read_expected_failures,
    run_all,
    skip_reason,
)


@pytest.fixture(scope="module")
def results():
    return run_all(progress=False)


def test_every_expected_failure_has_a_reason():
    expected = read_expected_failures()
    assert expected, "the expected-failures list is missing"
    assert all(reason for reason in expected.values())


def test_no_regressions_and_no_stale_expected_failures(results):
    regressions, fixed = check_against_expected(results, read_expected_failures())
    assert not regressions, f"cases that used to pass now fail: {regressions}"
    assert not fixed, f"cases now pass; remove them from conformance_expected_failures.txt: {fixed}"


def test_skips_only_for_stated_dtype_reasons(results):
    for r in results:
        if r.status == "skipped":
            assert "has no torch dtype" in r.reason, r


def test_suite_is_the_full_generated_set(results):
    assert len(results) == len(collect_cases()) >= 1800
    passed = sum(r.status == "passed" for r in results)
    print(f"conformance: {passed} passed of {len(results)}")


def test_compare_catches_wrong_values_dtypes_and_shapes():
    a = np.array([1.0, 2.0, np.nan], np.float32)
    assert compare(a, a.copy(), 1e-3, 1e-7) == ""
    assert "elements off" in compare(a, a + 1, 1e-3, 1e-7)
    assert "dtype" in compare(a, a.astype(np.float64), 1e-3, 1e-7)
    assert "shape" in compare(a, a[:2], 1e-3, 1e-7)
    assert "values differ" in compare(np.array([1, 2]), np.array([1, 3]), 0, 0)


def test_skip_reason_is_empty_for_ordinary_cases():
    case = next(c for c in collect_cases() if c.name == "test_relu")
    assert skip_reason(case) == ""


def test_a_random_outcome_case_may_pass_by_chance_but_a_fixed_one_must_be_delisted():
    from types import SimpleNamespace as R

    expected = {"test_bernoulli": "[random outcome] random sampling", "test_fixed": "was a bug", "test_x": "bug"}
    results = [R(name="test_bernoulli", status="passed", reason=""), R(name="test_fixed", status="passed", reason=""),
               R(name="test_x", status="failed", reason="bug"), R(name="test_new", status="failed", reason="oops")]
    regressions, fixed = check_against_expected(results, expected)
    assert regressions == {"test_new": "oops"} and fixed == ["test_fixed"]
