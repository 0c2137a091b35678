"""The stack's processes: started in their own session with output to a log file, recorded in
``<state_dir>/stack.json``, checked against their recorded command line (``/proc/<pid>/cmdline``,
or ``ps`` without /proc) so that a reused pid is never signalled, and stopped (SIGTERM to the
process group, SIGKILL after a timeout)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pipelines.devstack.messages import Log

HOST = "127.0.0.1"  # every service of the stack listens here only
STOP_TIMEOUT_S = 20.0

_STATE_FILE = "stack.json"

# Processes started by this interpreter, so they can be reaped (no zombies, no
# "subprocess still running" warnings) when we stop them from the same process.
_children: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class Service:
    """One process of the stack, as recorded in stack.json."""

    name: str
    pid: int
    cmdline: tuple[str, ...]
    port: int
    address: str
    log: Path

    def describe(self) -> str:
        return f"{self.name} (pid {self.pid}, {self.address})"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "cmdline": list(self.cmdline), "log": str(self.log)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Service:
        return cls(
            name=str(data["name"]),
            pid=int(data["pid"]),
            cmdline=tuple(str(arg) for arg in data["cmdline"]),
            port=int(data["port"]),
            address=str(data["address"]),
            log=Path(data["log"]),
        )


# ----------------------------------------------------------------- state file


def state_path(state_dir: Path) -> Path:
    return state_dir / _STATE_FILE


def save_state(state_dir: Path, services: Iterable[Service]) -> None:
    state = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "services": [service.to_json() for service in services],
    }
    path = state_path(state_dir)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.replace(path)


def load_state(state_dir: Path) -> list[Service]:
    """The recorded services; empty when there is no (readable) state file."""
    try:
        data = json.loads(state_path(state_dir).read_text())
        return [Service.from_json(item) for item in data["services"]]
    except (OSError, ValueError, KeyError, TypeError):
        return []


# ------------------------------------------------------------------ processes


def start_process(
    name: str,
    command: list[str],
    *,
    port: int,
    address: str,
    log_path: Path,
    cwd: Path,
    env: dict[str, str],
) -> Service:
    """Start ``command`` in its own session with output going to ``log_path``."""
    cwd.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as output:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _children[process.pid] = process
    return Service(name, process.pid, tuple(command), port, address, log_path)


def _read_cmdline(pid: int) -> tuple[str, ...] | None:
    """The argv of ``pid``, or None if there is no such (non-zombie) process."""
    proc = Path(f"/proc/{pid}/cmdline")
    if Path("/proc/self").exists():
        try:
            raw = proc.read_bytes()
        except OSError:
            return None
        return tuple(os.fsdecode(arg) for arg in raw.split(b"\0")[:-1]) or None
    return _read_cmdline_with_ps(pid)


def _read_cmdline_with_ps(pid: int) -> tuple[str, ...] | None:
    """Fallback without /proc (macOS); whitespace inside arguments cannot be told apart."""
    result = subprocess.run(["ps", "-ww", "-o", "args=", "-p", str(pid)], capture_output=True, text=True)
    line = result.stdout.strip()
    return tuple(line.split()) if result.returncode == 0 and line else None


def is_alive(service: Service) -> bool:
    """True while ``service.pid`` runs the very command we started (guards against pid reuse)."""
    child = _children.get(service.pid)
    if child is not None and child.poll() is not None:  # reap our own exited child
        del _children[service.pid]
        return False
    cmdline = _read_cmdline(service.pid)
    if cmdline is None:
        return False
    if Path("/proc/self").exists():
        return cmdline == service.cmdline
    return cmdline == tuple(" ".join(service.cmdline).split())


def exit_code(service: Service) -> int | None:
    """The exit code if ``service`` has exited (-1 when it is not our child), else None."""
    child = _children.get(service.pid)
    if child is not None:
        return child.poll()
    return None if is_alive(service) else -1


def signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        if os.getpgid(pid) == pid:  # started with start_new_session: leads its own group
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def wait_until_gone(services: Iterable[Service], deadline: float) -> list[Service]:
    """Wait until ``deadline`` for the services to exit; return those still alive."""
    remaining = list(services)
    while remaining:
        remaining = [service for service in remaining if is_alive(service)]
        if not remaining or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    return remaining


def stop_services(services: Iterable[Service], log: Log, timeout: float = STOP_TIMEOUT_S) -> list[str]:
    """SIGTERM the process groups of the live services, SIGKILL them after ``timeout``."""
    alive = [service for service in services if is_alive(service)]
    for service in alive:
        signal_group(service.pid, signal.SIGTERM)
    stubborn = wait_until_gone(alive, time.monotonic() + timeout)
    for service in stubborn:
        log(f"{service.name} (pid {service.pid}) did not stop within {timeout:.0f} s; killing it")
        if is_alive(service):
            signal_group(service.pid, signal.SIGKILL)
    wait_until_gone(stubborn, time.monotonic() + 5.0)
    return [service.describe() for service in alive]
