"""greenrt: an open ONNX inference optimizer and runtime over torch (CPU and CUDA)."""

from .errors import (
    ExecutionError,
    GreenrtError,
    InvalidInputError,
    ModelLoadError,
    UnsupportedModelError,
)
from .runtime.session import InferenceSession, NodeArg

__version__ = "0.1.0"

__all__ = [
    "InferenceSession",
    "NodeArg",
    "GreenrtError",
    "ModelLoadError",
    "UnsupportedModelError",
    "InvalidInputError",
    "ExecutionError",
    "__version__",
]
