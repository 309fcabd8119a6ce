"""Fuzz campaign (c): run-time inputs. Sessions over the tiny base models (bench/fuzz/models.py), as ONNX files and
as engines (with optimization profiles), are opened once in the warm process; each case forks and calls
``session.run`` (or ``run_device``) with a feed hypothesis draws:

    python bench/fuzz/fuzz_inputs.py --seed 0 --cases 2000 --out bench/results/fuzz_inputs.json

Feeds: wrong, missing, extra and empty names; numpy arrays, torch tensors, lists, scalars, strings and other
objects; every dtype (float16/64, bfloat16, ints, bool, complex, strings, objects); ranks 0-5; dims 0, in range,
past the model's fixed dims or its profiles, and huge (2^31, 2^40: zero-stride views that take no memory, so
only greenrt's copy of one could blow up); NaN / Inf / huge values, out-of-range indices, non-contiguous, reversed
and read-only arrays; output names that do not exist. Huge dims are drawn only where the model fixes the dim or an
engine profile bounds it: greenrt must refuse those before it copies anything, while a huge batch on a free dim is
work the caller asked for.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.fuzz import models  # noqa: E402
from bench.fuzz.supervisor import (ROOT, UNBUILDABLE, Campaign, campaign_args, Case, draw_recipes,  # noqa: E402
                                   campaign_main, limit_warm_process, listify, Outcome, run_cases, Supervisor)

import numpy as np  # noqa: E402
import torch  # noqa: E402

import greenrt  # noqa: E402
from greenrt.build import BuildConfig, build_engine  # noqa: E402
from greenrt.plan.profiles import parse_profile  # noqa: E402

# session name -> (base model, engine profiles or None for the ONNX file itself)
SESSIONS = {"mlp.onnx": ("mlp", None), "mlp.engine": ("mlp", ["x:1x8/2x8/4x8"]), "conv.onnx": ("conv", None),
            "conv.engine": ("conv", []), "gather.engine": ("gather", ["ids:1x5/2x5/4x5"]),
            "control.onnx": ("control", None)}
NAMES = sorted(SESSIONS)
DTYPES = ["float32", "float16", "float64", "bfloat16", "int64", "int32", "int8", "uint8", "bool", "complex64",
          "str", "object"]
HUGE = [2**31, 2**40]


def open_sessions(folder: Path) -> dict:
    sessions = {}
    for name, (base, profiles) in SESSIONS.items():
        onnx_path = folder / f"{base}.onnx"
        models.save(models.BASES[base](), onnx_path)
        if profiles is None:
            sessions[name] = greenrt.InferenceSession(onnx_path)
            continue
        engine = folder / name
        build_engine(onnx_path, engine, BuildConfig(device="cpu", opt_level=0,
                                                    profiles=[parse_profile(p) for p in profiles]),
                     log=lambda *a, **k: None)
        sessions[name] = greenrt.InferenceSession(engine)
    return sessions


def feed_strategy():
    from hypothesis import strategies as st

    dim = st.one_of(st.sampled_from([0, 1, 2, 3, 4, 5, 8, 9]), st.sampled_from(["fixed", "huge"]))
    value = st.fixed_dictionaries({
        "name": st.one_of(st.sampled_from(["model", "model", "model", "bogus", ""]), st.text(max_size=3)),
        "slot": st.integers(0, 3),
        "kind": st.sampled_from(["numpy", "numpy", "numpy", "torch", "list", "scalar", "none", "string", "dict"]),
        "dtype": st.sampled_from(["model"] * 6 + DTYPES),
        "rank": st.sampled_from(["model"] * 4 + [0, 1, 2, 3, 4, 5]),
        "dims": st.lists(dim, max_size=5),
        "values": st.sampled_from(["normal", "normal", "nan", "inf", "-inf", "huge", "negative", "mixed"]),
        "layout": st.sampled_from(["contiguous", "contiguous", "transposed", "reversed", "readonly", "strided"]),
    })
    return st.fixed_dictionaries({
        "session": st.sampled_from(NAMES),
        "feeds": st.lists(value, min_size=0, max_size=3),
        "drop_valid": st.booleans(),
        "outputs": st.sampled_from([None, None, "all", "bogus", "dup", "empty"]),
        "call": st.sampled_from(["run", "run", "run", "run_device"]),
    })


def _value(spec: dict, arg, rng: np.random.Generator, bounded: bool):
    """One input value per ``spec``, for the model input ``arg`` (its declared shape and type)."""
    kind = spec["kind"]
    if kind == "none":
        return None
    if kind == "string":
        return "not a tensor"
    if kind == "dict":
        return {"a": 1}
    declared = list(arg.shape or []) if arg is not None else []
    rank = len(declared) if spec["rank"] == "model" else spec["rank"]
    shape = []
    for axis in range(rank):
        want = declared[axis] if axis < len(declared) else None
        drawn = spec["dims"][axis] if axis < len(spec["dims"]) else "fixed"
        fixed = isinstance(want, int) or bounded
        if drawn == "fixed":
            shape.append(want if isinstance(want, int) else 2)
        elif drawn == "huge":
            # only where the model bounds the dim: there greenrt must refuse it before copying
            shape.append(HUGE[axis % 2] if fixed else 3)
        else:
            shape.append(drawn)
    dtype_name = spec["dtype"]
    if dtype_name == "model":
        from greenrt.onnx.dtypes import ONNX_TO_TORCH, TORCH_TO_NUMPY

        np_dtype = TORCH_TO_NUMPY.get(ONNX_TO_TORCH.get(arg.elem_type)) if arg is not None else None
        dtype_name = np_dtype.name if np_dtype is not None else "float32"
    if kind == "scalar":
        return {"str": "a", "object": object()}.get(dtype_name, 1.5 if "float" in dtype_name else 3)
    n = int(np.prod(shape, dtype=np.float64))
    big = n > 1 << 20
    small_shape = [1] * len(shape) if big else shape
    if dtype_name in ("str", "object"):
        array = np.full(small_shape, "a" if dtype_name == "str" else None, dtype=object if dtype_name == "object"
                        else "<U1")
    else:
        base = rng.standard_normal(small_shape) * 3
        fill = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf, "huge": 1e38, "negative": -7}.get(spec["values"])
        if fill is not None:
            base = np.full(small_shape, fill)
        elif spec["values"] == "mixed" and base.size:
            base.flat[0] = np.nan
            base.flat[-1] = np.inf
        if dtype_name == "bfloat16":
            tensor = torch.from_numpy(base.astype(np.float32)).to(torch.bfloat16)
            return tensor.expand(shape) if big else tensor
        with np.errstate(all="ignore"):
            if dtype_name in ("int64", "int32", "int8", "uint8"):
                base = np.nan_to_num(base, nan=0, posinf=127, neginf=-128)
            array = base.astype(dtype_name)
    if big:
        array = np.broadcast_to(array, shape)  # a zero-stride view: no memory behind its size
    elif spec["layout"] == "transposed" and array.ndim >= 2:
        array = np.ascontiguousarray(array.swapaxes(0, -1)).swapaxes(0, -1)
    elif spec["layout"] == "reversed" and array.ndim >= 1:
        array = array[::-1].copy()[::-1]
    elif spec["layout"] == "readonly":
        array = array.copy()
        array.flags.writeable = False
    elif spec["layout"] == "strided" and array.ndim >= 1:
        wide = np.repeat(array, 2, axis=0)
        array = wide[::2]
    if kind == "torch" and array.dtype != object and array.dtype.kind != "U":
        return torch.from_numpy(np.array(array)) if not big else torch.from_numpy(array[(0,) * array.ndim].reshape(
            [1] * array.ndim).copy()).expand(shape)
    if kind == "list":
        return array.tolist() if not big else [[1.0]]
    return array


def build_feeds(recipe: dict, session, base: str, rng: np.random.Generator) -> dict:
    feeds = {} if recipe["drop_valid"] else dict(models.feeds_for(base, rng))
    inputs = session.get_inputs()
    bounded = bool(session.profiles)
    for spec in recipe["feeds"]:
        arg = inputs[spec["slot"] % len(inputs)] if inputs else None
        name = arg.name if spec["name"] == "model" and arg is not None else spec["name"]
        feeds[name] = _value(spec, arg if spec["name"] == "model" else None, rng, bounded)
    return feeds


def output_names(recipe: dict, session):
    names = [o.name for o in session.get_outputs()]
    return {None: None, "all": names, "bogus": ["nope"], "dup": names + names[:1], "empty": []}[recipe["outputs"]]


def target(session, feeds: dict, outputs, call: str) -> None:
    if call == "run_device":
        session.run_device(feeds)
    else:
        session.run(outputs, feeds)


class InputsCampaign:
    name = "inputs"

    def __init__(self, wall_s: float = 10.0):
        self.sup = Supervisor(wall_s=wall_s)
        self.work = Path(tempfile.mkdtemp(prefix="greenrt-fuzz-inputs-"))
        self.sessions = open_sessions(self.work)
        rng = np.random.default_rng(0)
        for name, session in self.sessions.items():  # warm, in this process
            base = SESSIONS[name][0]
            for batch in (1, 2):
                session.run(None, models.feeds_for(base, rng, batch=batch if base != "conv" else 1))
        self.sup.rebase()

    def run(self, case: Case) -> Outcome:
        recipe = case.recipe
        session = self.sessions[recipe["session"]]
        try:
            feeds = build_feeds(recipe, session, case.base, np.random.default_rng(len(str(recipe))))
        except (ValueError, TypeError, OverflowError, MemoryError, RuntimeError) as exc:  # e.g. torch's expand of
            return Outcome(UNBUILDABLE, type(exc).__name__, str(exc))  # 2^31 x 2^40 x ...: its numel overflows
        return self.sup.run(target, session, feeds, output_names(recipe, session), recipe["call"], folder=self.work)

    def cases(self, seed: int, n: int) -> list[Case]:
        return [Case("feeds", _fix(r), SESSIONS[r["session"]][0]) for r in draw_recipes(feed_strategy(), n, seed)]


def _fix(recipe: dict) -> dict:
    return {k: listify(v) for k, v in recipe.items()}


class _FeedCampaign(Campaign):
    """Minimizes a feed recipe by dropping its drawn values (the recipe is a dict, not a list of edits)."""

    def record(self, case: Case, outcome: Outcome) -> None:
        if outcome.finding and outcome.signature not in self.findings:
            feeds = case.recipe["feeds"]
            replay = self.replay

            def with_feeds(ops):
                return Case(case.family, {**case.recipe, "feeds": ops}, case.base)

            self.replay = lambda c: replay(with_feeds(c.recipe))
            try:
                super().record(Case(case.family, feeds, case.base), outcome)
            finally:
                self.replay = replay
            found = self.findings[outcome.signature]
            found["recipe"] = {**case.recipe, "feeds": found["recipe"]}
            return
        super().record(case, outcome)


NOTES = ("Each case forked from a warm process that holds the sessions (greenrt, torch imported; ONNX sessions and "
         "cpu engines with profiles over the tiny base models), 10 s wall and 2 GiB (address space and resident "
         "memory, on top of the warm process) per case, torch on 1 thread. A case: session.run (or run_device) with a "
         "hypothesis-drawn feed. Huge dims (2^31, 2^40) are zero-stride views, drawn only where the model fixes the "
         "dim or a profile bounds it. Findings carry the minimized feed recipe (bench/fuzz/fuzz_inputs.py replays "
         "it).")


def main(argv=None) -> int:
    return campaign_main("inputs", __doc__, InputsCampaign, NOTES, argv, campaign_class=_FeedCampaign)


if __name__ == "__main__":
    sys.exit(main())
