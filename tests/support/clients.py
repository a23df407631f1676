"""The real clients the tests log in with: Connector/Python (pure and C extension), PyMySQL, the mariadb CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import mysql.connector
import pymysql

SITE_PACKAGES = Path(mysql.connector.__file__).resolve().parents[2]
VENDOR_DIR = SITE_PACKAGES / "mysql" / "vendor"
CEXT_SCRIPT = Path(__file__).with_name("cext_client.py")


@dataclass
class Outcome:
    """What a client saw: result rows per statement, or the server's error (errno, message)."""

    rows: list[list[list[object]]] = field(default_factory=list)
    errno: int | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.errno is None


def _connector_arguments(
    host: str, port: int, user: str, password: str, tls: bool, extra: dict[str, object]
) -> dict[str, object]:
    """Connect arguments shared by both Connector/Python flavours: TLS without certificate checks, or none."""
    args: dict[str, object] = dict(host=host, port=port, user=user, password=password, connection_timeout=10, **extra)
    if tls:
        args.update(ssl_disabled=False, ssl_verify_cert=False, ssl_verify_identity=False)
    else:
        args["ssl_disabled"] = True
    return args


def connector_pure(
    host: str,
    port: int,
    user: str,
    password: str = "",
    *,
    tls: bool = True,
    statements: tuple[str, ...] = ("SELECT 1",),
    **extra: object,
) -> Outcome:
    args = _connector_arguments(host, port, user, password, tls, extra)
    try:
        connection = mysql.connector.connect(use_pure=True, **args)
    except mysql.connector.Error as exc:
        return Outcome(errno=exc.errno, message=str(exc.msg))
    try:
        assert connection.is_connected()
        cursor = connection.cursor()
        outcome = Outcome()
        for statement in statements:
            cursor.execute(statement)
            outcome.rows.append([list(r) for r in cursor.fetchall()] if cursor.with_rows else [])
        return outcome
    except mysql.connector.Error as exc:
        return Outcome(errno=exc.errno, message=str(exc.msg))
    finally:
        connection.close()


def connector_cext(
    host: str,
    port: int,
    user: str,
    password: str = "",
    *,
    tls: bool = True,
    statements: tuple[str, ...] = ("SELECT 1",),
    **extra: object,
) -> Outcome:
    """Runs in a child process with the C extension really loaded; fails the test if it did not load."""
    connect = _connector_arguments(host, port, user, password, tls, extra)
    env = {**os.environ, "LD_LIBRARY_PATH": str(VENDOR_DIR)}
    request = json.dumps({"connect": connect, "statements": list(statements)})
    done = subprocess.run(
        [sys.executable, str(CEXT_SCRIPT), request], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["have_cext"], "the C extension did not load"
    if result["error"]:
        errno, _, message = result["error"]
        return Outcome(errno=errno, message=message)
    assert result["connection_class"] == "CMySQLConnection", result
    return Outcome(rows=result["rows"])


def pymysql_client(
    host: str,
    port: int,
    user: str,
    password: str = "",
    *,
    tls: bool = True,
    statements: tuple[str, ...] = ("SELECT 1",),
    **extra: object,
) -> Outcome:
    ssl_args: dict[str, object] = (
        {"ssl": {"check_hostname": False, "verify_mode": 0}} if tls else {"ssl_disabled": True}
    )
    try:
        connection = pymysql.connect(
            host=host, port=port, user=user, password=password, connect_timeout=10, **ssl_args, **extra
        )  # type: ignore[arg-type]
    except pymysql.err.MySQLError as exc:
        errno = exc.args[0] if exc.args and isinstance(exc.args[0], int) else -1
        return Outcome(errno=errno, message=str(exc.args[1] if len(exc.args) > 1 else exc))
    try:
        outcome = Outcome()
        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
                outcome.rows.append([list(r) for r in cursor.fetchall()])
        return outcome
    except pymysql.err.MySQLError as exc:
        return Outcome(errno=exc.args[0], message=str(exc.args[1]))
    finally:
        connection.close()


def mariadb_cli(
    host: str,
    port: int,
    user: str,
    password: str = "",
    *,
    tls: bool = True,
    statements: tuple[str, ...] = ("SELECT 1",),
    extra_args: tuple[str, ...] = (),
) -> Outcome:
    args = [
        "mariadb",
        "-h",
        host,
        "-P",
        str(port),
        "-u",
        user,
        "--batch",
        "--skip-column-names",
        "--connect-timeout=10",
    ]
    args.append(f"--password={password}" if password else "--skip-password")
    args += ["--ssl", "--ssl-verify-server-cert=0"] if tls else ["--skip-ssl"]
    args += list(extra_args)
    # Batch output does not separate statements: a marker row between them does.
    script = f"; SELECT '{_MARK}'; ".join(statements)
    done = subprocess.run([*args, "-e", script], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        errno = -1
        if done.stderr.startswith("ERROR "):
            errno = int(done.stderr.split()[1])
        return Outcome(errno=errno, message=done.stderr.strip())
    outcome = Outcome(rows=[[]])
    for line in done.stdout.splitlines():
        if line == _MARK:
            outcome.rows.append([])
        else:
            outcome.rows[-1].append(line.split("\t"))
    return outcome


_MARK = "--next statement--"

NODE_CLIENT = Path(__file__).parent / "node" / "login.js"


def node_mysql2(
    host: str,
    port: int,
    user: str,
    password: str = "",
    *,
    tls: bool = True,
    statements: tuple[str, ...] = ("SELECT 1",),
) -> Outcome:
    """node's mysql2 (npm), in a child process; scripts/test installs it (`npm ci` in tests/support/node)."""
    request = json.dumps(
        {"host": host, "port": port, "user": user, "password": password, "tls": tls, "statements": list(statements)}
    )
    done = subprocess.run(["node", str(NODE_CLIENT), request], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["error"]:
        errno, _, message = result["error"]
        return Outcome(errno=errno, message=message)
    return Outcome(rows=result["rows"])


ALL_CLIENTS = {
    "connector_pure": connector_pure,
    "connector_cext": connector_cext,
    "pymysql": pymysql_client,
    "mariadb_cli": mariadb_cli,
}
