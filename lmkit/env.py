"""Where the course runs: versions and the best available device (CUDA → MPS → CPU)."""

from __future__ import annotations

import os
import platform
import sys

import torch

__all__ = ["device_name", "environment_report", "pick_device"]

_KNOWN = ("cpu", "cuda", "mps")


def pick_device(preferred: str | None = None) -> torch.device:
    """The device to compute on: ``preferred`` if given, else CUDA, then MPS, then CPU.

    ``LMKIT_DEVICE`` in the environment overrides the automatic choice. Asking for a
    device that is not available raises ``RuntimeError`` that says what is.
    """
    choice = preferred or os.environ.get("LMKIT_DEVICE") or None
    available = ["cpu"]
    if torch.cuda.is_available():
        available.insert(0, "cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        available.insert(1 if "cuda" in available else 0, "mps")
    if choice is None:
        return torch.device(available[0])
    kind = str(choice).split(":")[0]
    if kind not in _KNOWN:
        raise ValueError(f"unknown device {choice!r}: use one of {', '.join(_KNOWN)}")
    if kind not in available:
        raise RuntimeError(
            f"device {choice!r} is not available on this machine; available: {', '.join(available)}"
        )
    return torch.device(choice)


def device_name(device: torch.device | str) -> str:
    """A readable name for ``device``: the GPU's model, or the CPU's (for benchmark records)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or device.type


def environment_report() -> dict[str, str]:
    """Versions of what the course needs and the device it will use, as a dict of strings."""
    import matplotlib
    import numpy

    report = {
        "python": sys.version.split()[0],
        "platform": f"{platform.system()} {platform.machine()}",
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "matplotlib": matplotlib.__version__,
        "device": str(pick_device()),
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        report["gpu"] = f"{props.name}, {props.total_memory / 2**30:.0f} GiB"
        report["bf16"] = str(torch.cuda.is_bf16_supported())
    report["cpu threads"] = str(torch.get_num_threads())
    return report
