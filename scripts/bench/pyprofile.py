"""Run a Python module under cProfile, switched on and off by signals, for `scripts.bench.instructions --python`:

    FE_BENCH_PROFILE_OUT=/tmp/out.prof python -m scripts.bench.pyprofile <python> -m fe.cli serve ...

(the arguments after this module are a Python command line, as fe_server.FeServer builds it; the interpreter named
first is this one). SIGUSR1 clears the profile and starts it, then creates `<out>.started`; SIGUSR2 stops it and
writes the stats to `<out>` (through a temporary file, so a reader never sees half of it). Times are the thread's
CPU time. cProfile sees the main thread only: fe's event loop, where logins run (password hashing off the loop is
not in it).
"""

from __future__ import annotations

import cProfile
import os
import runpy
import signal
import sys
import time
from pathlib import Path
from types import FrameType

OUT_ENV = "FE_BENCH_PROFILE_OUT"


def main() -> None:
    args = sys.argv[1:]
    if len(args) < 3 or args[1] != "-m":
        raise SystemExit("usage: python -m scripts.bench.pyprofile <python> -m <module> [args...]")
    out = Path(os.environ[OUT_ENV])
    profiler = cProfile.Profile(time.thread_time)  # CPU time: a wait in epoll costs nothing

    def start(_signum: int, _frame: FrameType | None) -> None:
        profiler.disable()
        profiler.clear()
        profiler.enable()
        out.with_name(out.name + ".started").touch()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        profiler.disable()
        partial = out.with_name(out.name + ".partial")
        profiler.dump_stats(partial)
        partial.rename(out)

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    module = args[2]
    sys.argv = [module, *args[3:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
