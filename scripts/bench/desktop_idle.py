#!/usr/bin/env python3
"""Measures the desktop app's idle cost under Xvfb.

Reports, for the release build of herald-desktop:
  - time from launch until the main window is mapped (median of 3 runs);
  - memory (PSS) of the app and all its child processes (the WebKit web and
    network processes) with the window open, after closing it, and when
    started in the tray only (--hidden);
  - CPU time and context switches of the whole process tree over an idle
    interval with the window closed, as a measure of periodic wake-ups.

Run it through scripts/bench/desktop-idle, which starts Xvfb, a window
manager (openbox, so the window can be closed as a user would) and D-Bus.
Everything stays on this machine: the app's relay listens on 127.0.0.1.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

APP = Path(sys.argv[1]).resolve()
IDLE_SECONDS = int(os.environ.get("IDLE_SECONDS", "30"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        stack.extend(children.get(current, []))
    return found


def pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def names(pids: list[int]) -> list[str]:
    result = []
    for pid in pids:
        try:
            result.append(Path(f"/proc/{pid}/comm").read_text().strip())
        except OSError:
            pass
    return result


def tree_pss_mib(pid: int) -> float:
    return sum(pss_kib(p) for p in descendants(pid)) / 1024


def thread_counters(pid: int) -> dict[tuple[int, int], tuple[float, int]]:
    """CPU seconds and context switches of every thread in the tree, keyed
    by (process, thread), so threads that exit between two samples do not
    count."""
    ticks = os.sysconf("SC_CLK_TCK")
    counters = {}
    for process in descendants(pid):
        try:
            for task in Path(f"/proc/{process}/task").iterdir():
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                cpu = (int(fields[11]) + int(fields[12])) / ticks
                switches = 0
                for line in (task / "status").read_text().splitlines():
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        switches += int(line.split()[1])
                counters[(process, int(task.name))] = (cpu, switches)
        except OSError:
            continue
    return counters


def idle_delta(pid: int, seconds: int) -> tuple[float, int, int]:
    """CPU seconds, context switches and threads that woke, over `seconds`."""
    before = thread_counters(pid)
    time.sleep(seconds)
    after = thread_counters(pid)
    cpu = switches = woke = 0
    for key, (cpu_after, switches_after) in after.items():
        cpu_before, switches_before = before.get(key, (0.0, 0))
        cpu += cpu_after - cpu_before
        switches += switches_after - switches_before
        woke += switches_after != switches_before
    return cpu, switches, woke


def window_mapped() -> bool:
    listing = subprocess.run(["wmctrl", "-l"], capture_output=True, text=True).stdout
    return any(line.rstrip().endswith(" Herald") for line in listing.splitlines())


def launch(home: Path, *args: str) -> subprocess.Popen:
    env = dict(os.environ)
    env.update(
        HOME=str(home / "user"),
        HERALD_HOME=str(home / "herald"),
        HERALD_SECRET_STORE="file",
        HERALD_PORT=str(free_port()),
        LANG="en_US.UTF-8",
    )
    (home / "user").mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([str(APP), *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    time.sleep(1)


def time_to_window() -> float:
    with tempfile.TemporaryDirectory() as folder:
        started = time.monotonic()
        process = launch(Path(folder))
        try:
            while not window_mapped():
                if time.monotonic() - started > 30:
                    raise RuntimeError("the window did not appear within 30 s")
                time.sleep(0.005)
            return time.monotonic() - started
        finally:
            stop(process)


def main() -> None:
    times = [time_to_window() for _ in range(3)]
    print(f"time to window (median of 3): {statistics.median(times) * 1000:.0f} ms  (runs: {', '.join(f'{t * 1000:.0f}' for t in times)} ms)")

    with tempfile.TemporaryDirectory() as folder:
        process = launch(Path(folder))
        while not window_mapped():
            time.sleep(0.05)
        time.sleep(5)
        print(f"PSS, window open: {tree_pss_mib(process.pid):.1f} MiB  ({', '.join(names(descendants(process.pid)))})")

        subprocess.run(["wmctrl", "-c", "Herald"], check=True)
        time.sleep(5)
        tree = descendants(process.pid)
        print(f"PSS, window closed: {tree_pss_mib(process.pid):.1f} MiB  ({', '.join(names(tree))})")
        print(f"window still mapped after close: {window_mapped()}, app running: {process.poll() is None}")

        cpu, switches, woke = idle_delta(process.pid, IDLE_SECONDS)
        print(
            f"idle {IDLE_SECONDS} s, window closed: CPU {cpu * 1000:.0f} ms, "
            f"{switches / IDLE_SECONDS:.2f} context switches/s in {woke} threads (whole tree)"
        )
        stop(process)

    with tempfile.TemporaryDirectory() as folder:
        process = launch(Path(folder), "--hidden")
        time.sleep(6)
        print(f"PSS, started hidden (tray only): {tree_pss_mib(process.pid):.1f} MiB  ({', '.join(names(descendants(process.pid)))})")
        stop(process)


if __name__ == "__main__":
    main()
