"""PP-OCRv4 detector / recognizer and the PP-OCR direction classifier, as shipped in PyPI rapidocr-onnxruntime."""

from __future__ import annotations

from pathlib import Path

PPOCR_FILES = {
    "ppocr_det": "ch_PP-OCRv4_det_infer.onnx",
    "ppocr_rec": "ch_PP-OCRv4_rec_infer.onnx",
    "ppocr_cls": "ch_ppocr_mobile_v2.0_cls_infer.onnx",
}


def ppocr_path(name: str) -> Path:
    """The file inside the installed rapidocr-onnxruntime package, else a copy in greenrt's zoo cache."""
    try:
        import rapidocr_onnxruntime
    except ImportError:
        from . import cache_dir

        return cache_dir() / PPOCR_FILES[name]
    return Path(rapidocr_onnxruntime.__file__).parent / "models" / PPOCR_FILES[name]
