"""What the machine does with an idle CPU: the context every latency figure needs.

A process that blocks (waiting for Redis' reply, for a pipe, in ``epoll``) lets its CPU go
idle, and waking it again costs what the idle state costs. On a virtual machine whose guest
halts an idle vCPU at once (Linux's ``haltpoll`` cpuidle driver with ``guest_halt_poll_ns``
0), every wake-up goes through the host: on the 2-core VMs these benchmarks run on, a PING
round trip costs ~55 µs waiting in a blocking ``recv`` and ~15 µs once idle vCPUs poll for
200 µs before they halt (benchmarks/README.md, "The machine's idle CPUs"). So the benchmarks
record these settings with their figures. Reading them needs no privilege; nothing here
changes them.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["describe", "idle_state"]

_CPUIDLE = Path("/sys/devices/system/cpu/cpuidle")
_HALTPOLL = Path("/sys/module/haltpoll/parameters/guest_halt_poll_ns")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def idle_state() -> dict[str, str | int | None]:
    """The cpuidle driver and governor, and the guest's halt-poll time in ns (None where the
    machine has no such setting: bare metal, another OS, another hypervisor's guest)."""
    poll = _read(_HALTPOLL)
    return {"cpuidle_driver": _read(_CPUIDLE / "current_driver"),
            "cpuidle_governor": _read(_CPUIDLE / "current_governor"),
            "guest_halt_poll_ns": int(poll) if poll is not None and poll.isdigit() else None}


def describe(state: dict[str, str | int | None]) -> str:
    """One line for a report, e.g. "cpuidle haltpoll, guest_halt_poll_ns 0 (an idle vCPU
    halts at once: every wake-up goes through the host)"."""
    text = f"cpuidle {state.get('cpuidle_driver') or 'unknown'}"
    poll = state.get("guest_halt_poll_ns")
    if poll is not None:
        text += f", guest_halt_poll_ns {poll}"
        if poll == 0:
            text += " (an idle vCPU halts at once: every wake-up goes through the host)"
    return text
