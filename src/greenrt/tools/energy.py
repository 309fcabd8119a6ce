"""Energy per inference from NVML's total-energy counter (GPU only); None where no counter exists (CPU).

    with EnergyMeter(device) as meter:
        ... run N inferences ...
    meter.joules, meter.watts   # None on CPU or without NVML
"""

from __future__ import annotations

import time


class EnergyMeter:
    def __init__(self, device: str = "cuda", index: int = 0):
        self.joules: float | None = None
        self.seconds: float = 0.0
        self.reason = ""
        self._handle = None
        if not str(device).startswith("cuda"):
            self.reason = "CPU (NVML measures GPUs only)"
            return
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml = pynvml
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        except Exception as exc:  # NVMLError_LibraryNotFound without a GPU, or nvidia-ml-py missing
            self.reason = f"NVML unavailable ({type(exc).__name__})"

    def __enter__(self):
        self._t0 = time.perf_counter()
        if self._handle is not None:
            self._e0 = self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)  # millijoules
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self._t0
        if self._handle is not None:
            e1 = self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)
            self.joules = (e1 - self._e0) / 1000.0
        return False

    @property
    def watts(self) -> float | None:
        return self.joules / self.seconds if self.joules is not None and self.seconds > 0 else None
