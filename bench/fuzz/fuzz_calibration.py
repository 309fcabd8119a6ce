"""Fuzz campaign (d): INT8 calibration data. Each case writes calibration data for one of the tiny base models
(bench/fuzz/models.py) and calibrates as ``greenrt calibrate`` does: ``model_input_names``,
``open_calibration_data`` and ``calibrate`` (with a calibration cache in some cases), and in some an INT8 build.

    python bench/fuzz/fuzz_calibration.py --seed 0 --cases 2000 --out bench/results/fuzz_calibration.json

Hypothesis draws the data: an .npz file, a folder of them, a folder of images (valid, corrupt, empty files, wrong
suffixes) with a preprocessing spec, a mixed or empty folder, a missing path, or a module:function; arrays named
for the inputs or not, of any dtype, of 0-5 samples whose shapes fit or do not, with normal, constant, all-zero,
NaN or Inf values, or object arrays (which need pickle); byte-mutated .npz files; the calibrator, percentile and
batch size at their edges; and a calibration cache that is missing, valid, or tampered with.
"""

from __future__ import annotations

import copy
import io
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.fuzz import models  # noqa: E402
from bench.fuzz.fuzz_engine import edit_json, json_paths, json_value  # noqa: E402
from bench.fuzz.fuzz_onnx import apply_bytes  # noqa: E402
from bench.fuzz.supervisor import (ROOT, UNBUILDABLE, Campaign, campaign_args, Case, draw_recipes,  # noqa: E402
                                   campaign_main, limit_warm_process, listify, Outcome, run_cases, Supervisor)

import numpy as np  # noqa: E402

from greenrt.build import BuildConfig, build_engine  # noqa: E402
from greenrt.build.calibration import calibrate, model_input_names, open_calibration_data  # noqa: E402

BASE_NAMES = ["conv", "mlp", "gather"]
METHODS = ["percentile", "entropy", "minmax", "mse", "bogus", ""]
DTYPES = ["float32", "float16", "float64", "int64", "int32", "uint8", "bool", "complex64", "object", "str"]
CALLABLES = ["json:dumps", "os:getcwd", "builtins:dict", "builtins:list", "no_such_module_x:f", "math:pi", "os:"]


def data_strategy():
    from hypothesis import strategies as st

    array = st.fixed_dictionaries({
        "name": st.sampled_from(["model", "model", "model", "bogus", ""]),
        "dtype": st.sampled_from(["model"] * 20 + DTYPES),
        "samples": st.sampled_from([0, 1, 2, 3, 5, 3, 5]),
        "shape": st.sampled_from(["fit"] * 6 + ["short", "long", "wrong", "scalar"]),
        "values": st.sampled_from(["normal"] * 4 + ["constant", "zeros", "nan", "inf", "mixed", "huge"]),
    })
    named = array.map(lambda a: {**a, "name": "model"})  # the model's input, in most files; others beside it
    arrays = st.one_of(st.tuples(named).map(list), st.tuples(named).map(list), st.tuples(named).map(list),
                       st.lists(array, max_size=3))
    npz = st.fixed_dictionaries({"arrays": arrays,
                                 "mutate": st.one_of(st.none(), st.lists(st.tuples(
                                     st.sampled_from(["flip", "truncate", "set"]), st.integers(0, 2000),
                                     st.integers(0, 7)), min_size=1, max_size=3))}).map(
        lambda f: {**f, "mutate": f["mutate"] if len(f["arrays"]) % 3 == 2 else None})  # most files left intact
    image = st.sampled_from(["png", "png", "jpg", "bmp", "corrupt", "empty", "gray", "tiny", "huge_header"])
    return st.fixed_dictionaries({
        "base": st.sampled_from(BASE_NAMES),
        "kind": st.sampled_from(["npz", "npz", "npz", "folder", "images", "mixed", "empty_dir", "missing",
                                 "callable"]),
        "files": st.lists(npz, min_size=1, max_size=3),
        "images": st.lists(image, min_size=0, max_size=3),
        "preprocess": st.sampled_from([None] * 3 + ["resize=8,crop=8"] * 3 + ["", "resize=8,crop=8", "resize=10,crop=8,layout=nhwc", "crop=0",
                                       "resize=4,crop=8", "mean=1/2,std=1", "std=0/0/0", "layout=xyz", "resize=-1",
                                       "resize=100000,crop=100000", "garbage"]),
        "callable": st.sampled_from(CALLABLES),
        "method": st.sampled_from(["percentile"] * 6 + METHODS),
        "percentile": st.sampled_from([99.99] * 10 + [100.0, 50.0, 0.0, -1.0, 101.0, float("nan"), float("inf"), 1e-30]),
        "batch": st.sampled_from([8] * 6 + [1, 2, 0, -1, 2**31]),
        "cache": st.one_of(st.just(None), st.just("fresh"), st.tuples(st.just("tamper"), st.lists(st.tuples(
            st.integers(0, 200), json_value()), min_size=1, max_size=3))),
        "build": st.sampled_from([False] * 7 + [True]),
    })


def _input_shape(base: str) -> tuple[str, list[int], str]:
    feeds = models.feeds_for(base, np.random.default_rng(0), batch=1)
    (name, array), = feeds.items()
    return name, list(array.shape[1:]), array.dtype.name


def _array(spec: dict, base: str, rng: np.random.Generator):
    name, shape, dtype = _input_shape(base)
    name = name if spec["name"] == "model" else spec["name"]
    dtype = dtype if spec["dtype"] == "model" else spec["dtype"]
    shape = {"fit": shape, "short": shape[:-1], "long": shape + [2], "wrong": [s + 1 for s in shape],
             "scalar": None}[spec["shape"]]
    if shape is None:
        return name, np.array(1.5)
    full = [spec["samples"], *shape]
    values = spec["values"]
    if dtype in ("object", "str"):
        return name, np.full(full, "a", dtype=object if dtype == "object" else "<U1")
    if values == "normal":
        data = rng.standard_normal(full) * 2 + 0.5
        if base == "gather":
            data = rng.integers(0, 20, full)
    else:
        data = np.full(full, {"constant": 0.75, "zeros": 0.0, "nan": np.nan, "inf": np.inf, "mixed": 1.0,
                              "huge": 3e38}[values])
        if values == "mixed" and data.size:
            data.flat[0] = np.nan
            data.flat[-1] = -np.inf
    with np.errstate(all="ignore"):
        if dtype in ("int64", "int32", "uint8"):
            data = np.nan_to_num(data, nan=0, posinf=100, neginf=-100)
        return name, data.astype(dtype)


def _npz_bytes(spec: dict, base: str, rng: np.random.Generator) -> bytes:
    arrays = dict(_array(a, base, rng) for a in spec["arrays"])
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # object arrays are pickled: loading them must be refused, not unpickled
    data = buf.getvalue()
    if spec["mutate"]:
        data = apply_bytes(data, [[k, off, arg] if k != "truncate" else [k, off] for k, off, arg in spec["mutate"]])
    return data


def _image(kind: str, path: Path, rng: np.random.Generator) -> Path:
    from PIL import Image

    if kind in ("corrupt", "empty", "huge_header"):
        path = path.with_suffix(".png")
        data = {"corrupt": b"\x89PNG\r\n\x1a\n" + bytes(range(64)), "empty": b"",
                "huge_header": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x7f\xff\xff\xff\x7f\xff\xff\xff\x08\x02\x00\x00\x00"
                }[kind]
        path.write_bytes(data)
        return path
    size = (1, 1) if kind == "tiny" else (12, 10)
    pixels = rng.integers(0, 256, (*size[::-1], 3), dtype=np.uint8)
    img = Image.fromarray(pixels[..., 0] if kind == "gray" else pixels)
    suffix = {"jpg": ".jpg", "bmp": ".bmp"}.get(kind, ".png")
    path = path.with_suffix(suffix)
    img.save(path)
    return path


def materialize(recipe: dict, folder: Path, valid_cache: dict) -> dict:
    """The case's files; returns the arguments of the calibration call."""
    rng = np.random.default_rng(7)
    base = recipe["base"]
    model = folder / "model.onnx"
    models.save(models.BASES[base](), model)
    kind = recipe["kind"]
    data = folder / "calib"
    if kind == "npz":
        spec = str(data.with_suffix(".npz"))
        Path(spec).write_bytes(_npz_bytes(recipe["files"][0], base, rng))
    elif kind in ("folder", "images", "mixed", "empty_dir"):
        data.mkdir()
        spec = str(data)
        if kind in ("folder", "mixed"):
            for i, f in enumerate(recipe["files"]):
                (data / f"part{i}.npz").write_bytes(_npz_bytes(f, base, rng))
        if kind in ("images", "mixed"):
            for i, img in enumerate(recipe["images"]):
                _image(img, data / f"img{i}", rng)
    elif kind == "missing":
        spec = str(folder / "nowhere.npz")
    else:
        spec = recipe["callable"]
    cache = None
    if recipe["cache"] == "fresh":
        cache = folder / "model.calib.json"
    elif recipe["cache"] is not None:
        cache = folder / "model.calib.json"
        doc = copy.deepcopy(valid_cache[base])
        paths = json_paths(doc)
        for index, value in recipe["cache"][1]:
            edit_json(doc, ["set", list(paths[index % len(paths)]), value])
        cache.write_text(json.dumps(doc))
    return {"model": model, "spec": spec, "cache": cache}


def target(folder: Path, recipe: dict, call: dict) -> None:
    names = model_input_names(call["model"])
    source = open_calibration_data(call["spec"], names, recipe["preprocess"])
    calibrate(call["model"], source, method=recipe["method"], percentile=recipe["percentile"],
              batch_size=recipe["batch"], cache=call["cache"])
    if recipe["build"]:
        config = BuildConfig(device="cpu", opt_level=0, int8=True, calib=call["spec"], calib_method=recipe["method"],
                             percentile=recipe["percentile"], calib_batch=recipe["batch"],
                             calib_preprocess=recipe["preprocess"])
        build_engine(call["model"], folder / "model.engine", config, log=lambda *a, **k: None)


class CalibrationCampaign:
    name = "calibration"

    def __init__(self, wall_s: float = 10.0):
        self.sup = Supervisor(wall_s=wall_s)
        self.work = Path(tempfile.mkdtemp(prefix="greenrt-fuzz-calib-"))
        self.n = 0
        self.valid_cache = {}
        for base in BASE_NAMES:  # warm, in this process; and a valid cache per base to tamper with
            folder = self.work / f"warm-{base}"
            folder.mkdir()
            recipe = {"base": base, "kind": "npz", "files": [{"arrays": [
                {"name": "model", "dtype": "model", "samples": 3, "shape": "fit", "values": "normal"}],
                "mutate": None}], "images": [], "preprocess": None, "callable": "", "method": "percentile",
                "percentile": 99.99, "batch": 2, "cache": "fresh", "build": True}
            call = materialize(recipe, folder, {})
            target(folder, recipe, call)
            self.valid_cache[base] = json.loads(call["cache"].read_text())
            images = {**recipe, "kind": "images", "images": ["png", "jpg"], "preprocess": "resize=8,crop=8",
                      "cache": None, "build": False}
            img_folder = self.work / f"warm-img-{base}"
            img_folder.mkdir()
            try:
                target(img_folder, images, materialize(images, img_folder, {}))
            except Exception:  # noqa: BLE001  (an image folder for a non-image model: the error path warms too)
                pass
        self.sup.rebase()

    def run(self, case: Case) -> Outcome:
        self.n += 1
        folder = self.work / f"case{self.n}"
        folder.mkdir()
        try:
            try:
                call = materialize(case.recipe, folder, self.valid_cache)
            except (ValueError, TypeError, OverflowError, OSError, ArithmeticError, LookupError) as exc:
                return Outcome(UNBUILDABLE, type(exc).__name__, str(exc))
            return self.sup.run(target, folder, case.recipe, call, folder=folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def cases(self, seed: int, n: int) -> list[Case]:
        return [Case(r["kind"], {k: listify(v) for k, v in r.items()}, r["base"])
                for r in draw_recipes(data_strategy(), n, seed)]


class _DictCampaign(Campaign):
    """Minimizes a calibration recipe by dropping its npz arrays, one at a time (the rest of it is one choice
    each)."""

    def record(self, case: Case, outcome: Outcome) -> None:
        super().record(case, outcome) if not outcome.finding or outcome.signature in self.findings else \
            self._record_finding(case, outcome)

    def _record_finding(self, case: Case, outcome: Outcome) -> None:
        arrays = [(i, j) for i, f in enumerate(case.recipe["files"]) for j in range(len(f["arrays"]))]
        replay = self.replay

        def with_arrays(kept):
            files = [{**f, "arrays": [a for j, a in enumerate(f["arrays"]) if [i, j] in kept or (i, j) in kept]}
                     for i, f in enumerate(case.recipe["files"])]
            return Case(case.family, {**case.recipe, "files": files}, case.base)

        self.replay = lambda c: replay(with_arrays(c.recipe))
        try:
            super().record(Case(case.family, [list(a) for a in arrays], case.base), outcome)
        finally:
            self.replay = replay
        found = self.findings[outcome.signature]
        found["recipe"] = with_arrays([tuple(a) for a in found["recipe"]]).recipe


NOTES = ("Each case forked from a warm process (greenrt, torch, onnx imported), 10 s wall and 2 GiB (address space "
         "and resident memory, on top of the warm process) per case, torch on 1 thread. A case: model_input_names, "
         "open_calibration_data and calibrate (a fresh or tampered calibration cache in some), and an INT8 build "
         "(cpu, opt-level 0) in about one case of eight, over hypothesis-drawn calibration data. Findings carry the "
         "minimized recipe (bench/fuzz/fuzz_calibration.py replays it).")


def main(argv=None) -> int:
    return campaign_main("calibration", __doc__, CalibrationCampaign, NOTES, argv, campaign_class=_DictCampaign)


if __name__ == "__main__":
    sys.exit(main())
