"""Energy counters and the windows they are read over: NVML's total-energy counter on a GPU, RAPL package energy
on a CPU where readable, and NoCounter (joules None, with the reason) elsewhere.

    counter = energy_counter("cuda")
    window = run_window(step, sync, counter, duration_s=5.0)     # window.joules / window.calls per inference
    with EnergyMeter("cuda") as meter:                            # or around any block of work
        ... run N inferences ...
    meter.joules, meter.watts                                      # None without a counter
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

# NVML's total-energy counter updates every ~20-100 ms: a window shorter than this (or with fewer calls) would
# read mostly quantization. `run_window` extends the steady window until both are met when a counter is present.
MIN_WINDOW_S = 1.0
MIN_WINDOW_CALLS = 20
POWERCAP_ROOT = "/sys/class/powercap"
_RAPL_PACKAGE = re.compile(r"intel-rapl:\d+$")  # package zones; their subzones (intel-rapl:0:0) are inside them


class NoCounter:
    """No energy counter here; ``reason`` says why (joules are reported as null, never guessed)."""

    available = False
    source = None

    def __init__(self, reason: str):
        self.reason = reason

    def snapshot(self):
        return None

    def joules_between(self, a, b):
        return None


class NvmlCounter:
    """NVML's total-energy counter of one GPU (millijoules since the driver loaded)."""

    available = True
    source = "nvml"
    reason = ""

    def __init__(self, handle, nvml):
        self._handle, self._nvml = handle, nvml

    def snapshot(self) -> int:
        return self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)

    def joules_between(self, a: int, b: int) -> float:
        return (b - a) / 1000.0

    def utilization(self) -> float | None:
        """GPU utilization in percent over NVML's last sample period; None where NVML does not say."""
        try:
            return float(self._nvml.nvmlDeviceGetUtilizationRates(self._handle).gpu)
        except Exception:
            return None


def nvml_handle(device_index: int = 0):
    """(pynvml, handle) of the CUDA device ``device_index`` (matched by PCI bus id where torch gives it, else by
    index), or raises."""
    import pynvml

    pynvml.nvmlInit()
    try:
        import torch

        props = torch.cuda.get_device_properties(device_index)
        bus = "%08x:%02x:%02x.0" % (props.pci_domain_id, props.pci_bus_id, props.pci_device_id)
        return pynvml, pynvml.nvmlDeviceGetHandleByPciBusId(bus)
    except Exception:  # older torch without PCI ids, or a bus id NVML spells differently
        return pynvml, pynvml.nvmlDeviceGetHandleByIndex(device_index)


class RaplCounter:
    """Intel/AMD RAPL package energy through powercap sysfs (microjoules, wrapping at max_energy_range_uj).
    Measures the whole package (every process on it), not this process alone."""

    available = True
    source = "rapl"
    reason = ""

    def __init__(self, zones: list[Path]):
        self.zones = zones
        self.ranges = [int((z / "max_energy_range_uj").read_text()) for z in zones]

    def snapshot(self) -> tuple[int, ...]:
        return tuple(int((z / "energy_uj").read_text()) for z in self.zones)

    def joules_between(self, a, b) -> float:
        total = 0
        for before, after, span in zip(a, b, self.ranges):
            total += after - before if after >= before else after + span - before  # the counter wrapped once
        return total / 1e6


def rapl_counter(root: str | Path = POWERCAP_ROOT):
    """A RaplCounter over every readable package zone under ``root``, else NoCounter with the reason."""
    root = Path(root)
    if not root.is_dir():
        return NoCounter(f"RAPL not readable: {root} absent")
    zones = sorted(p for p in root.iterdir() if _RAPL_PACKAGE.match(p.name) and (p / "energy_uj").exists())
    if not zones:
        return NoCounter(f"RAPL not readable: no intel-rapl:N package zone with energy_uj under {root}")
    try:
        counter = RaplCounter(zones)
        counter.snapshot()
    except PermissionError:
        return NoCounter(f"RAPL not readable: {zones[0] / 'energy_uj'} is root-only (Linux >= 5.10); "
                         f"run as root or chmod it")
    except (OSError, ValueError) as exc:
        return NoCounter(f"RAPL not readable: {type(exc).__name__}: {exc}")
    return counter


def energy_counter(device: str, device_index: int = 0):
    """The counter for ``device``: NVML on cuda, RAPL on cpu; NoCounter with the reason where there is none."""
    if str(device).startswith("cuda"):
        try:
            nvml, handle = nvml_handle(device_index)
            counter = NvmlCounter(handle, nvml)
            counter.snapshot()  # a GPU without the counter (pre-Volta, a MIG slice) says so here, not mid-run
            return counter
        except Exception as exc:  # no nvidia-ml-py, no driver library, counter not supported
            return NoCounter(f"NVML unavailable ({type(exc).__name__}: {exc})")
    return rapl_counter()


@dataclass
class Window:
    calls: int
    seconds: float
    joules: float | None
    reason: str = ""          # why joules is None
    extended: bool = False    # the minimum window made it longer than asked


def run_window(step, sync, counter, duration_s: float, min_s: float = MIN_WINDOW_S,
               min_calls: int = MIN_WINDOW_CALLS, clock=time.perf_counter) -> Window:
    """Call ``step(i)`` for ``duration_s`` seconds (``sync()`` before the start and at the end); with an energy
    counter the window lasts at least ``min_s`` and ``min_calls`` calls, extended until both are met."""
    target_s = max(duration_s, min_s) if counter.available else duration_s
    want_calls = min_calls if counter.available else 1
    sync()
    e0 = counter.snapshot()
    t0 = clock()
    calls = 0
    while True:
        step(calls)
        calls += 1
        if calls >= want_calls and clock() - t0 >= target_s:
            break
    sync()
    seconds = clock() - t0
    e1 = counter.snapshot()
    joules, reason = counter.joules_between(e0, e1), counter.reason
    if joules is not None and joules <= 0:
        joules, reason = None, f"the {counter.source} counter did not advance over {seconds:.3g} s"
    extended = counter.available and (seconds > duration_s and (min_s > duration_s or calls == want_calls))
    return Window(calls, seconds, joules, reason, extended)


class EnergyMeter:
    """Joules and seconds of the block it wraps, from ``energy_counter``'s counter: NVML on cuda. On cpu it reads no
    counter (the benchmark scripts that use it measure GPUs; `greenrt bench` reads RAPL through run_window)."""

    def __init__(self, device: str = "cuda", index: int = 0):
        self.joules: float | None = None
        self.seconds: float = 0.0
        self._counter = energy_counter(device, index) if str(device).startswith("cuda") else \
            NoCounter("CPU (NVML measures GPUs only)")
        self.reason = self._counter.reason

    def __enter__(self):
        self._t0 = time.perf_counter()
        self._e0 = self._counter.snapshot()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self._t0
        self.joules = self._counter.joules_between(self._e0, self._counter.snapshot())
        return False

    @property
    def watts(self) -> float | None:
        return self.joules / self.seconds if self.joules is not None and self.seconds > 0 else None
