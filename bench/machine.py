"""The machine and package versions every benchmark prints above its table."""

from __future__ import annotations

import os
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

DEFAULT_PACKAGES = ("prefect", "frictionless", "duckdb", "pyarrow")


def describe(packages: tuple[str, ...] = DEFAULT_PACKAGES) -> str:
    """Two lines: CPU, cores, memory and OS; Python, the packages' versions and the load average."""
    cpu, mem = "?", "?"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
        kib = int(next(x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal")).split()[1])
        mem = f"{kib / 1024**2:.1f} GiB"
    except (OSError, StopIteration):
        pass

    def v(p: str) -> str:
        try:
            return f"{p} {version(p)}"
        except PackageNotFoundError:
            return f"{p} (absent)"

    return (f"- machine: {cpu}, {os.cpu_count()} cores, {mem}, {platform.platform()}\n"
            f"- Python {platform.python_version()}; {', '.join(v(p) for p in packages)}; "
            f"load average {os.getloadavg()[0]:.2f}")
