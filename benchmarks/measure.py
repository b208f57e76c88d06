"""Running a configuration's processes and measuring them: wall time, CPU of the tree, RSS.

CPU time comes from ``wait4`` (the kernel's user+sys of each process and of
every descendant it reaped), so nothing is lost between samples. RSS is sampled
(psutil, every ``interval`` seconds) across the whole tree: the peak of the sum,
and the peak of any single process from the kernel's VmHWM. (``wait4``'s
maxrss is not used: it counts the forked parent's memory before ``exec``.)
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil


@dataclass
class Measurement:
    """What one run of a configuration cost."""

    wall: float = 0.0
    cpu_user: float = 0.0
    cpu_sys: float = 0.0
    peak_rss_sum: int = 0
    peak_rss_max: int = 0
    exit_codes: list[int] = field(default_factory=list)
    samples: list[tuple[float, int]] = field(default_factory=list)  # (seconds since start, RSS sum)

    @property
    def cpu(self) -> float:
        return self.cpu_user + self.cpu_sys


def _peak_rss(pid: int) -> int:
    """The kernel's high-water mark of a process's RSS (VmHWM), in bytes; 0 if unreadable."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def _tree_rss(pids: list[int]) -> tuple[int, int]:
    """The RSS summed over the trees of ``pids`` now, and the largest peak RSS of any process in them."""
    total = biggest = 0
    for pid in pids:
        try:
            top = psutil.Process(pid)
            procs = [top, *top.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for p in procs:
            try:
                rss = p.memory_info().rss
            except psutil.NoSuchProcess:
                continue
            total += rss
            biggest = max(biggest, rss, _peak_rss(p.pid))
    return total, biggest


def run_processes(
    commands: list[list[str]],
    *,
    env: dict[str, str] | list[dict[str, str]] | None = None,
    cwd: Path | str | None = None,
    logs: list[Path] | None = None,
    interval: float = 0.2,
    timeout: float = 3600.0,
    on_sample: Callable[[float, int], None] | None = None,
) -> Measurement:
    """Start every command at once, wait for all, and return the measurement of the lot."""
    envs = env if isinstance(env, list) else [env] * len(commands)
    out = Measurement()
    handles = []
    started = time.monotonic()
    procs = []
    for i, cmd in enumerate(commands):
        log = open(logs[i], "wb") if logs else subprocess.DEVNULL  # noqa: SIM115 - closed below
        handles.append(log)
        procs.append(subprocess.Popen(cmd, env=envs[i], cwd=cwd, stdout=log, stderr=subprocess.STDOUT))
    running = {p.pid: p for p in procs}
    codes: dict[int, int] = {}
    try:
        while running:
            for pid in list(running):
                done, status, usage = os.wait4(pid, os.WNOHANG)
                if done:
                    codes[pid] = os.waitstatus_to_exitcode(status)
                    running[pid].returncode = codes[pid]  # reaped here, not by Popen
                    del running[pid]
                    out.cpu_user += usage.ru_utime
                    out.cpu_sys += usage.ru_stime
            if not running:
                break
            now = time.monotonic() - started
            total, biggest = _tree_rss(list(running))
            out.peak_rss_sum = max(out.peak_rss_sum, total)
            out.peak_rss_max = max(out.peak_rss_max, biggest)
            out.samples.append((now, total))
            if on_sample:
                on_sample(now, total)
            if now > timeout:
                for p in running.values():
                    p.kill()
            time.sleep(interval)
    finally:
        out.wall = time.monotonic() - started
        for p in running.values():
            p.kill()
            p.wait()
        for h in handles:
            if h is not subprocess.DEVNULL:
                h.close()
    out.exit_codes = [codes.get(p.pid, -9) for p in procs]
    return out


def files_under(
    root: Path, skip_names: tuple[str, ...] = ("manifest.json",), skip_suffixes: tuple[str, ...] = ()
) -> tuple[int, int, float, float]:
    """Count, total bytes, first and last mtime of the files under ``root`` (temp and skipped files excluded)."""
    count = size = 0
    first, last = float("inf"), 0.0
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            if name in skip_names or name.startswith(".") or name.endswith((".tmp", ".part", *skip_suffixes)):
                continue
            st = os.stat(os.path.join(dirpath, name))
            count += 1
            size += st.st_size
            first = min(first, st.st_mtime)
            last = max(last, st.st_mtime)
    return count, size, (first if count else 0.0), last
