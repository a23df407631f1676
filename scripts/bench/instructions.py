"""Instructions per login, counted by valgrind's callgrind inside the fe process: a figure the machine's noise
cannot move (CPU time on this shared machine drifts by tens of percent), for comparing two versions of fe.

    python -m scripts.bench.instructions                      # 300 fresh-token ES256 logins, default settings
    python -m scripts.bench.instructions --credential password --event-loop uvloop

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
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from scripts.bench import fe_server
from scripts.bench.mysqlwire import Connection, Credential, Password, Token, client_tls_context

WARM_UP_LOGINS = 20
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


def parse_callgrind(text: str) -> Counts:
    """Self cost per shared object from a callgrind dump (events: Ir only)."""
    names: dict[str, str] = {}
    by_object: Counter[str] = Counter()
    current = "?"
    after_calls = False
    for line in text.splitlines():
        match = re.match(r"^(ob|cob)=\((\d+)\)(?: (.*))?$", line)
        if match:
            kind, ident, name = match.groups()
            if name is not None:
                names[ident] = name
            if kind == "ob":
                current = names.get(ident, "?")
            continue
        if line.startswith("calls="):
            after_calls = True
            continue
        if line[:1].isdigit() or line[:1] in "+-*":
            parts = line.split()
            if len(parts) >= 2:
                if after_calls:  # the inclusive cost of a call, already counted in the callee
                    after_calls = False
                    continue
                by_object[Path(current).name] += int(parts[1])
    return Counts(sum(by_object.values()), by_object)


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


def measure(kind: str, alg: str, logins: int, event_loop: str) -> tuple[Counts, dict[str, int]]:
    from cryptography.hazmat.primitives import serialization

    from fe.auth.devtools import mint_token

    for tool in ("valgrind", "callgrind_control", "callgrind_annotate"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is not installed (Debian package: valgrind)")
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
        user = fe_server.PASSWORD_USER
        warm: list[Credential] = [Password(fe_server.PASSWORD)] * WARM_UP_LOGINS
        timed: list[Credential] = [Password(fe_server.PASSWORD)] * logins
    elif kind == "reused":
        user, warm = fe_server.TOKEN_USER, tokens(1, "reused")
        timed = warm * logins
        warm = warm * WARM_UP_LOGINS
    else:
        user, warm, timed = fe_server.TOKEN_USER, tokens(WARM_UP_LOGINS, "warm"), tokens(logins, "timed")

    with tempfile.TemporaryDirectory(prefix="fe-callgrind-") as base:
        out = Path(base) / "callgrind.out"
        prefix = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            f"--log-file={Path(base) / 'valgrind.log'}",
        ]
        home = Path(base) / "home"
        server = fe_server.FeServer(home, extra_env={"FE_EVENT_LOOP": event_loop}, command_prefix=prefix)
        fe_server.write_jwks(home, jwks)
        server.start(timeout=300)
        try:
            fe_server.create_users(server)
            asyncio.run(_logins(server, user, warm))
            subprocess.run(["callgrind_control", "--zero", str(server.pid)], check=True, capture_output=True)
            asyncio.run(_logins(server, user, timed))
            subprocess.run(["callgrind_control", "--dump=timed", str(server.pid)], check=True, capture_output=True)
        finally:
            server.stop(timeout=120)
        dumps = sorted(Path(base).glob("callgrind.out.*"))
        if not dumps:
            raise RuntimeError("callgrind wrote no dump for the timed logins")
        dump = dumps[0]
        return parse_callgrind(dump.read_text(errors="replace")), named_inclusive(dump)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.bench.instructions",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--logins", type=int, default=300, help="timed logins (default 300)")
    parser.add_argument(
        "--credential",
        choices=("fresh", "reused", "password"),
        default="fresh",
        help="a fresh token each login (default), one token reused, or a caching_sha2 password",
    )
    parser.add_argument("--alg", choices=("ES256", "RS256"), default="ES256")
    parser.add_argument("--event-loop", choices=("asyncio", "uvloop"), default="asyncio")
    args = parser.parse_args(argv)
    counts, named = measure(args.credential, args.alg, args.logins, args.event_loop)
    n = args.logins
    print(f"{counts.total / n / 1e6:.3f} M instructions per login ({args.credential}, {args.alg}, {args.event_loop})")
    for name, value in counts.by_object.most_common(8):
        print(f"  {100 * value / counts.total:5.1f}%  {value / n / 1e3:8.0f} k  {name}")
    for key, label in NAMED_CALLS.items():
        if key in named:
            print(f"  inclusive {named[key] / n / 1e3:8.0f} k  {label}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
