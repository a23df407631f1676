"""Where fe's Python time goes while it relays: py-spy's collapsed stacks, each sample put in one part of the
gateway by the innermost frame that says which (frames of shared helpers — the ssl module, fe's packet codec,
dataclass constructors, asyncio's socket transport — say nothing and are looked past)."""

from __future__ import annotations

import re
from collections import Counter

# (part, markers): the first part, from the innermost frame outward, that one of whose markers appears in a frame.
PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("routing: is_fe_statement (sqlglot's tokenizer)", ("sqlglot/", "fe/sql/routing.py")),
    ("upstream leg: asyncio streams and SSL transport", ("asyncio/sslproto.py", "asyncio/streams.py")),
    ("response tracking (ResponseTracker, OK parsing)", ("fe/upstream/response.py", "fe/upstream/packets.py")),
    ("upstream protocol and connection", ("fe/upstream/protocol.py", "fe/upstream/connection.py")),
    ("client leg: PacketStream, TLS over memory BIOs, packets", ("fe/server/stream.py", "fe/mysql/")),
    ("relay and the session's command loop", ("fe/server/relay.py", "fe/server/connection.py")),
    ("event loop (asyncio), socket calls", ("asyncio/",)),
)
NEUTRAL = ("(ssl.py", "fe/mysql/codec.py", "(<string>", "asyncio/selector_events.py", "asyncio/transports.py")
OTHER = "other"

_FRAME_NAME = re.compile(r"^(.*) \(([^()]*):\d+\)$")


def part_of(frames: list[str]) -> str:
    for frame in reversed(frames):
        if any(marker in frame for marker in NEUTRAL):
            continue
        for part, markers in PARTS:
            if any(marker in frame for marker in markers):
                return part
    return OTHER


def parts(raw: str) -> list[tuple[str, float]]:
    """The share of the samples in each part, largest first; `raw` is py-spy's --format raw output."""
    counts: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        counts[part_of(stack.split(";"))] += count
        total += count
    if not total:
        return []
    return [(part, count / total) for part, count in counts.most_common()]


def top_functions(raw: str, top: int = 12) -> list[tuple[str, float]]:
    """The functions the samples were in (innermost frame, line numbers dropped), with their shares."""
    counts: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        leaf = stack.rsplit(";", 1)[-1]
        match = _FRAME_NAME.match(leaf)
        counts[f"{match.group(1)} ({match.group(2)})" if match else leaf] += count
        total += count
    return [(name, count / total) for name, count in counts.most_common(top)] if total else []


def render(raw: str) -> str:
    samples = sum(int(line.rpartition(" ")[2]) for line in raw.splitlines() if line.rpartition(" ")[2].isdigit())
    lines = [f"{samples} samples holding the GIL (fe's Python work)", "", "by part of the gateway:"]
    lines += [f"  {100 * share:5.1f}%  {part}" for part, share in parts(raw)]
    lines += ["", "innermost functions:"]
    lines += [f"  {100 * share:5.1f}%  {name}" for name, share in top_functions(raw)]
    return "\n".join(lines)
