"""Instructions per login, counted by valgrind's callgrind inside the fe process: a figure the machine's noise
cannot move (CPU time on this shared machine drifts by tens of percent), for comparing two versions of fe.

    python -m scripts.bench.instructions                      # the three cases below, 300 logins each
    python -m scripts.bench.instructions --credential fresh --event-loop uvloop
    python -m scripts.bench.instructions --save /tmp/dumps    # keep the dumps for callgrind_annotate
    python -m scripts.bench.instructions --python             # and the Python functions behind the difference

The cases: `fresh`, a new ES256 token every login (the signature is checked each time); `reused`, one token
logging in again and again (fe's verified-token cache answers); `password`, caching_sha2_password on its fast path
(the scramble checked against the in-memory cache; the first login's full authentication is in the warm-up).
`all` (the default) runs the three and compares the reused-token login with the password login, function by
function: the project's goal is that the first costs at most 5% more than the second. Callgrind sees the
interpreter, not the Python functions it runs; `--python` adds a cProfile run of fe (no valgrind) that lists the
Python functions whose calls differ between the two logins.

fe runs under `valgrind --tool=callgrind` (apt-get install valgrind); the lean client logs in 20 times to warm
up, the counters are zeroed (`callgrind_control -z`), then N logins run one after another (connect → TLS → login →
SELECT 1 → quit) and the counters are dumped. Printed: instructions per login in all, per shared object, and
inclusive for the TLS handshake's and the token check's main calls. User space only: the kernel's share (about
15% of fe's CPU time) is not counted. Valgrind hides some CPU features, so OpenSSL may take other code paths
than natively (e.g. mulq instead of mulx): compare counts with counts, not with time.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import pstats
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from scripts.bench import fe_server, pyprofile
from scripts.bench.mysqlwire import Connection, Credential, Password, Token, client_tls_context

WARM_UP_LOGINS = 20
KINDS = ("fresh", "reused", "password")
REUSED_TO_PASSWORD_GOAL = 1.05
# Inclusive costs worth naming: the handshake and its big parts, and the token's signature check.
NAMED_CALLS = {
    "SSL_do_handshake": "TLS handshake (all of it)",
    "EVP_PKEY_generate": "  key-share key generation",
    "EVP_PKEY_derive": "  key-share derivation",
    "EVP_KDF_derive": "  HKDF (TLS 1.3 key schedule)",
    "EVP_DigestSign": "  CertificateVerify signature",
    "ECPublicKey>::verify": "token signature check (ES256)",
    "RsaPublicKey>::verify": "token signature check (RS256)",
}


@dataclass
class Counts:
    total: int
    by_object: Counter[str]
    # Self cost per function, and calls into it, keyed "function (shared object)".
    by_function: Counter[str] = field(default_factory=Counter)
    calls: Counter[str] = field(default_factory=Counter)


_NAME = re.compile(r"^(ob|cob|fn|cfn)=\((\d+)\)(?: (.*))?$")
_RECURSION = re.compile(r"'\d+$")  # callgrind's mark of a recursion level: one function is one row


def parse_callgrind(text: str) -> Counts:
    """Self cost per shared object and per function, and call counts, from a callgrind dump (events: Ir only).

    Names are compressed: `fn=(7) name` defines id 7, a later `fn=(7)` refers to it (objects have their own ids,
    shared by ob= and cob=; functions theirs, shared by fn= and cfn=)."""
    objects: dict[str, str] = {}
    functions: dict[str, str] = {}
    by_object: Counter[str] = Counter()
    by_function: Counter[str] = Counter()
    calls: Counter[str] = Counter()
    current_object = callee_object = "?"
    current = callee = "?"
    after_calls = False
    for line in text.splitlines():
        match = _NAME.match(line)
        if match:
            kind, ident, name = match.groups()
            table = objects if kind in ("ob", "cob") else functions
            if name is not None:
                table[ident] = name
            name = table.get(ident, "?")
            if kind == "ob":
                current_object = callee_object = Path(name).name
            elif kind == "cob":
                callee_object = Path(name).name
            elif kind == "fn":
                current = f"{_RECURSION.sub('', name)} ({current_object})"
            else:
                callee = f"{_RECURSION.sub('', name)} ({callee_object})"
            continue
        if line.startswith("calls="):
            calls[callee] += int(line[6:].split()[0])
            callee_object = current_object  # a cob= applies to one call only
            after_calls = True
            continue
        if line[:1].isdigit() or line[:1] in "+-*":
            parts = line.split()
            if len(parts) >= 2:
                if after_calls:  # the inclusive cost of a call, already counted in the callee
                    after_calls = False
                    continue
                cost = int(parts[1])
                by_object[current_object] += cost
                by_function[current] += cost
    return Counts(sum(by_object.values()), by_object, by_function, calls)


def named_inclusive(dump: Path) -> dict[str, int]:
    """Inclusive instructions of NAMED_CALLS, from callgrind_annotate."""
    done = subprocess.run(
        ["callgrind_annotate", "--inclusive=yes", "--threshold=100", str(dump)],
        capture_output=True,
        text=True,
        check=True,
    )
    found: dict[str, int] = {}
    for line in done.stdout.splitlines():
        match = re.match(r"^\s*([\d,]+) \(", line)
        if not match:
            continue
        for key in NAMED_CALLS:
            if key in line and key not in found:
                found[key] = int(match.group(1).replace(",", ""))
    return found


async def _logins(server: fe_server.FeServer, user: str, credentials: list[Credential]) -> None:
    tls = client_tls_context()
    for credential in credentials:
        connection = await Connection.open(server.host, server.port, user, credential, tls, timeout=120)
        try:
            rows = await connection.query("SELECT 1")
        finally:
            await connection.quit()
        if rows != [(b"1",)]:
            raise RuntimeError(f"unexpected answer to SELECT 1: {rows!r}")


@dataclass
class Plan:
    """Who logs in with what: the warm-up's credentials, then the timed ones."""

    user: str
    warm: list[Credential]
    timed: list[Credential]
    jwks: dict[str, object]


def plan(kind: str, alg: str, logins: int) -> Plan:
    from cryptography.hazmat.primitives import serialization

    from fe.auth.devtools import mint_token

    keys, jwks = fe_server.make_signing_keys((alg,))
    key = keys[0]
    private_key = serialization.load_pem_private_key(key.private_key_pem, password=None)

    def tokens(count: int, tag: str) -> list[Credential]:
        now = int(time.time())
        claims = fe_server.token_claims()
        return [
            Token(mint_token(private_key, alg, key.kid, {**claims, "iat": now, "exp": now + 3600, "jti": f"{tag}{i}"}))  # type: ignore[arg-type]
            for i in range(count)
        ]

    if kind == "password":
        password: list[Credential] = [Password(fe_server.PASSWORD)]
        return Plan(fe_server.PASSWORD_USER, password * WARM_UP_LOGINS, password * logins, jwks)
    if kind == "reused":
        token = tokens(1, "reused")
        return Plan(fe_server.TOKEN_USER, token * WARM_UP_LOGINS, token * logins, jwks)
    return Plan(fe_server.TOKEN_USER, tokens(WARM_UP_LOGINS, "warm"), tokens(logins, "timed"), jwks)


def drive(
    login_plan: Plan,
    home: Path,
    server_env: dict[str, str],
    command_prefix: list[str],
    start_counting: Callable[[int], None],
    stop_counting: Callable[[int], None],
) -> None:
    """Start fe (under `command_prefix`), warm up, then the timed logins between start_ and stop_counting(pid)."""
    server = fe_server.FeServer(home, extra_env=server_env, command_prefix=command_prefix)
    fe_server.write_jwks(home, login_plan.jwks)
    server.start(timeout=300)
    try:
        fe_server.create_users(server)
        asyncio.run(_logins(server, login_plan.user, login_plan.warm))
        start_counting(server.pid)
        asyncio.run(_logins(server, login_plan.user, login_plan.timed))
        stop_counting(server.pid)
    finally:
        server.stop(timeout=120)


def measure(
    kind: str, alg: str, logins: int, event_loop: str, save: Path | None = None
) -> tuple[Counts, dict[str, int]]:
    """Callgrind's counts for `logins` timed logins of `kind`."""
    for tool in ("valgrind", "callgrind_control", "callgrind_annotate"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is not installed (Debian package: valgrind)")
    login_plan = plan(kind, alg, logins)

    def control(*args: str) -> Callable[[int], None]:
        def run(pid: int) -> None:
            subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True)

        return run

    with tempfile.TemporaryDirectory(prefix="fe-callgrind-") as base:
        out = Path(base) / "callgrind.out"
        prefix = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            f"--log-file={Path(base) / 'valgrind.log'}",
        ]
        env = {"FE_EVENT_LOOP": event_loop}
        drive(login_plan, Path(base) / "home", env, prefix, control("--zero"), control("--dump=timed"))
        dumps = sorted(Path(base).glob("callgrind.out.*"))
        if not dumps:
            raise RuntimeError("callgrind wrote no dump for the timed logins")
        dump = dumps[0]
        if save is not None:
            save.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(dump, save / f"callgrind.{kind}.{alg}.{event_loop}.out")
        return parse_callgrind(dump.read_text(errors="replace")), named_inclusive(dump)


_ADDRESS = re.compile(r" at 0x[0-9a-f]+")
_SOURCE = re.compile(r"\((.+):\d+\)$")


@dataclass(frozen=True)
class PyFunction:
    calls: int
    seconds: float  # own time under the profiler


def python_profile(kind: str, alg: str, logins: int, event_loop: str) -> dict[str, PyFunction]:
    """cProfile's view of the timed logins in fe's main thread (scripts.bench.pyprofile): calls and own CPU time per
    Python function. The call counts are exact; the times are inflated by the profiler itself."""
    login_plan = plan(kind, alg, logins)
    with tempfile.TemporaryDirectory(prefix="fe-cprofile-") as base:
        out = Path(base) / "profile.out"

        def signal_and_wait(signum: int, marker: Path) -> Callable[[int], None]:
            def send(pid: int) -> None:
                os.kill(pid, signum)
                deadline = time.monotonic() + 60
                while not marker.exists():
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"fe under the profiler did not answer signal {signum}")
                    time.sleep(0.02)

            return send

        prefix = [sys.executable, "-m", "scripts.bench.pyprofile"]
        env = {"FE_EVENT_LOOP": event_loop, pyprofile.OUT_ENV: str(out)}
        started = signal_and_wait(signal.SIGUSR1, out.with_name(out.name + ".started"))
        drive(login_plan, Path(base) / "home", env, prefix, started, signal_and_wait(signal.SIGUSR2, out))
        stats = pstats.Stats(str(out)).stats  # type: ignore[attr-defined]
    roots = (str(fe_server.REPO_ROOT) + os.sep, sysconfig.get_paths()["stdlib"] + os.sep)
    functions: dict[str, PyFunction] = {}
    for (filename, line, name), (_primitive, calls, own, _cumulative, _callers) in stats.items():
        where = functools.reduce(lambda path, root: path.removeprefix(root), roots, filename)
        key = f"{name} ({where}:{line})" if filename != "~" else _ADDRESS.sub("", name)  # built-ins: no address
        old = functions.get(key, PyFunction(0, 0.0))
        functions[key] = PyFunction(old.calls + calls, old.seconds + own)
    return functions


def compare_python(reused: dict[str, PyFunction], password: dict[str, PyFunction], n: int, top: int) -> list[str]:
    """Python functions whose calls differ between the two logins, most own time first."""
    none = PyFunction(0, 0.0)
    rows = []
    for name in reused.keys() | password.keys():
        r, p = reused.get(name, none), password.get(name, none)
        if r.calls != p.calls:
            rows.append((r.seconds - p.seconds, name, r, p))
    rows.sort(key=lambda row: -row[0])
    by_file: Counter[str] = Counter()
    for name in reused.keys() | password.keys():
        match = _SOURCE.search(name)
        by_file[match.group(1) if match else "(built-in)"] += reused.get(name, none).seconds
        by_file[match.group(1) if match else "(built-in)"] -= password.get(name, none).seconds
    lines = [
        "Python's own CPU time in fe's main thread by source file, reused − password (cProfile, µs per login; "
        "the profiler inflates small functions, and time shifts with garbage collection):",
        *(
            f"  {1e6 * delta / n:+7.1f} µs  {file}"
            for file, delta in sorted(by_file.items(), key=lambda item: -abs(item[1]))[:top]
        ),
        "Python functions in fe's main thread whose calls differ, reused − password (cProfile; per login: calls "
        "reused/password, own CPU µs under the profiler reused/password):",
    ]
    for delta, name, r, p in rows[:top]:
        lines.append(
            f"  {1e6 * delta / n:+7.1f} µs  calls {r.calls / n:5.1f} / {p.calls / n:5.1f}  "
            f"{1e6 * r.seconds / n:6.1f} / {1e6 * p.seconds / n:6.1f} µs  {name}"
        )
    return lines


def print_counts(kind: str, counts: Counts, named: dict[str, int], n: int, alg: str, event_loop: str) -> None:
    print(f"{counts.total / n / 1e6:.3f} M instructions per login ({kind}, {alg}, {event_loop}; {n} logins)")
    for name, value in counts.by_object.most_common(8):
        print(f"  {100 * value / counts.total:5.1f}%  {value / n / 1e3:8.0f} k  {name}")
    for key, label in NAMED_CALLS.items():
        if key in named:
            print(f"  inclusive {named[key] / n / 1e3:8.0f} k  {label}")


def compare(reused: Counts, password: Counts, n: int, top: int = 25) -> list[str]:
    """The reused-token login against the password login: the ratio, and the functions whose self cost differs
    most (per login), with their calls per login in each."""
    ratio = reused.total / password.total
    verdict = "met" if ratio <= REUSED_TO_PASSWORD_GOAL else "not met"
    lines = [
        f"reused token / password = {reused.total / n / 1e6:.3f} M / {password.total / n / 1e6:.3f} M = {ratio:.3f} "
        f"(+{(reused.total - password.total) / n / 1e3:.0f} k per login; goal at most {REUSED_TO_PASSWORD_GOAL:.2f}: "
        f"{verdict})",
        "functions by self cost, reused − password (k instructions per login; calls per login reused/password):",
    ]
    delta = Counter(reused.by_function)
    delta.subtract(password.by_function)
    biggest = sorted(delta.items(), key=lambda item: -abs(item[1]))[:top]
    for name, value in biggest:
        lines.append(
            f"  {value / n / 1e3:+8.1f} k  {reused.by_function[name] / n / 1e3:8.1f} / "
            f"{password.by_function[name] / n / 1e3:8.1f} k  calls {reused.calls[name] / n:6.1f} / "
            f"{password.calls[name] / n:6.1f}  {name}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.bench.instructions",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--logins", type=int, default=300, help="timed logins per case (default 300)")
    parser.add_argument(
        "--credential",
        choices=(*KINDS, "all"),
        default="all",
        help="a fresh token each login, one token reused, a caching_sha2 password, or all three (default)",
    )
    parser.add_argument("--alg", choices=("ES256", "RS256"), default="ES256")
    parser.add_argument("--event-loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument("--save", type=Path, metavar="DIR", help="keep the callgrind dumps in DIR")
    parser.add_argument("--top", type=int, default=25, help="functions listed in the comparison (default 25)")
    parser.add_argument(
        "--python",
        action="store_true",
        help="also profile the reused-token and password logins with cProfile (no valgrind) and list the Python "
        "functions whose calls differ",
    )
    args = parser.parse_args(argv)
    n = args.logins
    results: dict[str, Counts] = {}
    for kind in KINDS if args.credential == "all" else (args.credential,):
        counts, named = measure(kind, args.alg, n, args.event_loop, args.save)
        print_counts(kind, counts, named, n, args.alg, args.event_loop)
        results[kind] = counts
    if "reused" in results and "password" in results:
        print("\n".join(compare(results["reused"], results["password"], n, args.top)))
    if args.python:
        reused = python_profile("reused", args.alg, n, args.event_loop)
        password = python_profile("password", args.alg, n, args.event_loop)
        print("\n".join(compare_python(reused, password, n, args.top)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
