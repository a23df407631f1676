"""Profile a server process with py-spy during a storm, and boil the samples down to the hot spots."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

_LINE_NUMBER = re.compile(r":\d+\)$")
# A sample whose stack holds one of these is a thread waiting (the event loop in epoll, an idle pool thread).
_IDLE_FRAMES = ("epoll_wait", "_queue_SimpleQueue_get", "PyThread_acquire_lock_timed")


def start_py_spy(pid: int, seconds: float, raw_path: Path, native: bool = True) -> subprocess.Popen[bytes] | None:
    """`py-spy record` in collapsed-stack ("raw") format; None when py-spy is not installed."""
    binary = shutil.which("py-spy")
    if binary is None:
        return None
    command = [
        binary,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(max(1, round(seconds))),
        "--rate",
        "250",
        "--format",
        "raw",
        "--output",
        str(raw_path),
    ]
    if native:
        command.append("--native")
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _function(frame: str) -> str:
    """`name (path/to/file.py:123)` → `name (file.py)`: aggregate over lines of one function."""
    frame = _LINE_NUMBER.sub(")", frame)
    if "(" in frame:
        name, _, where = frame.partition(" (")
        return f"{name} ({Path(where.rstrip(')')).name})"
    return frame


def summarize(raw_path: Path, top: int = 40) -> str:
    """Self and inclusive shares of the busy samples per function, from py-spy's collapsed stacks."""
    self_counts: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    idle = 0
    for line in raw_path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        if any(marker in stack for marker in _IDLE_FRAMES):
            idle += count
            continue
        frames = [_function(f) for f in stack.split(";")]
        total += count
        self_counts[frames[-1]] += count
        for function in set(frames):
            inclusive[function] += count
    if total == 0:
        return "no samples"
    lines = [f"{total} busy samples ({idle} idle ones left out; shares below are of the busy ones)", ""]
    lines.append("self time (top functions):")
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in self_counts.most_common(top)]
    lines += ["", "inclusive time (top functions):"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in inclusive.most_common(top)]
    return "\n".join(lines)
