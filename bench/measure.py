"""Measuring a step: wall time, peak memory, and the machine it ran on.

Peak memory of one step, per step, inside one process:

- CUDA: ``torch.cuda.reset_peak_memory_stats()`` before, ``max_memory_allocated()`` after (tensors only).
- CPU (Linux): the resident set's high-water mark (``VmHWM``) is reset before the step by writing 5 to
  ``/proc/self/clear_refs``, after returning freed heap pages to the system (``malloc_trim``), so that
  memory another mode freed earlier cannot hide this step's growth. Both the peak and the growth
  over the resident set at the start are reported. Where the mark cannot be reset (not Linux, or
  ``/proc`` read-only) the process-wide peak is reported and said to be such.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import platform
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MIB = 2**20


def _read_status_kib(field: str) -> int | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    m = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    return int(m.group(1)) if m else None


def rss_bytes() -> int:
    kib = _read_status_kib("VmRSS")
    if kib is not None:
        return kib * 1024
    import psutil

    return psutil.Process().memory_info().rss


def _process_peak_bytes() -> int:
    kib = _read_status_kib("VmHWM")
    if kib is not None:
        return kib * 1024
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # macOS reports bytes, Linux KiB


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


_LIBC = None


def trim_heap() -> None:
    """Give freed heap memory back to the system (glibc), so the resident set is what is in use."""
    global _LIBC
    gc.collect()
    if _LIBC is None:
        name = ctypes.util.find_library("c")
        try:
            _LIBC = ctypes.CDLL(name) if name else False
        except OSError:
            _LIBC = False
    if _LIBC and hasattr(_LIBC, "malloc_trim"):
        _LIBC.malloc_trim(0)


@dataclass
class MemorySample:
    peak: int  # bytes: resident set (CPU) or allocated tensors (CUDA) at the step's highest point
    start: int  # the same measure just before the step
    method: str

    @property
    def increase(self) -> int:
        return max(0, self.peak - self.start)


class PeakMemory:
    """``with PeakMemory(device) as m: step()`` then ``m.sample``."""

    def __init__(self, device: Any) -> None:
        self.device = device
        self.sample: MemorySample | None = None

    def __enter__(self) -> PeakMemory:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start = torch.cuda.memory_allocated(self.device)
            self._method = "torch.cuda.max_memory_allocated, reset before the step"
        else:
            trim_heap()
            reset = _reset_peak()
            self._start = rss_bytes()
            self._method = (
                "peak resident set of the step (VmHWM reset before it, freed heap trimmed)"
                if reset
                else "process-wide peak resident set (this system cannot reset it per step)"
            )
        return self

    def __exit__(self, *exc: object) -> None:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
        else:
            peak = _process_peak_bytes()
        self.sample = MemorySample(peak, self._start, self._method)


class StepTimer:
    """Wall time of a block, waiting for the GPU at both ends."""

    def __init__(self, device: Any) -> None:
        self.device = device
        self.seconds = 0.0

    def _sync(self) -> None:
        if self.device.type == "cuda":
            import torch

            torch.cuda.synchronize(self.device)

    def __enter__(self) -> StepTimer:
        self._sync()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self._sync()
        self.seconds = time.perf_counter() - self._t0


def resolve_device(name: str = "auto") -> Any:
    import torch

    from domainlm.errors import UserError

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: no CUDA GPU is available here")
    return device


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def machine(device: Any) -> dict[str, Any]:
    """What the figures were measured on."""
    import torch
    import transformers

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
    }
    try:
        import psutil

        info["memory_gib"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info
