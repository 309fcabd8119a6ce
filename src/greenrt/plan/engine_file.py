"""The one-file engine format: a plan, its weights and how they were built, checked on every load.

Layout::

    b"GRTENGN1"                      8 bytes of magic
    N                                8 bytes, little-endian unsigned: the header length
    header                           N bytes of UTF-8 JSON (sorted keys, no whitespace)
    weights                          the rest: a safetensors payload, keys = the plan's weight keys

The header holds ``format_version``, ``versions`` (greenrt, torch, triton, cuda), ``device`` (type, name,
capability), the build ``config``, the optimization ``profiles``, the ``plan``, the build ``report``,
``weights_sha256`` (of the payload) and ``header_sha256`` (of the header serialized with that field set to "").
Nothing time- or host-dependent beyond the device goes in, so the same inputs give a byte-identical file.

Loading never executes anything from the file: the header is JSON and the weights are read with
``safetensors.torch.load`` (no pickle, no ``torch.load``).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import struct
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import GreenrtError, ModelLoadError
from ..version import __version__
from .plan import Plan, PlanFormatError

MAGIC = b"GRTENGN1"
FORMAT_VERSION = 1
_PREFIX = len(MAGIC) + 8  # magic + header length


class EngineFileError(ModelLoadError):
    """The engine file is missing, not an engine, truncated, corrupted, or of another format version."""


class EngineMismatchError(GreenrtError):
    """The engine was built with another greenrt/torch version or for another device than this machine has."""


class EngineMismatchWarning(UserWarning):
    """Issued instead of EngineMismatchError when an engine is loaded with ``allow_mismatch=True``."""


@dataclass
class EngineFile:
    header: dict
    plan: Plan
    weights: dict[str, torch.Tensor]
    path: Path


# ---------------------------------------------------------------------------------------------------------- header


def _json_default(obj: Any):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"engine header: {type(obj).__name__} is not JSON-serializable: {obj!r}")


def _dumps(header: dict) -> str:
    return json.dumps(header, sort_keys=True, separators=(",", ":"), allow_nan=True, default=_json_default)


def _normalize(header: dict) -> dict:
    """Through JSON and back, so that serializing it is a fixed point (tuples -> lists, non-str keys -> str)."""
    return json.loads(json.dumps(header, allow_nan=True, default=_json_default))


def header_checksum(header: dict) -> str:
    """sha256 of ``header`` serialized with ``header_sha256`` set to ""."""
    return hashlib.sha256(_dumps({**header, "header_sha256": ""}).encode("utf-8")).hexdigest()


def encode_header(header: dict) -> bytes:
    """The header bytes as written (with ``header_sha256`` filled in)."""
    header = {**header, "header_sha256": header_checksum(header)}
    return _dumps(header).encode("utf-8")


# ---------------------------------------------------------------------------------------------------- environment


def _major_minor(version: str | None) -> str:
    if not version:
        return "?"
    parts = version.split("+")[0].split(".")
    return ".".join(parts[:2])


@functools.lru_cache(maxsize=None)
def _triton_version() -> str | None:
    """triton's version, or None where it is not installed (read from its metadata: importing triton is slow)."""
    try:
        if importlib.util.find_spec("triton") is None:
            return None
    except (ImportError, ValueError):
        return None
    try:
        return importlib.metadata.version("triton")
    except importlib.metadata.PackageNotFoundError:  # e.g. shipped as pytorch-triton
        pass
    try:
        import triton  # noqa: PLC0415
    except Exception:  # broken without a GPU
        return None
    return getattr(triton, "__version__", None)


def current_versions() -> dict:
    """greenrt / torch / triton / cuda versions of this process (monkeypatched by tests)."""
    return {
        "greenrt": __version__,
        "torch": torch.__version__,
        "triton": _triton_version(),
        "cuda": torch.version.cuda,
    }


def current_device_info(device: str | torch.device) -> dict | None:
    """{"type", "name", "capability"} of ``device`` on this machine; None for a CUDA device torch cannot see."""
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            return None
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        return {
            "type": "cuda",
            "name": torch.cuda.get_device_name(index),
            "capability": list(torch.cuda.get_device_capability(index)),
        }
    if dev.type == "cpu":
        return {"type": "cpu", "name": platform.processor() or "cpu", "capability": None}
    raise GreenrtError(f"device {str(device)!r} is not supported for engines; use 'cpu' or 'cuda'")


def _describe_device(info: dict | None) -> str:
    if info is None:
        return "CPU (no CUDA device)"
    if info.get("type") == "cuda":
        cap = info.get("capability")
        sm = f" (sm_{cap[0]}{cap[1]})" if isinstance(cap, (list, tuple)) and len(cap) == 2 else ""
        return f"{info.get('name') or 'an unknown CUDA device'}{sm}"
    return "CPU"


# -------------------------------------------------------------------------------------------------------- weights


def _to_cpu_tensor(key: str, value) -> torch.Tensor:
    from ..onnx.dtypes import numpy_to_torch

    if isinstance(value, torch.Tensor):
        tensor = value.detach()
    elif isinstance(value, np.ndarray):
        if value.dtype == object or value.dtype.kind in "US":
            raise GreenrtError(f"weight {key!r}: {value.dtype} arrays cannot be stored in an engine "
                               f"(string constants belong in the plan)")
        if not value.dtype.isnative:
            value = value.astype(value.dtype.newbyteorder("="))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # read-only arrays: we only read them
                tensor = numpy_to_torch(value)
        except TypeError:
            raise GreenrtError(f"weight {key!r}: numpy dtype {value.dtype} has no torch equivalent, so it "
                               f"cannot be stored in an engine") from None
    else:
        raise GreenrtError(f"weight {key!r}: expected a numpy array or torch tensor, got {type(value).__name__}")
    if tensor.dtype == torch.complex128:
        raise GreenrtError(f"weight {key!r}: complex128 cannot be stored in an engine (safetensors has no "
                           f"complex128)")
    return tensor.cpu().contiguous()


def encode_weights(weights: dict) -> bytes:
    """The safetensors payload for ``weights`` (deterministic for equal inputs)."""
    import safetensors.torch

    tensors: dict[str, torch.Tensor] = {}
    seen_storage: set[int] = set()
    bad_keys = [key for key in weights if not isinstance(key, str)]
    if bad_keys:
        raise GreenrtError(f"weight keys must be strings, got {bad_keys[0]!r}")
    for key in sorted(weights):
        tensor = _to_cpu_tensor(key, weights[key])
        ptr = tensor.untyped_storage().data_ptr()
        if tensor.numel() and ptr in seen_storage:
            tensor = tensor.clone()  # safetensors refuses tensors that share memory
        elif tensor.numel():
            seen_storage.add(ptr)
        tensors[key] = tensor
    try:
        return safetensors.torch.save(tensors)
    except Exception as exc:
        raise GreenrtError(f"could not serialize the engine's weights: {exc}") from None


# ---------------------------------------------------------------------------------------------------------- write


def write_engine(path: str | os.PathLike, plan: Plan, weights: dict, *, device: str, config: dict,
                 profiles: list, report: dict, device_info: dict | None = None, versions: dict | None = None) -> dict:
    """Write the engine file ``path`` atomically; returns its header (as read back by ``read_engine``).

    ``device_info`` and ``versions``: the target's, for an engine built on another machine than the one it is for
    (build/target.py); default: this machine's ``device`` and this process's versions."""
    info = device_info or current_device_info(device)
    if info is None:
        raise GreenrtError(f"cannot build a CUDA engine ({device!r}): torch sees no CUDA GPU")
    payload = encode_weights(weights)
    header = _normalize({
        "format_version": FORMAT_VERSION,
        "versions": versions or current_versions(),
        "device": info,
        "config": config,
        "profiles": profiles,
        "plan": plan.to_json(),
        "report": report,
        "weights_sha256": hashlib.sha256(payload).hexdigest(),
        "header_sha256": "",
    })
    header_bytes = encode_header(header)
    header["header_sha256"] = header_checksum(header)

    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise GreenrtError(f"cannot write the engine {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(MAGIC)
            f.write(struct.pack("<Q", len(header_bytes)))
            f.write(header_bytes)
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it 0600; give it the usual permissions
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return header


# ----------------------------------------------------------------------------------------------------------- read


def _rebuild_hint(header: dict) -> str:
    config = header.get("config") if isinstance(header.get("config"), dict) else {}
    command = config.get("build_command")
    model = config.get("model")
    if command:
        where = f" from {model}" if model else ""
        return f"rebuild it{where} on this machine: {command}"
    if model:
        return f"rebuild it from {model} on this machine with `greenrt build {model}`"
    return "rebuild it from its ONNX model on this machine with `greenrt build`"


def _read_header(f, path: Path, size: int) -> tuple[dict, int]:
    """(verified header, header length) from an open engine file of ``size`` bytes."""
    magic = f.read(len(MAGIC))
    if magic != MAGIC:
        raise EngineFileError(f"{path}: not a greenrt engine file (did you mean `greenrt run model.onnx`?)")
    raw_len = f.read(8)
    if len(raw_len) < 8:
        raise EngineFileError(f"{path}: truncated engine file ({size} bytes, ends inside the header length)")
    (n,) = struct.unpack("<Q", raw_len)
    if n > size - _PREFIX:
        raise EngineFileError(f"{path}: truncated engine file ({size} bytes; the header alone needs "
                              f"{_PREFIX + n}); rebuild it or copy it again")
    raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise EngineFileError(f"{path}: corrupted header (not valid JSON); rebuild the engine") from None
    if not isinstance(header, dict) or not isinstance(header.get("header_sha256"), str):
        raise EngineFileError(f"{path}: corrupted header (no checksum); rebuild the engine")
    if header_checksum(header) != header["header_sha256"]:
        version = header.get("format_version")
        if isinstance(version, int) and not isinstance(version, bool) and version != FORMAT_VERSION:
            # maybe a newer format that checksums differently: the version is the more useful thing to say
            raise EngineFileError(_version_message(path, header))
        raise EngineFileError(f"{path}: corrupted header (checksum mismatch); rebuild the engine")
    if header.get("format_version") != FORMAT_VERSION:
        raise EngineFileError(_version_message(path, header))
    missing = [k for k in ("versions", "device", "config", "profiles", "plan", "report", "weights_sha256")
               if k not in header]
    if missing:
        raise EngineFileError(f"{path}: malformed header (missing {', '.join(missing)}); rebuild the engine")
    problem = _header_problem(header)
    if problem:
        raise EngineFileError(f"{path}: malformed header ({problem}); rebuild the engine")
    return header, n


# the header's fields and the JSON types they hold (the plan is checked by Plan.from_json)
_HEADER_TYPES = {"versions": dict, "device": dict, "config": dict, "profiles": list, "plan": dict, "report": dict,
                 "weights_sha256": str}


def _header_problem(header: dict) -> str:
    """What is wrong with the header's fields outside the plan ('' if nothing): their types, the device, the
    profiles."""
    for key, kind in _HEADER_TYPES.items():
        if not isinstance(header[key], kind):
            return f"{key!r} is {type(header[key]).__name__}, expected {kind.__name__}"
    if not isinstance(header["device"].get("type"), str):
        return f"device.type is {header['device'].get('type')!r}, expected 'cpu' or 'cuda'"
    for key in ("greenrt", "torch"):
        if not isinstance(header["versions"].get(key), (str, type(None))):
            return f"versions.{key} is {header['versions'].get(key)!r}, expected a version string"
    from .profiles import ProfileFormatError, Profile

    for i, profile in enumerate(header["profiles"]):
        try:
            Profile.from_json(profile)
        except ProfileFormatError as exc:
            return f"profiles[{i}]: {exc}"
    return ""


def _version_message(path: Path, header: dict) -> str:
    return (f"{path}: engine format version {header.get('format_version')!r} is not supported; this greenrt reads "
            f"format version {FORMAT_VERSION}; {_rebuild_hint(header)}")


def inspect_engine_header(path: str | os.PathLike) -> dict:
    """The verified header of the engine ``path`` (the weights are neither read nor checked)."""
    path = Path(path)
    size = _check_exists(path)
    with open(path, "rb") as f:
        header, _ = _read_header(f, path, size)
    return header


def _check_exists(path: Path) -> int:
    if not path.exists():
        raise EngineFileError(f"{path}: no such engine file")
    if not path.is_file():
        raise EngineFileError(f"{path}: not a file")
    return path.stat().st_size


def mismatch_message(path: Path, header: dict, device: str | None) -> str | None:
    """Why the engine cannot run on ``device`` here (None if it can)."""
    built_versions = header.get("versions") or {}
    built_device = header.get("device") or {}
    try:
        target = torch.device(device if device is not None else built_device.get("type", "cpu"))
    except (RuntimeError, TypeError):
        raise GreenrtError(f"device {device!r} is not supported; use 'cpu' or 'cuda'") from None
    here_versions = current_versions()
    here_device = current_device_info(target)

    reasons = []
    if built_versions.get("greenrt") != here_versions["greenrt"]:
        reasons.append("greenrt version")
    if _major_minor(built_versions.get("torch")) != _major_minor(here_versions["torch"]):
        reasons.append("torch version")
    if here_device is None:
        reasons.append("no CUDA device")
    elif built_device.get("type") != target.type:
        reasons.append(f"built for {built_device.get('type')}, asked to run on {target.type}")
    elif target.type == "cuda":
        if built_device.get("name") != here_device["name"]:
            reasons.append("GPU model")
        if list(built_device.get("capability") or []) != list(here_device["capability"] or []):
            reasons.append("compute capability")
    if not reasons:
        return None
    built = (f"torch {_major_minor(built_versions.get('torch'))} on {_describe_device(built_device)}, "
             f"greenrt {built_versions.get('greenrt')}")
    here = (f"torch {_major_minor(here_versions['torch'])} on {_describe_device(here_device)}, "
            f"greenrt {here_versions['greenrt']}")
    return (f"{path}: engine does not match this machine ({'; '.join(reasons)}): built with {built}; this machine "
            f"has {here}. An engine is specific to its greenrt/torch versions and GPU: {_rebuild_hint(header)} "
            f"(or pass --allow-mismatch / allow_mismatch=True to load it anyway)")


def read_engine(path: str | os.PathLike, *, device: str | None = None, allow_mismatch: bool = False) -> EngineFile:
    """Load and verify the engine ``path`` for running on ``device`` (default: the device it was built for).

    Raises EngineFileError if the file is not an intact engine of this format version, EngineMismatchError if it
    was built with other versions or for another device (a warning instead with ``allow_mismatch=True``).
    """
    import safetensors.torch

    path = Path(path)
    size = _check_exists(path)
    with open(path, "rb") as f:
        header, n = _read_header(f, path, size)
        payload = f.read()
    if hashlib.sha256(payload).hexdigest() != header["weights_sha256"]:
        raise EngineFileError(f"{path}: corrupted or truncated weights (checksum mismatch); rebuild the engine "
                              f"or copy it again")

    message = mismatch_message(path, header, device)
    if message is not None:
        if not allow_mismatch:
            raise EngineMismatchError(message)
        warnings.warn(message, EngineMismatchWarning, stacklevel=2)

    try:
        plan = Plan.from_json(header["plan"])
    except Exception as exc:
        raise EngineFileError(f"{path}: malformed plan in the header ({exc}); rebuild the engine") from None
    try:
        weights = safetensors.torch.load(payload)
    except Exception as exc:
        raise EngineFileError(f"{path}: malformed weights payload ({exc})") from None
    try:
        plan.check_references(set(weights))
    except PlanFormatError as exc:
        raise EngineFileError(f"{path}: malformed plan in the header ({exc}); rebuild the engine") from None
    return EngineFile(header=header, plan=plan, weights=weights, path=path)
