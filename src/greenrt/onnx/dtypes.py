"""ONNX element types <-> torch / numpy dtypes.

String tensors have no torch dtype: greenrt carries them as numpy object arrays (dtype=object holding str).
Types torch cannot hold (4-bit, 2-bit) have no entry and are reported as unsupported. float8e8m0 (the MX scale
type: an unsigned power of two, 0xFF is NaN) maps to ``torch.float8_e8m0fnu`` where torch has it (2.7 and later);
older torch reports it as unsupported like the 4-bit types.
"""

from __future__ import annotations

import numpy as np
import torch

# ONNX TensorProto.DataType numbers (fixed by the ONNX spec), spelled out so that loading and running an engine
# does not need the onnx package.
FLOAT, UINT8, INT8, UINT16, INT16, INT32, INT64, STRING, BOOL = 1, 2, 3, 4, 5, 6, 7, 8, 9
FLOAT16, DOUBLE, UINT32, UINT64, COMPLEX64, COMPLEX128, BFLOAT16 = 10, 11, 12, 13, 14, 15, 16
FLOAT8E4M3FN, FLOAT8E4M3FNUZ, FLOAT8E5M2, FLOAT8E5M2FNUZ = 17, 18, 19, 20
UINT4, INT4, FLOAT4E2M1, FLOAT8E8M0, UINT2, INT2 = 21, 22, 23, 24, 25, 26

TYPE_NAMES = {
    FLOAT: "float", UINT8: "uint8", INT8: "int8", UINT16: "uint16", INT16: "int16", INT32: "int32",
    INT64: "int64", STRING: "string", BOOL: "bool", FLOAT16: "float16", DOUBLE: "double", UINT32: "uint32",
    UINT64: "uint64", COMPLEX64: "complex64", COMPLEX128: "complex128", BFLOAT16: "bfloat16",
    FLOAT8E4M3FN: "float8e4m3fn", FLOAT8E4M3FNUZ: "float8e4m3fnuz", FLOAT8E5M2: "float8e5m2",
    FLOAT8E5M2FNUZ: "float8e5m2fnuz", UINT4: "uint4", INT4: "int4", FLOAT4E2M1: "float4e2m1",
    FLOAT8E8M0: "float8e8m0", UINT2: "uint2", INT2: "int2",
}

ONNX_TO_TORCH: dict[int, torch.dtype] = {
    FLOAT: torch.float32,
    DOUBLE: torch.float64,
    FLOAT16: torch.float16,
    BFLOAT16: torch.bfloat16,
    INT8: torch.int8,
    INT16: torch.int16,
    INT32: torch.int32,
    INT64: torch.int64,
    UINT8: torch.uint8,
    UINT16: torch.uint16,
    UINT32: torch.uint32,
    UINT64: torch.uint64,
    BOOL: torch.bool,
    COMPLEX64: torch.complex64,
    COMPLEX128: torch.complex128,
    FLOAT8E4M3FN: torch.float8_e4m3fn,
    FLOAT8E4M3FNUZ: torch.float8_e4m3fnuz,
    FLOAT8E5M2: torch.float8_e5m2,
    FLOAT8E5M2FNUZ: torch.float8_e5m2fnuz,
}

# torch.float8_e8m0fnu exists from torch 2.7; looked up by name so that older torch still imports greenrt.
FLOAT8_E8M0FNU: torch.dtype | None = getattr(torch, "float8_e8m0fnu", None)
if FLOAT8_E8M0FNU is not None:
    ONNX_TO_TORCH[FLOAT8E8M0] = FLOAT8_E8M0FNU

TORCH_TO_ONNX: dict[torch.dtype, int] = {v: k for k, v in ONNX_TO_TORCH.items()}

# numpy has no bfloat16/float8; onnx's ml_dtypes-backed numpy types cover them on the way in and out.
TORCH_TO_NUMPY: dict[torch.dtype, np.dtype] = {
    torch.float32: np.dtype(np.float32),
    torch.float64: np.dtype(np.float64),
    torch.float16: np.dtype(np.float16),
    torch.int8: np.dtype(np.int8),
    torch.int16: np.dtype(np.int16),
    torch.int32: np.dtype(np.int32),
    torch.int64: np.dtype(np.int64),
    torch.uint8: np.dtype(np.uint8),
    torch.uint16: np.dtype(np.uint16),
    torch.uint32: np.dtype(np.uint32),
    torch.uint64: np.dtype(np.uint64),
    torch.bool: np.dtype(np.bool_),
    torch.complex64: np.dtype(np.complex64),
    torch.complex128: np.dtype(np.complex128),
}


def _ml_dtypes():
    import ml_dtypes  # installed with onnx

    return {
        torch.bfloat16: np.dtype(ml_dtypes.bfloat16),
        torch.float8_e4m3fn: np.dtype(ml_dtypes.float8_e4m3fn),
        torch.float8_e4m3fnuz: np.dtype(ml_dtypes.float8_e4m3fnuz),
        torch.float8_e5m2: np.dtype(ml_dtypes.float8_e5m2),
        torch.float8_e5m2fnuz: np.dtype(ml_dtypes.float8_e5m2fnuz),
        **({FLOAT8_E8M0FNU: np.dtype(ml_dtypes.float8_e8m0fnu)}
           if FLOAT8_E8M0FNU is not None and hasattr(ml_dtypes, "float8_e8m0fnu") else {}),
    }


def as_str(x) -> str:
    """An ONNX string (bytes in protos, str in onnx-ir) as Python str."""
    return x.decode("utf-8") if isinstance(x, bytes) else str(x)


def onnx_type_name(elem_type: int) -> str:
    return TYPE_NAMES.get(int(elem_type), f"elem_type {elem_type}")


def to_torch_dtype(elem_type: int) -> torch.dtype:
    """The torch dtype for an ONNX element type; KeyError if torch cannot hold it (or it is STRING)."""
    return ONNX_TO_TORCH[int(elem_type)]


def is_supported_elem_type(elem_type: int) -> bool:
    return int(elem_type) in ONNX_TO_TORCH or int(elem_type) == STRING


def numpy_to_torch(array: np.ndarray, device: torch.device | str = "cpu"):
    """numpy -> torch tensor on ``device``; object (string) arrays are returned unchanged."""
    if array.dtype == object or array.dtype.kind in "US":
        return np.asarray(array, dtype=object)
    reverse = {v: k for k, v in _ml_dtypes().items()}
    if array.dtype in reverse:
        bits = {1: torch.uint8, 2: torch.int16}[array.dtype.itemsize]
        raw = torch.from_numpy(_contiguous(array).view(TORCH_TO_NUMPY[bits]))
        return raw.view(reverse[array.dtype]).to(device)
    if not array.flags.writeable:  # e.g. memory-mapped initializers: torch wants a writable buffer
        array = np.array(array)
    return torch.from_numpy(_contiguous(array)).to(device)


def _contiguous(array: np.ndarray) -> np.ndarray:
    """C-contiguous, keeping 0-d arrays 0-d (np.ascontiguousarray would make them 1-d). A reversed view along a dim
    of size 1 counts as contiguous to numpy but keeps its negative stride, which torch.from_numpy refuses: copied."""
    out = np.ascontiguousarray(array).reshape(array.shape)
    if any(s < 0 for s in out.strides):
        out = np.array(out, order="C", copy=True)
    return out


def torch_to_numpy(tensor) -> np.ndarray:
    """torch tensor -> numpy array (bfloat16/float8 through ml_dtypes); numpy passes through."""
    if isinstance(tensor, np.ndarray):
        return tensor
    tensor = tensor.detach().cpu()
    special = _ml_dtypes()
    if tensor.dtype in special:
        bits = torch.uint8 if tensor.element_size() == 1 else torch.int16
        return tensor.contiguous().view(bits).numpy().view(special[tensor.dtype])
    return tensor.contiguous().numpy()


def numpy_dtype_to_onnx(dtype: np.dtype) -> int:
    if dtype == object or dtype.kind in "US":
        return STRING
    import onnx

    return onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
