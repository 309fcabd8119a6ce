"""Fashion-MNIST and two small CNNs trained on it here, for greenrt's INT8 accuracy suite (labelled data).

    python bench/accuracy/fashion_mnist.py --cache DIR [--models fmnist_resnet,fmnist_mobilenet]

trains (or reuses from DIR) and exports both models, then prints each one's fp32 test accuracy under onnxruntime
on the exported ONNX file, its training seconds and its ONNX op types. In code: load(split), splits() (calibration,
tuning, evaluation feeds {"image": x} with labels) and models(cache_dir) -> {name: ONNX path}.

Data: the Debian package dataset-fashion-mnist (IDX .gz files in /usr/share/datasets/fashion-mnist), read with
numpy; images Nx1x28x28 float32, (x/255 - 0.2860)/0.3530; labels int64 (10 classes).

Models (BatchNorm after every conv, no bias in convs, no dropout; exported after model.eval(), so the TorchScript
exporter folds every BatchNorm into its Conv: no BatchNormalization nodes in the ONNX files):
- fmnist_resnet (77k parameters): 3x3 stride-2 stem conv 1->16 (28->14), then three ResNet basic blocks
  (3x3 conv-BN-ReLU, 3x3 conv-BN, + identity or 1x1 conv-BN shortcut, ReLU): 16 @14x14, 32 @7x7 (stride 2),
  64 @4x4 (stride 2); global average pool, linear 64->10.
  ONNX: 22 nodes, Conv x9, Relu x7, Add x3, GlobalAveragePool, Flatten, Gemm.
- fmnist_mobilenet (42k parameters): 3x3 stride-2 stem conv 1->16 + ReLU6; a MobileNetV1 depthwise-separable
  block (3x3 depthwise + 1x1 pointwise, ReLU6) at 14x14; four MobileNetV2 inverted residuals (1x1 expand x2, 3x3
  depthwise, 1x1 linear projection, residual add where shapes match): 16->32 (stride 2, 7x7) and 32->32 with
  ReLU6, 32->64 (stride 2, 4x4) and 64->64 with hardswish; 1x1 conv 64->128 + hardswish, global average pool,
  linear 128->10. ONNX: 47 nodes, Conv x16 (5 depthwise), Clip x7 (ReLU6, min/max as 14 Constant nodes),
  HardSwish x5, Add x2, GlobalAveragePool, Flatten, Gemm.
Both: input "image" [batch, 1, 28, 28], output "logits" [batch, 10]; opset 17, only the batch axis dynamic.

Training recipe (SETTINGS; both the same): 6 epochs over the 60,000 training images, batch 128 (last partial
batch dropped), SGD momentum 0.9 Nesterov, one-cycle learning rate peaking at 0.2 (25% warm-up), weight decay on
conv/linear weights only (ResNet 5e-4, MobileNet 4e-5), cross-entropy; augmentation: random horizontal flip.
Seeded (torch.manual_seed(0) for the initial weights, numpy default_rng(0) for the data order and the flips), one
CPU thread, channels_last, torch.use_deterministic_algorithms: three runs gave identical losses and accuracies.
One thread on purpose: on the shared 2-core machine, 2 OpenMP threads ran a training step 10-40x slower
(1.3 s instead of 31 ms) while other jobs used the cores.

Measured (torch 2.14.1 CPU, 1 thread of a shared 2-core AMD EPYC VM, 2026-12-07):
- fmnist_resnet: 81-87 s training (three runs); test accuracy 0.9189 (onnxruntime fp32 on the ONNX file;
  torch the same).
- fmnist_mobilenet: 93-98 s training (three runs); test accuracy 0.9145 (onnxruntime fp32; torch the same).
Test accuracy by epoch (torch): resnet .808 .869 .887 .894 .908 .919; mobilenet .815 .858 .887 .893 .909 .915.

Cache: models(cache_dir) writes <name>-<hash>.onnx and a sidecar <name>-<hash>.json (settings, torch version,
training seconds, accuracies), reused on later calls; the hash covers the model's SETTINGS entry, the torch
version, the opset and the source of build/_augment/train/export (editing those retrains).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

DATA_DIR = Path("/usr/share/datasets/fashion-mnist")
DEBIAN_PACKAGE = "dataset-fashion-mnist"
FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
         "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
MEAN, STD = 0.2860, 0.3530
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
OPSET = 17
THREADS = 1      # one thread: on a shared 2-core machine two OpenMP threads ran 10-40x slower (spin-waits)

# Everything that decides the trained weights; its hash (with the torch version) names the cached ONNX file.
SETTINGS = {
    "fmnist_resnet": {"arch": "resnet", "widths": [16, 32, 64], "epochs": 6, "batch": 128, "optimizer": "sgd",
                      "lr": 0.2, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4, "schedule": "onecycle",
                      "label_smoothing": 0.0, "augment": "hflip", "channels_last": True, "seed": 0},
    "fmnist_mobilenet": {"arch": "mobilenet", "widths": [16, 32, 64], "expand": 2, "epochs": 6, "batch": 128,
                         "optimizer": "sgd", "lr": 0.2, "momentum": 0.9, "nesterov": True, "weight_decay": 4e-5,
                         "schedule": "onecycle", "label_smoothing": 0.0, "augment": "hflip", "channels_last": True,
                         "seed": 0},
}
NAMES = tuple(SETTINGS)


# ----------------------------------------------------------------------------------------------------------- data

def _read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzip): big-endian magic 0x00 0x00 <dtype 0x08=uint8> <ndim>, ndim big-endian uint32 sizes."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file (magic {raw[:4].hex()})")
    ndim = raw[3]
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: {data.size} bytes of data for dims {dims}")
    return data.reshape(dims)


def load(split: str) -> tuple[np.ndarray, np.ndarray]:
    """split "train" (60,000) or "test" (10,000) -> images float32 Nx1x28x28 normalized (x/255 - 0.2860)/0.3530,
    labels int64."""
    if split not in FILES:
        raise ValueError(f"split must be one of {sorted(FILES)}, not {split!r}")
    paths = [DATA_DIR / name for name in FILES[split]]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise SystemExit(f"Fashion-MNIST is missing ({', '.join(missing)}): install the Debian package "
                         f"{DEBIAN_PACKAGE} (apt-get install {DEBIAN_PACKAGE}), which puts it in {DATA_DIR}")
    images, labels = (_read_idx(p) for p in paths)
    if images.shape[1:] != (28, 28) or len(images) != len(labels):
        raise ValueError(f"unexpected Fashion-MNIST shapes {images.shape}, {labels.shape}")
    x = ((images.astype(np.float32) / 255.0 - MEAN) / STD).astype(np.float32)[:, None]
    return np.ascontiguousarray(x), labels.astype(np.int64)


def splits(calibration: int = 1000, tuning: int = 1000, seed: int = 0) -> dict[str, tuple[dict, np.ndarray]]:
    """{"calibration": ({"image": x}, labels), "tuning": (...), "evaluation": (...)}.

    calibration and tuning are disjoint random draws (numpy default_rng(seed)) of the 60,000 training images (the
    models were trained on them: calibration data as a deployment would have it); evaluation is the whole 10,000
    image test set, which no model has seen.
    """
    x, y = load("train")
    order = np.random.default_rng(seed).permutation(len(x))
    cal, tun = np.sort(order[:calibration]), np.sort(order[calibration:calibration + tuning])
    xt, yt = load("test")
    return {"calibration": ({"image": x[cal]}, y[cal]),
            "tuning": ({"image": x[tun]}, y[tun]),
            "evaluation": ({"image": xt}, yt)}


# --------------------------------------------------------------------------------------------------------- models

def build(settings: dict):
    """The untrained torch model for one SETTINGS entry."""
    import torch
    import torch.nn as nn

    def conv_bn(cin, cout, k=3, stride=1, groups=1, act=None):
        layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
        return nn.Sequential(*layers, act) if act is not None else nn.Sequential(*layers)

    class BasicBlock(nn.Module):
        """ResNet basic block: 3x3 conv-BN-ReLU, 3x3 conv-BN, + shortcut (identity, or 1x1 conv-BN), ReLU."""

        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = conv_bn(cin, cout, 3, stride, act=nn.ReLU(inplace=True))
            self.conv2 = conv_bn(cout, cout, 3)
            self.shortcut = (nn.Identity() if cin == cout and stride == 1 else conv_bn(cin, cout, 1, stride))
            self.relu = nn.ReLU(inplace=True)

        def forward(self, x):
            return self.relu(self.conv2(self.conv1(x)) + self.shortcut(x))

    class ResNet(nn.Module):
        def __init__(self, widths):
            super().__init__()
            w1, w2, w3 = widths
            self.stem = conv_bn(1, w1, 3, 2, act=nn.ReLU(inplace=True))            # 28 -> 14
            self.layer1 = BasicBlock(w1, w1, 1)                                     # 14x14
            self.layer2 = BasicBlock(w1, w2, 2)                                     # 7x7
            self.layer3 = BasicBlock(w2, w3, 2)                                     # 4x4
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(w3, 10)

        def forward(self, x):
            x = self.layer3(self.layer2(self.layer1(self.stem(x))))
            return self.fc(torch.flatten(self.pool(x), 1))

    class InvertedResidual(nn.Module):
        """MobileNetV2 block: 1x1 expand-BN-act, 3x3 depthwise-BN-act, 1x1 project-BN, + input when shapes match."""

        def __init__(self, cin, cout, stride, expand, act):
            super().__init__()
            hidden = cin * expand
            self.block = nn.Sequential(conv_bn(cin, hidden, 1, act=act()),
                                       conv_bn(hidden, hidden, 3, stride, groups=hidden, act=act()),
                                       conv_bn(hidden, cout, 1))
            self.residual = cin == cout and stride == 1

        def forward(self, x):
            y = self.block(x)
            return x + y if self.residual else y

    class MobileNet(nn.Module):
        def __init__(self, widths, expand):
            super().__init__()
            w1, w2, w3 = widths
            relu6, hswish = (lambda: nn.ReLU6(inplace=True)), (lambda: nn.Hardswish(inplace=True))
            self.stem = conv_bn(1, w1, 3, 2, act=relu6())                           # 28 -> 14
            self.features = nn.Sequential(
                # depthwise-separable (MobileNetV1) block at 14x14
                conv_bn(w1, w1, 3, 1, groups=w1, act=relu6()), conv_bn(w1, w1, 1, act=relu6()),
                InvertedResidual(w1, w2, 2, expand, relu6),                          # 7x7
                InvertedResidual(w2, w2, 1, expand, relu6),
                InvertedResidual(w2, w3, 2, expand, hswish),                         # 4x4
                InvertedResidual(w3, w3, 1, expand, hswish),
                conv_bn(w3, 2 * w3, 1, act=hswish()))
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(2 * w3, 10)

        def forward(self, x):
            return self.fc(torch.flatten(self.pool(self.features(self.stem(x))), 1))

    if settings["arch"] == "resnet":
        model = ResNet(settings["widths"])
    elif settings["arch"] == "mobilenet":
        model = MobileNet(settings["widths"], settings["expand"])
    else:
        raise ValueError(f"unknown arch {settings['arch']!r}")
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return model


def _augment(xb, rng: np.random.Generator, how: str):
    import torch

    if "hflip" in how:
        flip = torch.from_numpy(rng.random(len(xb)) < 0.5)
        xb = torch.where(flip[:, None, None, None], xb.flip(-1), xb)
    if "shift" in how:                          # random translation by up to 2 pixels, background filled in
        n, pad = len(xb), 2
        padded = torch.nn.functional.pad(xb, (pad,) * 4, value=-MEAN / STD)
        oy, ox = (torch.from_numpy(rng.integers(0, 2 * pad + 1, n)) for _ in range(2))
        r = torch.arange(28)
        rows, cols = (oy[:, None] + r)[:, :, None], (ox[:, None] + r)[:, None, :]
        xb = padded[torch.arange(n)[:, None, None], 0, rows, cols][:, None]
    return xb


def accuracy_torch(model, x: np.ndarray, y: np.ndarray, batch: int = 1000) -> float:
    import torch

    model.eval()
    with torch.no_grad():
        pred = np.concatenate([model(torch.from_numpy(x[i:i + batch])).argmax(1).numpy()
                               for i in range(0, len(x), batch)])
    return float((pred == y).mean())


def train(settings: dict, log=print):
    """Train one model from SETTINGS: -> (model in eval mode, training seconds, per-epoch test accuracies)."""
    import torch
    import torch.nn.functional as F

    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(THREADS)
    torch.use_deterministic_algorithms(True)
    try:
        x, y = load("train")
        xt, yt = load("test")
        torch.manual_seed(settings["seed"])
        rng = np.random.default_rng(settings["seed"])            # data order and augmentation
        model = build(settings)
        layout = torch.channels_last if settings.get("channels_last") else torch.contiguous_format
        model = model.to(memory_format=layout)
        decay = [p for p in model.parameters() if p.ndim > 1]             # conv and linear weights
        no_decay = [p for p in model.parameters() if p.ndim <= 1]         # BatchNorm and biases
        groups = [{"params": decay, "weight_decay": settings["weight_decay"]},
                  {"params": no_decay, "weight_decay": 0.0}]
        if settings["optimizer"] == "sgd":
            opt = torch.optim.SGD(groups, lr=settings["lr"], momentum=settings["momentum"],
                                  nesterov=settings["nesterov"])
        else:
            opt = torch.optim.AdamW(groups, lr=settings["lr"])
        batch, epochs = settings["batch"], settings["epochs"]
        steps = len(x) // batch                                    # the last partial batch is dropped
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=settings["lr"], total_steps=epochs * steps,
                                                    pct_start=0.25)
        xs, ys = torch.from_numpy(x), torch.from_numpy(y)
        history, seconds = [], 0.0
        for epoch in range(epochs):
            start = time.perf_counter()
            model.train()
            order = torch.from_numpy(rng.permutation(len(x)))
            total = 0.0
            for s in range(steps):
                idx = order[s * batch:(s + 1) * batch]
                xb = _augment(xs[idx], rng, settings["augment"]).contiguous(memory_format=layout)
                loss = F.cross_entropy(model(xb), ys[idx], label_smoothing=settings["label_smoothing"])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total += float(loss.detach())
            seconds += time.perf_counter() - start
            history.append(accuracy_torch(model, xt, yt))
            log(f"  epoch {epoch + 1}/{epochs}: loss {total / steps:.4f}, test acc (torch) {history[-1]:.4f}, "
                f"{seconds:.1f} s training so far")
        return model.to(memory_format=torch.contiguous_format).eval(), seconds, history
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


def export(model, path: Path) -> Path:
    """torch.onnx.export (TorchScript exporter, opset 17), batch axis dynamic, everything else static."""
    import torch

    model.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.onnx")
    with torch.no_grad():
        torch.onnx.export(model, (torch.zeros(1, 1, 28, 28),), str(tmp), dynamo=False, opset_version=OPSET,
                          input_names=["image"], output_names=["logits"],
                          dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}})
    tmp.replace(path)
    return path


def settings_key(name: str) -> str:
    import inspect

    import torch

    code = "".join(inspect.getsource(f) for f in (build, _augment, train, export))
    blob = json.dumps({"name": name, "settings": SETTINGS[name], "torch": torch.__version__, "opset": OPSET,
                       "code": code}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def ort_accuracy(path: Path, x: np.ndarray, y: np.ndarray, batch: int = 1000) -> float:
    """Top-1 accuracy of the ONNX file under onnxruntime (CPU, fp32)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = THREADS
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    pred = np.concatenate([sess.run(["logits"], {"image": x[i:i + batch]})[0].argmax(1)
                           for i in range(0, len(x), batch)])
    return float((pred == y).mean())


def models(cache_dir: Path, names=NAMES, log=print) -> dict[str, Path]:
    """{name: ONNX path}, training and exporting any model not in cache_dir yet (file <name>-<settings hash>.onnx,
    with a sidecar <same>.json recording the settings, torch version, training seconds and accuracies)."""
    import torch

    cache_dir = Path(cache_dir)
    out = {}
    for name in names:
        key = settings_key(name)
        path = cache_dir / f"{name}-{key}.onnx"
        if not path.is_file():
            log(f"{name}: training ({SETTINGS[name]})")
            model, seconds, history = train(SETTINGS[name], log)
            export(model, path)
            xt, yt = load("test")
            meta = {"name": name, "key": key, "settings": SETTINGS[name], "torch": torch.__version__,
                    "opset": OPSET, "threads": THREADS, "train_seconds": round(seconds, 1),
                    "test_accuracy_torch_per_epoch": history,
                    "test_accuracy_onnxruntime_fp32": ort_accuracy(path, xt, yt)}
            path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
            log(f"{name}: exported {path}")
        out[name] = path
    return out


def main() -> int:
    import onnx

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, required=True, help="folder for the trained ONNX models")
    ap.add_argument("--models", default=",".join(NAMES), help="comma-separated subset of " + ",".join(NAMES))
    args = ap.parse_args()
    paths = models(args.cache, [n for n in args.models.split(",") if n])
    xt, yt = load("test")
    for name, path in paths.items():
        meta = json.loads(path.with_suffix(".json").read_text())
        graph = onnx.load(str(path)).graph
        ops = sorted({n.op_type for n in graph.node})
        print(f"{name}: {path}\n  training {meta['train_seconds']} s ({meta['threads']} threads), "
              f"onnxruntime fp32 test accuracy {ort_accuracy(path, xt, yt):.4f}, "
              f"{len(graph.node)} nodes, ops {ops}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
