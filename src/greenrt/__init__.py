"""greenrt: an open ONNX inference optimizer and runtime over torch (CPU and CUDA)."""

from .errors import (
    ExecutionError,
    GreenrtError,
    InvalidInputError,
    ModelLoadError,
    UnsupportedModelError,
)
from .runtime.session import InferenceSession, NodeArg
from .version import __version__



def load(path, device=None, *, allow_mismatch: bool = False, cuda_graphs: bool = True) -> InferenceSession:
    """Load an engine file (or an .onnx model) for inference: ``greenrt.load("model.engine").run(None, feeds)``.

    The same as ``InferenceSession(path, ...)``: an engine runs on the device it was built for unless ``device``
    says otherwise; a version or device mismatch raises EngineMismatchError unless ``allow_mismatch``.
    """
    return InferenceSession(path, device, allow_mismatch=allow_mismatch, cuda_graphs=cuda_graphs)

__all__ = [
    "InferenceSession",
    "load",
    "NodeArg",
    "GreenrtError",
    "ModelLoadError",
    "UnsupportedModelError",
    "InvalidInputError",
    "ExecutionError",
    "__version__",
]
