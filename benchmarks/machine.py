"""The machine a benchmark ran on and how busy it was, recorded beside its figures: on a shared
machine the same code times differently with the load."""

from __future__ import annotations

import os
import platform

_LOAD_AT_START = os.getloadavg()[0]  # imported as the script starts, before its own work


def machine_note() -> str:
    """CPUs, architecture and the 1-minute load average at the script's start and now, e.g.
    ``2 CPUs (x86_64); 1-minute load average 0.4 at the start, 1.1 at the end (...)``."""
    return (
        f"{os.cpu_count()} CPUs ({platform.machine()}); 1-minute load average "
        f"{_LOAD_AT_START:.1f} at the start, {os.getloadavg()[0]:.1f} at the end "
        "(this benchmark's own processes included)"
    )
