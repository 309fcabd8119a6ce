"""Calibration data: what a model is run on to see the ranges its tensors take.

Three ways to give it (``--calib DATA``):

- an ``.npz`` file, or a folder of them: one array per model input, named as the input, first axis = samples
  (every array in a file the same number of samples);
- a folder of images (``.jpg``/``.jpeg``/``.png``/``.bmp``) with a stated preprocessing spec
  (``--calib-preprocess``, see ``ImageSpec``), for a model with one image input;
- ``module:function``: a Python callable returning an iterable of feed dicts (input name -> array, batch first).

Each yields batches of at most ``batch_size`` samples, streamed: the set is never held in memory whole.
"""

from __future__ import annotations

import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from ...errors import GreenrtError
from ..user_code import load_callable

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


class CalibrationDataError(GreenrtError):
    """Calibration data that does not fit the model (named, with what to do)."""


@dataclass(frozen=True)
class ImageSpec:
    """How images become an input: resize the short side to ``resize``, centre-crop ``crop`` x ``crop``, scale to
    [0, 1], subtract ``mean`` and divide by ``std`` per channel, ``layout`` nchw or nhwc, RGB.

    Written ``resize=256,crop=224,mean=0.485/0.456/0.406,std=0.229/0.224/0.225,layout=nchw`` (the ImageNet
    default, which is also what an empty spec means)."""

    resize: int = 256
    crop: int = 224
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    layout: str = "nchw"

    @classmethod
    def parse(cls, text: str | None) -> "ImageSpec":
        if not text:
            return cls()
        fields: dict[str, Any] = {}
        for item in filter(None, (s.strip() for s in text.split(","))):
            key, sep, value = item.partition("=")
            try:
                if key in ("resize", "crop") and sep:
                    fields[key] = int(value)
                elif key in ("mean", "std") and sep:
                    fields[key] = tuple(float(v) for v in value.split("/"))
                elif key == "layout" and value in ("nchw", "nhwc"):
                    fields[key] = value
                else:
                    raise ValueError(item)
            except ValueError:
                raise CalibrationDataError(
                    f"--calib-preprocess: cannot read {item!r}; write e.g. resize=256,crop=224,"
                    "mean=0.485/0.456/0.406,std=0.229/0.224/0.225,layout=nchw") from None
        spec = cls(**fields)
        if len(spec.mean) != len(spec.std) or spec.crop > spec.resize or spec.crop < 1:
            raise CalibrationDataError(f"--calib-preprocess {text!r}: mean and std need one value per channel and "
                                       "crop must be at most resize")
        return spec

    def apply(self, path: Path) -> np.ndarray:
        from PIL import Image

        try:
            with Image.open(path) as img:
                img = img.convert("RGB")
                w, h = img.size
                s = self.resize / min(w, h)
                img = img.resize((max(self.crop, round(w * s)), max(self.crop, round(h * s))), Image.BILINEAR)
                w, h = img.size
                left, top = (w - self.crop) // 2, (h - self.crop) // 2
                img = img.crop((left, top, left + self.crop, top + self.crop))
                x = np.asarray(img, np.float32) / 255.0
        except (OSError, ValueError) as exc:
            raise CalibrationDataError(f"calibration image {path}: cannot be read ({exc})") from None
        x = (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return x.transpose(2, 0, 1) if self.layout == "nchw" else x


@dataclass
class CalibrationSource:
    """Batches of feed dicts, opened lazily; ``describe`` for reports and the cache."""

    describe: str
    batches: Callable[[int], Iterator[dict[str, np.ndarray]]]
    samples: int | None  # known up front for files and images, None for a callable


def open_calibration_data(spec: str, input_names: Sequence[str], preprocess: str | None = None) -> CalibrationSource:
    """The calibration data ``spec`` names (a path or module:function), for a model with ``input_names``."""
    path = Path(spec)
    if path.is_file() and path.suffix == ".npz":
        return _npz_source([path], input_names)
    if path.is_dir():
        npz = sorted(path.glob("*.npz"))
        images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if npz and images:
            raise CalibrationDataError(f"--calib {path}: holds both .npz files and images; keep one kind per folder")
        if npz:
            return _npz_source(npz, input_names)
        if images:
            return _image_source(path, images, input_names, ImageSpec.parse(preprocess))
        raise CalibrationDataError(f"--calib {path}: no .npz files or images ({', '.join(IMAGE_SUFFIXES)}) in it")
    if re.fullmatch(r"[\w.]+:\w+", spec) and not path.exists():
        return _callable_source(spec, input_names)
    raise CalibrationDataError(f"--calib {spec!r}: not an .npz file, a folder of .npz files or images, or "
                               "module:function")


def _check_feeds(feeds: Mapping[str, Any], input_names: Sequence[str], where: str) -> dict[str, np.ndarray]:
    missing = [n for n in input_names if n not in feeds]
    extra = [n for n in feeds if n not in input_names]
    if missing or extra:
        raise CalibrationDataError(
            f"{where}: arrays {sorted(feeds)} do not match the model's inputs {list(input_names)}"
            + (f" (missing {missing})" if missing else "") + (f" (not inputs: {extra})" if extra else "")
            + ": name one array per input")
    out = {n: np.asarray(feeds[n]) for n in input_names}
    counts = {n: (a.shape[0] if a.ndim else None) for n, a in out.items()}
    if None in counts.values() or len(set(counts.values())) != 1:
        raise CalibrationDataError(f"{where}: every array needs the same number of samples on its first axis, got "
                                   f"{counts}")
    return out


# what np.load raises on a truncated or corrupted .npz (a zip of .npy files): besides OSError and ValueError
# (NotImplementedError: zipfile's answer to a damaged flags field, "strong encryption (flag bit 6)")
_NPZ_ERRORS = (OSError, ValueError, EOFError, KeyError, NotImplementedError, zipfile.BadZipFile, zlib.error)


def _read_npz(f: Path, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """The arrays of ``f`` (those in ``names``, else all); CalibrationDataError where it is not a readable .npz."""
    try:
        with np.load(f, allow_pickle=False) as data:
            return {k: data[k] for k in (data.files if names is None else names)}
    except _NPZ_ERRORS as exc:
        raise CalibrationDataError(f"calibration file {f}: not a readable .npz ({type(exc).__name__}: {exc})") from None


def _npz_source(files: list[Path], input_names: Sequence[str]) -> CalibrationSource:
    samples = 0
    for f in files:
        arrays = _check_feeds(_read_npz(f), input_names, str(f))
        samples += next(iter(arrays.values())).shape[0]

    def batches(size: int) -> Iterator[dict[str, np.ndarray]]:
        for f in files:
            arrays = _read_npz(f, input_names)
            n = next(iter(arrays.values())).shape[0]
            for i in range(0, n, size):
                yield {k: v[i:i + size] for k, v in arrays.items()}

    where = str(files[0]) if len(files) == 1 else f"{len(files)} .npz files in {files[0].parent}"
    return CalibrationSource(where, batches, samples)


def _image_source(folder: Path, images: list[Path], input_names: Sequence[str], spec: ImageSpec) -> CalibrationSource:
    if len(input_names) != 1:
        raise CalibrationDataError(f"--calib {folder}: a folder of images feeds a model with one input; this one has "
                                   f"{list(input_names)}: give .npz files or module:function")
    name = input_names[0]

    def batches(size: int) -> Iterator[dict[str, np.ndarray]]:
        for i in range(0, len(images), size):
            yield {name: np.stack([spec.apply(p) for p in images[i:i + size]])}

    return CalibrationSource(f"{len(images)} images in {folder} ({spec})", batches, len(images))


def _callable_source(spec: str, input_names: Sequence[str]) -> CalibrationSource:
    fn = load_callable(spec, "--calib", "write pkg.module:function", CalibrationDataError)

    def batches(size: int) -> Iterator[dict[str, np.ndarray]]:
        for i, feeds in enumerate(_user_items(fn, spec)):
            if not isinstance(feeds, Mapping):
                raise CalibrationDataError(f"--calib {spec}: item {i} is a {type(feeds).__name__}, not a dict of "
                                           "input name -> array")
            arrays = _check_feeds(feeds, input_names, f"--calib {spec}, item {i}")
            n = next(iter(arrays.values())).shape[0]
            for j in range(0, n, size):
                yield {k: v[j:j + size] for k, v in arrays.items()}

    return CalibrationSource(spec, batches, None)


def _user_items(fn: Callable, spec: str) -> Iterator[Any]:
    """What the user's ``fn()`` yields; an error raised inside their code becomes a CalibrationDataError naming the
    spec and the item (the cause chained), not a traceback that looks like greenrt's."""
    try:
        items = iter(fn())
    except GreenrtError:
        raise
    except Exception as exc:  # noqa: BLE001  (the user's code: anything)
        raise CalibrationDataError(f"--calib {spec}: calling it raised {type(exc).__name__}: {exc}") from exc
    i = 0
    while True:
        try:
            item = next(items)
        except StopIteration:
            return
        except GreenrtError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise CalibrationDataError(f"--calib {spec}: item {i} raised {type(exc).__name__}: {exc}") from exc
        yield item
        i += 1
