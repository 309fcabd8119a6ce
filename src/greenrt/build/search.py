"""The accuracy search driver: trial builds of the model with ever shorter fp32 prefixes, each measured on the
sample inputs through the runner a session will use; the bisection itself is pure (precision/search.py)."""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

from ..plan.compile import compile_model
from ..precision import PrecisionConfig, apply_precision
from ..precision.search import SearchResult, search_fp32_prefix
from .accuracy import float_output_errors, worst_error


def accuracy_search(load_optimized: Callable, prec_config: PrecisionConfig, observed, make_runner: Callable,
                    sample_feeds: list, sample_refs: list, output_names: list[str], checked: list[str],
                    target: float, log, samples_given: bool) -> SearchResult:
    """The shortest fp32 prefix of the reduced-precision layers meeting ``target`` on the samples.

    ``load_optimized()`` gives a fresh optimized model (the precision rewrite works in place, so every trial starts
    anew); ``make_runner(plan, weights)`` the runner the engine will have."""
    probe = apply_precision(load_optimized(), prec_config, observed)  # which layers run reduced
    candidates = [n.node for n in probe.nodes if n.precision == prec_config.default and not n.reason and n.node]

    def evaluate(keep: int) -> float:
        trial = load_optimized()
        apply_precision(trial, replace(prec_config, keep_fp32={name: "search" for name in candidates[:keep]}),
                        observed)
        runner = make_runner(*compile_model(trial))
        errors = []
        for feeds, ref in zip(sample_feeds, sample_refs):
            errs = float_output_errors(output_names, runner.run(feeds), ref)
            errors += [errs[n] for n in checked if n in errs]
        return worst_error(errors)

    log(f"accuracy search: {len(candidates)} {prec_config.default} layers, target max rel err {target:g} on "
        f"{', '.join(checked)} over {len(sample_feeds)} sample(s)")
    if not samples_given:
        log("warning: the accuracy search runs on random inputs, whose error can differ from real data's either "
            "way; give representative inputs with --inputs")
    return search_fp32_prefix(candidates, evaluate, target, log=log)
