"""Start `fe serve` in a temporary home, with a password user and a token user, and stop it again."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from scripts.bench.mysqlwire import Connection, Password, ServerError, client_tls_context
from scripts.bench.procstats import die_with_parent

REPO_ROOT = Path(__file__).resolve().parents[2]
READY = re.compile(r"ready: (?:\d+ workers )?accepting MySQL connections on ([\d.]+):(\d+)")

ROOT_PASSWORD = "bench-root-password"
PASSWORD_USER = "bench_pw"
PASSWORD = "bench-password-1"
TOKEN_USER = "bench_tok"
JWKS_NAME = "bench.jwks"
ISSUER = "https://bench.example"
AUDIENCE = "fe"


@dataclass(frozen=True)
class SigningKey:
    alg: str
    kid: str
    private_key_pem: bytes


def make_signing_keys(algs: tuple[str, ...] = ("ES256", "RS256")) -> tuple[list[SigningKey], dict[str, object]]:
    """One signing key per algorithm, and the JWKS that holds their public halves."""
    from fe.auth.devtools import generate_signing_key

    keys = []
    public = []
    for alg in algs:
        private_key, jwk = generate_signing_key(alg)
        pem = private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        keys.append(SigningKey(alg, str(jwk["kid"]), pem))
        public.append(jwk)
    return keys, {"keys": public}


def token_claims() -> dict[str, object]:
    return {"sub": TOKEN_USER, "iss": ISSUER, "aud": AUDIENCE}


class FeServer:
    """`python -m fe.cli serve --home HOME --port 0 [--workers N]`, its log in HOME/fe.log."""

    def __init__(
        self,
        home: Path,
        workers: int = 1,
        extra_env: dict[str, str] | None = None,
        command_prefix: list[str] | None = None,
    ) -> None:
        self.home = home
        self.workers = workers
        self.extra_env = extra_env or {}
        self.command_prefix = command_prefix or []  # e.g. valgrind and its options
        self.process: subprocess.Popen[bytes] | None = None
        self.host = "127.0.0.1"
        self.port = 0
        self.log_path = home / f"fe-{workers}w.log"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 30.0) -> FeServer:
        self.home.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
            "FE_ROOT_PASSWORD": ROOT_PASSWORD,
            "FE_MAX_CONNECTIONS": "8000",
            # Every benchmark client comes from 127.0.0.1: at fe's default share of unfinished logins per address
            # (32), a storm of 64 clients would have its oldest logins closed. (An older fe ignores these keys.)
            "FE_MAX_UNAUTHENTICATED_CONNECTIONS": "8000",
            "FE_MAX_UNAUTHENTICATED_PER_ADDRESS": "8000",
            **self.extra_env,
        }
        command = [
            *self.command_prefix,
            sys.executable,
            "-m",
            "fe.cli",
            "serve",
            "--home",
            str(self.home),
            "--port",
            "0",
        ]
        if self.workers > 1:
            command += ["--workers", str(self.workers)]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                stdout=subprocess.DEVNULL,
                stderr=log,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=self.home,
                preexec_fn=die_with_parent,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = READY.search(self.log_path.read_text(errors="replace"))
            if match:
                self.host, self.port = match.group(1), int(match.group(2))
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"fe did not become ready; its log:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 15.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    async def run_as_root(self, statements: list[str]) -> None:
        connection = await Connection.open(self.host, self.port, "root", Password(ROOT_PASSWORD), client_tls_context())
        try:
            for statement in statements:
                try:
                    await connection.query(statement)
                except ServerError as exc:
                    if exc.code != 1396:  # the user exists already (a restarted server on the same home)
                        raise
        finally:
            await connection.quit()


def write_jwks(home: Path, jwks: dict[str, object]) -> None:
    conf = home / "conf"
    conf.mkdir(parents=True, exist_ok=True)
    (conf / JWKS_NAME).write_text(json.dumps(jwks, indent=2) + "\n", encoding="utf-8")


def create_users(server: FeServer) -> None:
    spec = {"jwks_url": JWKS_NAME, "principal_field": "sub", "required_issuer": ISSUER, "required_audience": AUDIENCE}
    asyncio.run(
        server.run_as_root(
            [
                f"CREATE USER {PASSWORD_USER} IDENTIFIED BY '{PASSWORD}'",
                f"CREATE USER {TOKEN_USER} IDENTIFIED WITH authentication_jwt AS '{json.dumps(spec)}'",
            ]
        )
    )
