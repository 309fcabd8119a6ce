"""Signal processing: DFT, STFT, BlackmanWindow, HammingWindow, HannWindow, MelWeightMatrix.

Complex values are carried ONNX-style as a trailing dimension of size 2 (real, imaginary); a trailing
dimension of size 1 holds a real signal.
"""

from __future__ import annotations

import math

import torch

from ..errors import GreenrtError
from ..onnx.dtypes import to_torch_dtype
from ._util import normalize_axis
from .registry import op

def _to_complex(x: torch.Tensor) -> torch.Tensor:
    """[..., 1] real or [..., 2] (re, im) -> complex tensor of shape [...]."""
    x = x.to(torch.float64)  # float64 keeps near-zero outputs within the tests' atol
    if x.shape[-1] == 1:
        return x[..., 0].to(torch.complex128)
    if x.shape[-1] == 2:
        return torch.complex(x[..., 0], x[..., 1])
    raise GreenrtError(f"DFT: last dimension must be 1 (real) or 2 (complex), got {x.shape[-1]}")


def _from_complex(z: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return torch.view_as_real(z.resolve_conj()).to(dtype)


def _dft(x, dft_length, axis, inverse, onesided):
    """The DFT of x along ``axis`` (an axis of x, not the trailing complex one)."""
    axis = normalize_axis(axis, x.dim())
    if axis == x.dim() - 1:
        raise GreenrtError("DFT: axis cannot be the last (complex) dimension")
    length = x.shape[axis]
    if dft_length is not None:
        length = int(dft_length)
    elif inverse and onesided:
        length = 2 * (x.shape[axis] - 1)
    signal = _to_complex(x)
    if inverse and onesided:
        # one-sided spectrum -> real signal
        return torch.fft.irfft(signal, n=length, dim=axis).unsqueeze(-1).to(x.dtype)
    if inverse:
        return _from_complex(torch.fft.ifft(signal, n=length, dim=axis), x.dtype)
    spectrum = torch.fft.fft(signal, n=length, dim=axis)
    if onesided:
        spectrum = spectrum.narrow(axis, 0, length // 2 + 1)
    return _from_complex(spectrum, x.dtype)


@op("DFT", 17)
def DFT_17(x, dft_length=None, *, axis=1, inverse=0, onesided=0):
    length = None if dft_length is None else int(dft_length.reshape(-1)[0])
    return _dft(x, length, axis, inverse, onesided)


@op("DFT", 20)
def DFT_20(x, dft_length=None, axis=None, *, inverse=0, onesided=0):
    length = None if dft_length is None else int(dft_length.reshape(-1)[0])
    axis_value = -2 if axis is None else int(axis.reshape(-1)[0])
    return _dft(x, length, axis_value, inverse, onesided)


@op("STFT", 17)
def STFT(signal, frame_step, window=None, frame_length=None, *, onesided=1):
    """Windowed DFT of frames [batch, length, 1|2] -> [batch, frames, bins, 2]."""
    step = int(frame_step.reshape(-1)[0])
    if frame_length is not None:
        length = int(frame_length.reshape(-1)[0])
    elif window is not None:
        length = window.shape[0]
    else:
        length = signal.shape[-2]
    z = _to_complex(signal)  # [batch, length]
    frames = z.unfold(-1, length, step)  # [batch, frames, length]
    if window is not None:
        frames = frames * window.to(frames.real.dtype)
    spectrum = torch.fft.fft(frames, n=length, dim=-1)
    if onesided:
        spectrum = spectrum[..., : length // 2 + 1]
    return _from_complex(spectrum, signal.dtype)


def _window_positions(size, periodic, device):
    """(n = 0..size-1 in float64, N) where N is size (periodic) or size - 1 (symmetric)."""
    n = int(size.reshape(-1)[0])
    positions = torch.arange(n, dtype=torch.float64, device=device)
    return positions, (n if periodic else n - 1)


@op("HannWindow", 17)
def HannWindow(size, *, output_datatype=1, periodic=1):
    n, denom = _window_positions(size, periodic, size.device)
    return (torch.sin(n * math.pi / denom) ** 2).to(to_torch_dtype(output_datatype))


@op("HammingWindow", 17)
def HammingWindow(size, *, output_datatype=1, periodic=1):
    n, denom = _window_positions(size, periodic, size.device)
    alpha = 25.0 / 46.0
    window = alpha - (1 - alpha) * torch.cos(n * 2 * math.pi / denom)
    return window.to(to_torch_dtype(output_datatype))


@op("BlackmanWindow", 17)
def BlackmanWindow(size, *, output_datatype=1, periodic=1):
    n, denom = _window_positions(size, periodic, size.device)
    window = 0.42 - 0.5 * torch.cos(n * 2 * math.pi / denom) + 0.08 * torch.cos(n * 4 * math.pi / denom)
    return window.to(to_torch_dtype(output_datatype))


def _mel_edges(num_mel_bins, dft_length, sample_rate, lower_hz, upper_hz, device):
    """Spectrogram bin index of each of the num_mel_bins + 2 triangle edges (equal spacing in mel)."""
    low_mel = 2595 * math.log10(1 + lower_hz / 700)
    high_mel = 2595 * math.log10(1 + upper_hz / 700)
    steps = torch.arange(num_mel_bins + 2, dtype=torch.float64, device=device)
    mels = steps * ((high_mel - low_mel) / (num_mel_bins + 2)) + low_mel
    hertz = 700 * torch.expm1(mels / 2595 * math.log(10))
    return torch.div((dft_length + 1) * hertz, sample_rate, rounding_mode="floor").to(torch.int64)


@op("MelWeightMatrix", 17)
def MelWeightMatrix(num_mel_bins, dft_length, sample_rate, lower_edge_hertz, upper_edge_hertz, *,
                    output_datatype=1):
    """Triangular mel filters, [dft_length // 2 + 1, num_mel_bins]."""
    mel_bins, length = int(num_mel_bins), int(dft_length)
    device = num_mel_bins.device
    edges = _mel_edges(mel_bins, length, float(sample_rate), float(lower_edge_hertz),
                       float(upper_edge_hertz), device)
    low, center, high = edges[:-2], edges[1:-1], edges[2:]
    j = torch.arange(length // 2 + 1, device=device).unsqueeze(1)
    rise = (j - low).double() / (center - low).clamp(min=1).double()
    fall = (high - j).double() / (high - center).clamp(min=1).double()
    in_rise = (j >= low) & (j <= center)
    in_fall = (j >= center) & (j < high)
    weights = torch.where(in_fall, fall, torch.where(in_rise, rise, torch.zeros_like(rise)))
    weights = torch.where((center == low) & (j == center), torch.ones_like(weights), weights)
    return weights.to(to_torch_dtype(output_datatype))
