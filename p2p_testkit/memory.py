"""Peak memory of this process while a benchmark configuration runs.

On CPU the peak resident set size (/proc/self/status VmHWM after resetting it through
/proc/self/clear_refs at start(); getrusage's ru_maxrss where that is not possible); on CUDA
torch.cuda.max_memory_allocated. "activation" = peak minus the value at start().
"""

from __future__ import annotations

import gc
import resource

import torch


def _status_kb(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class PeakMemory:
    """Peak memory of this process from `start()` on, in MiB."""

    def __init__(self, device: str):
        self.device = device
        self.method = None

    def start(self):
        gc.collect()
        if self.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
            self.method = "torch.cuda.max_memory_allocated"
            return
        self.base = (_status_kb("VmRSS") or 0) * 1024
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
            self.method = "VmHWM (peak RSS, reset after the build)"
        except OSError:
            self.method = "ru_maxrss (whole process)"

    def result(self) -> dict:
        if self.device == "cuda":
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
        elif self.method.startswith("VmHWM"):
            peak = (_status_kb("VmHWM") or 0) * 1024
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        mib = 1024 * 1024
        return {
            "peak_mib": round(peak / mib, 1),
            "base_mib": round(self.base / mib, 1),
            "activation_mib": round(max(peak - self.base, 0) / mib, 1),
            "memory_method": self.method,
        }
