"""Fuzz campaign (b): engine files. Each case tampers with an engine built from one of the tiny base models
(bench/fuzz/models.py) and loads it as a user would: ``greenrt.InferenceSession(model.engine)`` and a run on valid
inputs (``inspect_engine_header`` too).

    python bench/fuzz/fuzz_engine.py --seed 0 --cases 2000 --out bench/results/fuzz_engine.json

Families:
- ``header``: hypothesis edits to the JSON header, any field at any depth (versions, device, config, profiles, the
  plan's inputs, outputs, steps, attributes, specs, constants, opsets, subplans): values of another type, numbers
  0 / negative / huge / NaN, strings where numbers were, keys removed or added; both checksums then recomputed (a
  deliberate tamper), or left stale in a few cases;
- ``payload``: the safetensors payload's own header (dtype, shape, data_offsets of a weight) and its bytes, with
  ``weights_sha256`` recomputed;
- ``bytes``: byte mutations of the whole file (magic, header length, header, payload) and truncation, checksums as
  they fall.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
import shutil
import struct
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.fuzz import models  # noqa: E402
from bench.fuzz.fuzz_onnx import apply_bytes, byte_recipe  # noqa: E402
from bench.fuzz.supervisor import (ROOT, UNBUILDABLE, Campaign, campaign_args, Case, draw_recipes,  # noqa: E402
                                   campaign_main, limit_warm_process, listify, Outcome, run_cases, Supervisor)

import numpy as np  # noqa: E402

import greenrt  # noqa: E402
from greenrt.build import BuildConfig, build_engine  # noqa: E402
from greenrt.plan.engine_file import MAGIC, encode_header, inspect_engine_header  # noqa: E402
from greenrt.plan.profiles import parse_profile  # noqa: E402

# base engines: (model, profiles); batch sizes their feeds use
ENGINES = {"mlp": ("mlp", ["x:1x8/2x8/4x8"]), "conv": ("conv", []), "control": ("control", []),
           "gather": ("gather", ["ids:1x5/2x5/4x5"])}
BASE_NAMES = sorted(ENGINES)
STRINGS = ["", "cuda", "cpu", "fp16", "int8", "inductor", "Relu", "../../etc/passwd", "/etc/passwd", "x", "N",
           "NoSuchOp", "greenrt", "0.0.0", "2.14.1", "\u00e9\u0000", "a" * 200]


def build_bases(folder: Path) -> dict[str, bytes]:
    out = {}
    for name, (model, profiles) in ENGINES.items():
        onnx_path, engine = folder / f"{name}.onnx", folder / f"{name}.engine"
        models.save(models.BASES[model](), onnx_path)
        config = BuildConfig(device="cpu", opt_level=0, profiles=[parse_profile(p) for p in profiles])
        build_engine(onnx_path, engine, config, log=lambda *a, **k: None)
        out[name] = engine.read_bytes()
    return out


def split(data: bytes) -> tuple[dict, bytes]:
    (n,) = struct.unpack("<Q", data[8:16])
    return json.loads(data[16:16 + n]), data[16 + n:]


def join(header: dict, payload: bytes, fix_weights: bool = True, fix_header: bool = True) -> bytes:
    header = dict(header)
    if fix_weights:
        header["weights_sha256"] = hashlib.sha256(payload).hexdigest()
    raw = encode_header(header) if fix_header else json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    return MAGIC + struct.pack("<Q", len(raw)) + raw + payload


def json_paths(value, prefix=()) -> list[tuple]:
    """Every path into ``value`` (dict keys and list indices), the root's children first."""
    out = []
    if isinstance(value, dict):
        for k in sorted(value):
            out.append(prefix + (k,))
            out += json_paths(value[k], prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.append(prefix + (i,))
            out += json_paths(v, prefix + (i,))
    return out


def _parent(doc, path):
    for key in path[:-1]:
        doc = doc[key]
    return doc


def edit_json(doc, op: list) -> None:
    """One edit at a path: ["set", path, value], ["scale", path, factor], ["drop", path], ["add", path, key, value]."""
    kind, path = op[0], op[1]
    try:
        parent = _parent(doc, path)
        last = path[-1]
        if kind == "set":
            parent[last] = op[2]
        elif kind == "scale" and isinstance(parent[last], (int, float)) and not isinstance(parent[last], bool):
            parent[last] = type(parent[last])(parent[last] * op[2]) if abs(op[2]) < 1e300 else op[2]
        elif kind == "drop":
            del parent[last]
        elif kind == "add" and isinstance(parent[last], dict):
            parent[last][op[2]] = op[3]
        elif kind == "add" and isinstance(parent[last], list):
            parent[last].append(op[3])
    except (KeyError, IndexError, TypeError, OverflowError, ValueError):
        pass  # an earlier edit took the path away: this one does nothing


def json_value():
    from hypothesis import strategies as st

    scalars = st.one_of(
        st.none(), st.booleans(), st.sampled_from([0, 1, -1, 2, 3, 7, 2**31, 2**53, 2**63, -2**63, 10**30]),
        st.integers(), st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(STRINGS), st.text(max_size=6))
    return st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(st.sampled_from(STRINGS), inner,
                                                                         max_size=3)), max_leaves=6)


def header_strategy(bases: dict[str, bytes]):
    from hypothesis import strategies as st

    paths = {name: json_paths(split(data)[0]) for name, data in bases.items()}

    @st.composite
    def case(draw):
        base = draw(st.sampled_from(BASE_NAMES))
        ps = paths[base]
        path = st.sampled_from(ps).map(list)
        edit = st.one_of(
            st.tuples(st.just("set"), path, json_value()),
            st.tuples(st.just("scale"), path, st.sampled_from([-1, 0, 2, 1000, 2**40, 0.5, float("nan")])),
            st.tuples(st.just("drop"), path),
            st.tuples(st.just("add"), path, st.sampled_from(STRINGS), json_value()))
        edits = draw(st.lists(edit, min_size=1, max_size=4))
        stale = draw(st.sampled_from([None] * 8 + ["stale_header", "stale_weights"]))
        return base, edits + ([[stale]] if stale else [])

    return case()


def payload_strategy(bases: dict[str, bytes]):
    from hypothesis import strategies as st

    keys = {name: sorted(k for k in _st_header(split(data)[1])[0] if k != "__metadata__")
            for name, data in bases.items()}

    @st.composite
    def case(draw):
        base = draw(st.sampled_from(BASE_NAMES))
        key = st.sampled_from(keys[base])
        edit = st.one_of(
            st.tuples(st.just("st_set"), key, st.sampled_from(["dtype", "shape", "data_offsets"]), json_value()),
            st.tuples(st.just("st_set"), key, st.just("dtype"), st.sampled_from(
                ["F32", "F16", "BF16", "F64", "I64", "I8", "U8", "BOOL", "F8_E4M3", "C64", "XYZ", ""])),
            st.tuples(st.just("st_set"), key, st.just("shape"), st.lists(st.sampled_from(
                [0, 1, 2, 3, 4, 16, -1, 2**31, 2**40]), max_size=4)),
            st.tuples(st.just("st_set"), key, st.just("data_offsets"), st.lists(st.sampled_from(
                [0, 4, 16, 64, 255, -4, 2**40]), min_size=0, max_size=3)),
            st.tuples(st.just("st_drop"), key),
            st.tuples(st.just("st_rename"), key, st.sampled_from(STRINGS)),
            st.tuples(st.just("st_flip"), st.integers(0, 4096), st.integers(0, 7)))
        return base, draw(st.lists(edit, min_size=1, max_size=3))

    return case()


def _st_header(payload: bytes) -> tuple[dict, bytes]:
    (n,) = struct.unpack("<Q", payload[:8])
    return json.loads(payload[8:8 + n]), payload[8 + n:]


def edit_payload(payload: bytes, ops: list) -> bytes:
    header, data = _st_header(payload)
    flips = []
    for op in ops:
        if op[0] == "st_set" and op[1] in header:
            header[op[1]][op[2]] = op[3]
        elif op[0] == "st_drop":
            header.pop(op[1], None)
        elif op[0] == "st_rename" and op[1] in header:
            header[op[2]] = header.pop(op[1])
        elif op[0] == "st_flip":
            flips.append(["flip", op[1], op[2]])
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + apply_bytes(data, flips) if flips else \
        struct.pack("<Q", len(raw)) + raw + data


class EngineCampaign:
    name = "engine"

    def __init__(self, wall_s: float = 10.0):
        self.sup = Supervisor(wall_s=wall_s)
        self.work = Path(tempfile.mkdtemp(prefix="greenrt-fuzz-engine-"))
        self.bases = build_bases(self.work)
        self.n = 0
        for base in BASE_NAMES:  # warm, in this process
            folder = self.work / f"warm-{base}"
            folder.mkdir()
            target(folder, self.materialize(Case("header", [], base), folder), base)
        self.sup.rebase()

    def materialize(self, case: Case, folder: Path) -> Path:
        path = folder / "model.engine"
        data = self.bases[case.base]
        if case.family == "bytes":
            path.write_bytes(apply_bytes(data, case.recipe))
            return path
        header, payload = split(data)
        header = copy.deepcopy(header)
        flags = {op[0] for op in case.recipe if len(op) == 1}
        if case.family == "payload":
            payload = edit_payload(payload, case.recipe)
        else:
            for op in case.recipe:
                if len(op) > 1:
                    edit_json(header, op)
        path.write_bytes(join(header, payload, fix_weights="stale_weights" not in flags,
                              fix_header="stale_header" not in flags))
        return path

    def run(self, case: Case) -> Outcome:
        self.n += 1
        folder = self.work / f"case{self.n}"
        folder.mkdir()
        try:
            try:
                path = self.materialize(case, folder)
            except (ValueError, TypeError, OverflowError, OSError) as exc:  # e.g. JSON cannot hold the value
                return Outcome(UNBUILDABLE, type(exc).__name__, str(exc))
            return self.sup.run(target, folder, path, case.base, folder=folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def cases(self, seed: int, n: int) -> list[Case]:
        rng = random.Random(seed)
        n_header, n_payload = n // 2, n // 4
        header = [Case("header", listify(ops), b) for b, ops in draw_recipes(header_strategy(self.bases), n_header,
                                                                              seed)]
        payload = [Case("payload", listify(ops), b) for b, ops in draw_recipes(payload_strategy(self.bases),
                                                                                n_payload, seed + 1)]
        byte_cases = []
        while len(header) + len(payload) + len(byte_cases) < n:
            base = rng.choice(BASE_NAMES)
            byte_cases.append(Case("bytes", byte_recipe(rng, len(self.bases[base])), base))
        out = header + payload + byte_cases
        random.Random(seed).shuffle(out)
        return out


def target(folder: Path, path: Path, base: str) -> None:
    """What a user does with an engine file: inspect it, load it, run it on valid inputs."""
    inspect_engine_header(path)
    session = greenrt.InferenceSession(path)
    rng = np.random.default_rng(0)
    for batch in (1, 2):
        session.run(None, models.feeds_for(ENGINES[base][0], rng, batch=batch if base != "conv" else 1))


NOTES = ("Each case forked from a warm process (greenrt, torch imported), 10 s wall and 2 GiB (address space and "
         "resident memory, on top of the warm process) per case, torch on 1 thread. A case: inspect_engine_header, "
         "InferenceSession and two runs on valid inputs of the tampered engine. Families: header (hypothesis-drawn "
         "JSON edits, checksums recomputed except in a few cases), payload (safetensors header edits and byte flips, "
         "weights checksum recomputed), bytes (seeded random.Random byte mutations and truncation of the whole "
         "file). Findings carry the minimized recipe (bench/fuzz/fuzz_engine.py replays it).")


def main(argv=None) -> int:
    return campaign_main("engine", __doc__, EngineCampaign, NOTES, argv)


if __name__ == "__main__":
    sys.exit(main())
