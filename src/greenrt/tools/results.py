"""One results format for every measurement greenrt publishes: the files under bench/results/ and what
`greenrt bench` writes.

    {"format": "greenrt-results/1",
     "metadata": {"device": "NVIDIA H100 80GB HBM3", "driver": "580.159.04",
                  "versions": {"greenrt": "0.1.0", "torch": "2.11.0+cu130", ...},
                  "date": "2026-11-24T07:03:09+00:00", "command": "python bench/resnet50_engine.py ...",
                  "notes": "...", ...free fields (host, weights, ...)},
     "records": [{"model": "resnet50", "runner": "greenrt engine fp16", "precision": "fp16", "batch": 256,
                  "device": "cuda", "items_per_s": 26293.8, "latency_ms_p50": null, ...}, ...]}

A record is one (model, runner, precision, batch) of one run. Every record carries the identity keys
(IDENTITY_FIELDS). A record of a timed run carries every key of MEASUREMENT_FIELDS (speed, energy, memory), null
where that figure was not measured, never a guess; a record where none of them applies (a conformance case, a
node count, an accuracy check) carries none of them. Accuracy figures sit next to the speed figures they qualify
(keys starting with one of ACCURACY_PREFIXES), and every reduced-precision record has at least one (null when it
was not measured, so the gap shows). Ratios between runners are stored only as RATIO_FIELDS, which name the other
record by runner; the validator recomputes each from the two records of the same file, so a ratio can never
come from another run. Any other key is free (a number, a string, a list, ...).

    metadata = collect_metadata("python bench/x.py --out r.json", device="cuda")
    write_results("r.json", metadata, [make_record("resnet50", "greenrt engine fp16", "fp16", 1, "cuda",
                                                   latency_ms_p50=0.47, max_rel_err_vs_fp32=8.7e-4)])
    data = load_results("r.json")          # raises ResultsFormatError naming the file, record and field
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import json
import math
import platform
import sys
from pathlib import Path

from ..errors import GreenrtError

FORMAT = "greenrt-results/1"

# metadata keys every file carries (value types; None = may be null)
METADATA_FIELDS: dict[str, tuple] = {
    "device": (str, None),      # device name: "NVIDIA H100 80GB HBM3", a CPU's model name; null if none applies
    "driver": (str, None),      # GPU driver (NVML); null on CPU or where it was not recorded
    "versions": (dict,),        # package -> version string, what applies (greenrt, torch, triton, cuda, ...)
    "date": (str,),             # ISO 8601 date or date-time of the run
    "command": (str,),          # the exact command that produced the file
    "notes": (str,),            # how to read it; where recovered metadata came from
}

# record keys, in the order files are written; (types, None = may be null)
_NUMBER = (int, float)
IDENTITY_FIELDS: dict[str, tuple] = {  # every record
    "model": (str, None),
    "runner": (str,),
    "precision": (str, None),
    "batch": (int, None),
    "device": (str, None),      # where the runner ran: "cuda", "cpu" (the device's name is in metadata)
}
MEASUREMENT_FIELDS: dict[str, tuple] = {  # all of them or none: a timed run says which figures it did not measure
    "items_per_s": (*_NUMBER, None),
    "latency_ms_p50": (*_NUMBER, None),
    "latency_ms_p99": (*_NUMBER, None),
    "joules_per_item": (*_NUMBER, None),
    "watts": (*_NUMBER, None),
    "peak_mem_bytes": (int, None),
}
RECORD_FIELDS = IDENTITY_FIELDS | MEASUREMENT_FIELDS
PRECISIONS = ("fp64", "fp32", "tf32", "fp16", "bf16", "fp8", "int8", "int4")
REDUCED_PRECISIONS = ("tf32", "fp16", "bf16", "fp8", "int8", "int4")
# accuracy fields: any key starting with one of these, a number or null, e.g. max_rel_err_vs_fp32,
# top1_agreement_vs_fp32, same_call_vs_onnxruntime_held_out
ACCURACY_PREFIXES = ("max_rel_err", "max_abs_err", "mean_rel_err", "top1_agreement", "same_call", "cosine",
                     "kl_divergence")


def _median(values):
    ordered = sorted(values)
    n = len(ordered)
    return ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2


def _round_ratio(self: dict, other: dict):
    a, b = self.get("rounds_ms"), other.get("rounds_ms")
    if not isinstance(a, list) or not isinstance(b, list) or len(a) != len(b) or not a:
        return None
    return _median([x / y for x, y in zip(a, b)])


# derived ratios: field -> (what it is, how it is computed from this record and the other record)
RATIO_FIELDS = {
    "latency_speedup_vs": ("other's latency_ms_p50 / this latency_ms_p50",
                           lambda s, o: _div(o.get("latency_ms_p50"), s.get("latency_ms_p50"))),
    "throughput_ratio_vs": ("this items_per_s / other's items_per_s",
                            lambda s, o: _div(s.get("items_per_s"), o.get("items_per_s"))),
    "round_latency_ratio_vs": ("median over rounds of this rounds_ms[i] / other's rounds_ms[i] (same process)",
                               _round_ratio),
}


def _div(a, b):
    return a / b if isinstance(a, _NUMBER) and isinstance(b, _NUMBER) and b else None


class ResultsFormatError(GreenrtError, ValueError):
    """A results file does not follow greenrt-results/1; the message names the file, the record and the field."""


# -- reading and checking ---------------------------------------------------------------------------------------
def _type_names(types: tuple) -> str:
    names = {str: "a string", int: "an integer", float: "a number", dict: "an object", None: "null"}
    if int in types and float in types:
        types = tuple(t for t in types if t is not int)
    return " or ".join(names[t] for t in types)


def _check_type(value, types: tuple, where: str, source: str) -> None:
    if value is None:
        if None in types:
            return
    elif isinstance(value, bool):  # JSON true/false are not numbers
        pass
    elif isinstance(value, tuple(t for t in types if t is not None)):
        if isinstance(value, float) and not math.isfinite(value):
            raise ResultsFormatError(f"{source}: {where}: {value!r} is not a finite number (use null)")
        return
    raise ResultsFormatError(f"{source}: {where}: expected {_type_names(types)}, got {value!r}")


def _record_key(rec: dict) -> tuple:
    return rec.get("model"), rec.get("runner"), rec.get("precision"), rec.get("batch")


def find_record(records: list[dict], runner: str, model=..., batch=..., precision=...) -> dict | None:
    """The one record with this runner (and model, batch, precision where given); None if there is none."""
    found = [r for r in records if r.get("runner") == runner
             and (model is ... or r.get("model") == model)
             and (batch is ... or r.get("batch") == batch)
             and (precision is ... or r.get("precision") == precision)]
    if len(found) > 1:
        raise ResultsFormatError(f"{len(found)} records match runner {runner!r}, model {model!r}, batch {batch!r}")
    return found[0] if found else None


def validate_results(data, source: str = "<results>") -> dict:
    """Check ``data`` against greenrt-results/1 and return it; ResultsFormatError names what is wrong and where."""
    if not isinstance(data, dict):
        raise ResultsFormatError(f"{source}: expected a JSON object with format, metadata and records, "
                                 f"got {type(data).__name__}")
    if data.get("format") != FORMAT:
        raise ResultsFormatError(f"{source}: format: expected {FORMAT!r}, got {data.get('format')!r}")
    missing = {"metadata", "records"} - set(data)
    if missing:
        raise ResultsFormatError(f"{source}: missing {', '.join(sorted(missing))}")
    extra = set(data) - {"format", "metadata", "records"}
    if extra:
        raise ResultsFormatError(f"{source}: unknown top-level keys {sorted(extra)} (free fields go in metadata "
                                 f"or in records)")
    meta = data["metadata"]
    _check_type(meta, (dict,), "metadata", source)
    for key, types in METADATA_FIELDS.items():
        if key not in meta:
            hint = " (null where it does not apply)" if None in types else ""
            raise ResultsFormatError(f"{source}: metadata.{key}: missing{hint}")
        _check_type(meta[key], types, f"metadata.{key}", source)
    for name, version in meta["versions"].items():
        _check_type(version, (str,), f"metadata.versions.{name}", source)
    if not meta["command"].strip():
        raise ResultsFormatError(f"{source}: metadata.command: empty (the command that produced the file)")
    try:
        _dt.datetime.fromisoformat(meta["date"])
    except ValueError:
        raise ResultsFormatError(f"{source}: metadata.date: {meta['date']!r} is not an ISO 8601 date") from None

    records = data["records"]
    if not isinstance(records, list) or not records:
        raise ResultsFormatError(f"{source}: records: expected a non-empty list of records")
    seen: dict[tuple, int] = {}
    for i, rec in enumerate(records):
        where = f"records[{i}]"
        _check_type(rec, (dict,), where, source)
        for key, types in IDENTITY_FIELDS.items():
            if key not in rec:
                hint = " (null where it does not apply)" if None in types else ""
                raise ResultsFormatError(f"{source}: {where}.{key}: missing{hint}")
            _check_type(rec[key], types, f"{where}.{key}", source)
        present = [k for k in MEASUREMENT_FIELDS if k in rec]
        if present and len(present) < len(MEASUREMENT_FIELDS):
            missing = next(k for k in MEASUREMENT_FIELDS if k not in rec)
            raise ResultsFormatError(f"{source}: {where}.{missing}: missing (a record with {present[0]} carries "
                                     f"every one of {', '.join(MEASUREMENT_FIELDS)}; null where not measured)")
        for key in present:
            _check_type(rec[key], MEASUREMENT_FIELDS[key], f"{where}.{key}", source)
        if rec["precision"] is not None and rec["precision"] not in PRECISIONS:
            raise ResultsFormatError(f"{source}: {where}.precision: {rec['precision']!r} is not one of "
                                     f"{', '.join(PRECISIONS)} (or null)")
        if rec["batch"] is not None and rec["batch"] < 1:
            raise ResultsFormatError(f"{source}: {where}.batch: {rec['batch']} (expected >= 1 or null)")
        accuracy = [k for k in rec if k.startswith(ACCURACY_PREFIXES)]
        for key in accuracy:
            _check_type(rec[key], (*_NUMBER, None), f"{where}.{key}", source)
        if rec["precision"] in REDUCED_PRECISIONS and not accuracy:
            raise ResultsFormatError(
                f"{source}: {where}: a {rec['precision']} record needs an accuracy field next to its figures "
                f"({', '.join(p + '_...' for p in ACCURACY_PREFIXES)}; null if it was not measured)")
        key = _record_key(rec)
        if key in seen:
            raise ResultsFormatError(f"{source}: {where}: same model, runner, precision and batch as "
                                     f"records[{seen[key]}] ({key})")
        seen[key] = i
    for i, rec in enumerate(records):
        for field, (what, compute) in RATIO_FIELDS.items():
            if field not in rec:
                continue
            where = f"records[{i}].{field}"
            _check_type(rec[field], (dict,), where, source)
            for runner, value in rec[field].items():
                _check_type(value, _NUMBER, f"{where}[{runner!r}]", source)
                other = find_record(records, runner, model=rec["model"], batch=rec["batch"])
                if other is None:
                    raise ResultsFormatError(f"{source}: {where}[{runner!r}]: no record of runner {runner!r} for "
                                             f"model {rec['model']!r}, batch {rec['batch']!r} in this file: a ratio "
                                             f"must come from records of the same run")
                expected = compute(rec, other)
                if expected is None or not math.isclose(value, expected, rel_tol=1e-9):
                    raise ResultsFormatError(f"{source}: {where}[{runner!r}]: {value!r} is not {what} "
                                             f"({expected!r} from the records)")
    return data


def load_results(path) -> dict:
    """Read and validate one results file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ResultsFormatError(f"{path}: not JSON ({exc})") from None
    return validate_results(data, str(path))


# -- writing ----------------------------------------------------------------------------------------------------
def make_record(model, runner: str, precision, batch, device, timed: bool = True, **fields) -> dict:
    """A record. ``timed``: a speed/energy/memory run, so every measurement key is present and what is not passed
    is null (not measured); ``timed=False`` for records none of them applies to (accuracy checks, counts)."""
    rec = {"model": model, "runner": runner, "precision": precision, "batch": batch, "device": device}
    if timed:
        rec |= {k: None for k in MEASUREMENT_FIELDS}
    return rec | fields


def _ordered_record(rec: dict) -> dict:
    """Deterministic key order: the fixed fields, then accuracy fields, ratios, the rest, each group sorted."""
    fixed = [k for k in RECORD_FIELDS if k in rec]
    accuracy = sorted(k for k in rec if k not in RECORD_FIELDS and k.startswith(ACCURACY_PREFIXES))
    ratios = [k for k in RATIO_FIELDS if k in rec]
    rest = sorted(set(rec) - set(fixed) - set(accuracy) - set(ratios))
    out = {k: rec[k] for k in fixed + accuracy + ratios + rest}
    for k in ratios:
        out[k] = dict(sorted(out[k].items()))
    return out


def _ordered_metadata(meta: dict) -> dict:
    fixed = [k for k in METADATA_FIELDS if k in meta]
    out = {k: meta[k] for k in fixed + sorted(set(meta) - set(fixed))}
    out["versions"] = dict(sorted(meta.get("versions", {}).items()))
    return out


def dumps_results(metadata: dict, records: list[dict], indent: int = 1, one_line_records: bool = False,
                  source: str = "<results>") -> str:
    """The text write_results writes. ``one_line_records`` puts each record on one line (for files of thousands of
    small records, such as the conformance cases: still one diff line per record)."""
    data = {"format": FORMAT, "metadata": _ordered_metadata(metadata), "records": [_ordered_record(r) for r in records]}
    validate_results(data, source)
    dump = dict(ensure_ascii=False, allow_nan=False)
    if not one_line_records:
        return json.dumps(data, indent=indent, **dump) + "\n"
    pad = " " * indent
    head = json.dumps({k: data[k] for k in ("format", "metadata")}, indent=indent, **dump)
    lines = [pad * 2 + json.dumps(r, **dump) for r in data["records"]]
    return head[:-2] + f',\n{pad}"records": [\n' + ",\n".join(lines) + f"\n{pad}]\n}}\n"


def write_results(path, metadata: dict, records: list[dict], indent: int = 1, one_line_records: bool = False) -> Path:
    """Validate and write one results file (fixed key order, ``indent``, trailing newline); returns the path."""
    path = Path(path)
    text = dumps_results(metadata, records, indent, one_line_records, str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# -- metadata from the running process ---------------------------------------------------------------------------
# package -> (module name, distribution name); the loaded module's version wins over the installed distribution's
_PACKAGES = {
    "torch": ("torch", "torch"),
    "triton": ("triton", "triton"),
    "onnx": ("onnx", "onnx"),
    "onnx_ir": ("onnx_ir", "onnx-ir"),
    "onnxruntime": ("onnxruntime", "onnxruntime"),
    "onnxslim": ("onnxslim", "onnxslim"),
    "numpy": ("numpy", "numpy"),
}


def _package_version(module: str, dist: str) -> str | None:
    loaded = sys.modules.get(module)
    version = getattr(loaded, "__version__", None) if loaded is not None else None
    if version:
        return str(version)
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cudnn_version(raw: int | None) -> str | None:
    if not raw:
        return None
    if raw >= 90000:  # cuDNN 9: MMmmpp
        return f"{raw // 10000}.{raw % 10000 // 100}.{raw % 100}"
    return f"{raw // 1000}.{raw % 1000 // 100}.{raw % 100}"  # cuDNN 8: Mmpp


def nvml_driver() -> str | None:
    """The NVIDIA driver version from NVML; None without a GPU, NVML or nvidia-ml-py."""
    try:
        import pynvml

        pynvml.nvmlInit()
        version = pynvml.nvmlSystemGetDriverVersion()
        return version.decode() if isinstance(version, bytes) else str(version)
    except Exception:  # no nvidia-ml-py, no driver library, no GPU
        return None


def command_line(argv: list[str] | None = None) -> str:
    """The command that is running, as a user would type it: 'python bench/x.py --out r.json'."""
    import shlex

    return "python " + shlex.join(sys.argv if argv is None else argv)


def collect_metadata(command: str, device: str | None = "cpu", notes: str = "", **extra) -> dict:
    """Metadata of a run in this process: device name, driver, versions of what is loaded or installed, date,
    the command, host (CPU, threads). Anything absent (no torch, no GPU, no NVML) is left out or null."""
    from ..host import cpu_name
    from ..version import __version__

    versions = {"greenrt": __version__, "python": platform.python_version()}
    for name, (module, dist) in _PACKAGES.items():
        version = _package_version(module, dist)
        if version:
            versions[name] = version
    device_name, driver = None, None
    host = {"machine": platform.machine(), "system": platform.system(), "cpu": cpu_name()}
    try:
        import torch

        host["torch_threads"] = torch.get_num_threads()
        if device is not None and str(device).startswith("cuda") and torch.cuda.is_available():
            index = torch.device(device).index or 0
            device_name = torch.cuda.get_device_name(index)
            if torch.version.cuda:
                versions["cuda"] = torch.version.cuda
            cudnn = _cudnn_version(torch.backends.cudnn.version())
            if cudnn:
                versions["cudnn"] = cudnn
            driver = nvml_driver()
    except ImportError:
        pass
    if device is not None and not str(device).startswith("cuda"):
        device_name = host["cpu"]
    meta = {
        "device": device_name,
        "driver": driver,
        "versions": versions,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "notes": notes,
        "host": host,
    }
    return meta | extra
