"""Issue 11's statements through a real `fe serve` and PyMySQL: security integrations, group providers, the
authentication chain and roles of external groups are stored in the catalog, survive a restart, are seen at once
by every worker, refuse non-admins and bad PROPERTIES; and a kill -9 in the middle of a stream of them loses no
statement that returned OK."""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pymysql

from tests.conftest import ROOT_PASSWORD, root_execute
from tests.support.server import FeProcess, running_fe
from tests.support.sessions import Session

CORP = (
    'CREATE SECURITY INTEGRATION corp PROPERTIES ("type" = "authentication_openid_connect", '
    '"jwks_url" = "corp.jwks", "principal_field" = "preferred_username", '
    '"required_issuer" = "https://idp.example/realms/main", "required_audience" = "fe", '
    '"group_provider" = "files, claims", "permitted_groups" = "dba, analysts", "comment" = "Keycloak")'
)
CORP_SHOWN = (
    "CREATE SECURITY INTEGRATION `corp` PROPERTIES (\n"
    '"type" = "authentication_openid_connect", "jwks_url" = "corp.jwks", "principal_field" = "preferred_username", '
    '"required_issuer" = "https://idp.example/realms/main", "required_audience" = "fe", '
    '"group_provider" = "files,claims", "permitted_groups" = "dba,analysts", "comment" = "Keycloak"\n)'
)
SETUP = (
    'CREATE GROUP PROVIDER files PROPERTIES ("type" = "file", "group_file_url" = "groups.txt")',
    'CREATE GROUP PROVIDER claims PROPERTIES ("type" = "jwt", "jwt_claim" = "/realm_access/roles")',
    'CREATE GROUP PROVIDER os PROPERTIES ("type" = "unix")',
    CORP,
    'ADMIN SET FRONTEND CONFIG ("authentication_chain" = "native,corp")',
    "CREATE ROLE analyst",
    "GRANT analyst TO EXTERNAL GROUP 'analysts'",
    "GRANT analyst, user_admin TO EXTERNAL GROUP 'dba'",
)


def prepare_home(home: Path) -> None:
    (home / "conf").mkdir(exist_ok=True)
    (home / "conf" / "corp.jwks").write_text('{"keys": []}')
    (home / "conf" / "groups.txt").write_text("dba:tom\nanalysts:tom,ann\n")


def state(admin: Session) -> dict[str, object]:
    """Everything the statements stored, as a client sees it."""
    return {
        "integrations": admin.rows("SHOW SECURITY INTEGRATIONS"),
        "corp": admin.rows("SHOW CREATE SECURITY INTEGRATION corp"),
        "providers": admin.rows("SHOW GROUP PROVIDERS"),
        "files": admin.rows("SHOW CREATE GROUP PROVIDER files"),
        "chain": admin.rows("ADMIN SHOW FRONTEND CONFIG LIKE 'authentication_chain'"),
        "dba": admin.rows("SHOW GRANTS FOR EXTERNAL GROUP 'dba'"),
        "analysts": admin.rows("SHOW GRANTS FOR EXTERNAL GROUP 'analysts'"),
    }


def test_statements_through_a_real_client_and_a_restart(tmp_path: Path) -> None:
    prepare_home(tmp_path)
    env = {"FE_ROOT_PASSWORD": ROOT_PASSWORD}
    with running_fe(tmp_path, env=env) as server, Session(server, "root", ROOT_PASSWORD) as admin:
        for statement in SETUP:
            reply = admin.run(statement)
            assert reply.warnings == 0, (statement, admin.rows("SHOW WARNINGS"))
        before = state(admin)
        assert before["integrations"] == [("corp", "authentication_openid_connect", "Keycloak")]
        assert before["corp"] == [("corp", CORP_SHOWN)]
        assert admin.run("SHOW CREATE SECURITY INTEGRATION corp").columns == [
            "Security Integration",
            "Create Security Integration",
        ]
        assert before["providers"] == [("claims", "jwt", ""), ("files", "file", ""), ("os", "unix", "")]
        assert admin.run("ADMIN SHOW FRONTEND CONFIG").columns == [
            "Key",
            "AliasNames",
            "Value",
            "Type",
            "IsMutable",
            "Comment",
        ]
        ((key, aliases, value, kind, mutable, _comment),) = before["chain"]  # type: ignore[misc]
        assert (key, aliases, value, kind, mutable) == (
            "authentication_chain",
            "[]",
            "[native, corp]",
            "String[]",
            "true",
        )
        assert before["dba"] == [("dba", None, "GRANT 'analyst', 'user_admin' TO EXTERNAL GROUP 'dba'")]
        # Refusals a client sees, with nothing changed.
        assert admin.error('CREATE SECURITY INTEGRATION bad PROPERTIES ("type" = "authentication_jwt", '
                           '"jwks_url" = "../../etc/jwks")')[0] == 1210  # fmt: skip
        assert admin.error("DROP SECURITY INTEGRATION corp")[0] == 1396
        assert admin.error("DROP GROUP PROVIDER files")[0] == 1396
        assert state(admin) == before
    # The restarted server has all of it.
    with running_fe(tmp_path, env=env) as server, Session(server, "root", ROOT_PASSWORD) as admin:
        assert state(admin) == before
        admin.run('ADMIN SET FRONTEND CONFIG ("authentication_chain" = "native")')
        admin.run("DROP SECURITY INTEGRATION corp")
        admin.run("DROP GROUP PROVIDER files")
        assert admin.rows("SHOW SECURITY INTEGRATIONS") == []


WRITES = [
    'CREATE SECURITY INTEGRATION nope PROPERTIES ("type" = "authentication_jwt", "jwks_url" = "corp.jwks")',
    'ALTER SECURITY INTEGRATION corp SET ("comment" = "mine")',
    "DROP SECURITY INTEGRATION IF EXISTS corp",
    'CREATE GROUP PROVIDER nope PROPERTIES ("type" = "unix")',
    "DROP GROUP PROVIDER IF EXISTS os",
    'ADMIN SET FRONTEND CONFIG ("authentication_chain" = "native")',
    "GRANT analyst TO EXTERNAL GROUP 'mine'",
    "REVOKE analyst FROM EXTERNAL GROUP 'dba'",
]
READS = [
    "SHOW SECURITY INTEGRATIONS",
    "SHOW CREATE SECURITY INTEGRATION corp",
    "SHOW GROUP PROVIDERS",
    "SHOW CREATE GROUP PROVIDER os",
    "ADMIN SHOW FRONTEND CONFIG",
    "SHOW GRANTS FOR EXTERNAL GROUP 'dba'",
]


def test_non_admins_are_refused_every_write_across_workers(tmp_path: Path) -> None:
    prepare_home(tmp_path)
    env = {"FE_ROOT_PASSWORD": ROOT_PASSWORD}
    with running_fe(tmp_path, extra_args=["--workers", "2"], env=env) as server:
        root_execute(server, *SETUP, "CREATE USER bob IDENTIFIED BY 'Bob-pw-1'")
        with Session(server, "root", ROOT_PASSWORD) as admin:
            before = state(admin)
        with Session(server, "bob", "Bob-pw-1") as bob:
            for statement in WRITES + READS:
                errno, message = bob.error(statement)
                assert errno == 1227 and "Access denied" in message, statement
        # A change made through one worker is what every connection (either worker) sees next.
        root_execute(server, 'ADMIN SET FRONTEND CONFIG ("authentication_chain" = "corp,native")')
        for _ in range(8):
            with Session(server, "root", ROOT_PASSWORD) as admin:
                ((_key, _aliases, value, *_rest),) = admin.rows("ADMIN SHOW FRONTEND CONFIG LIKE 'authentication%'")
                assert value == "[corp, native]"
        with Session(server, "root", ROOT_PASSWORD) as admin:
            after = state(admin)
        assert {k: v for k, v in after.items() if k != "chain"} == {k: v for k, v in before.items() if k != "chain"}


# ------------------------------------------------------------------------- kill -9 in the middle of the statements

SESSIONS = 3
KILLS = 3
SECONDS_BETWEEN_KILLS = 1.0
TRANSIENT_ERRORS = {1205}


@dataclass
class Step:
    kind: str  # "integration" | "grant"
    name: str
    present: bool  # what the statement makes true if it took effect
    outcome: str  # "ok" | "error" | "unknown"
    errno: int | None = None


class Writer(threading.Thread):
    """Creates integrations and grants roles to external groups, dropping and revoking about half again, through
    reconnects, until told to stop."""

    def __init__(self, index: int, server: FeProcess, stop: threading.Event) -> None:
        super().__init__(name=f"writer-{index}", daemon=True)
        self.index, self.server, self.stop = index, server, stop
        self.steps: list[Step] = []
        self.failure: BaseException | None = None
        self._random = random.Random(index)

    def run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:
            self.failure = exc

    def _loop(self) -> None:
        counter = 0
        connection: pymysql.connections.Connection | None = None
        while not self.stop.is_set():
            if connection is None:
                connection = self._connect()
                if connection is None:
                    time.sleep(0.05)
                    continue
            counter += 1
            name = f"w{self.index}_{counter}"
            if counter % 2:
                statements = [
                    ("integration", True, f'CREATE SECURITY INTEGRATION {name} PROPERTIES ("type" = '
                     '"authentication_jwt", "jwks_url" = "corp.jwks", "required_audience" = "fe")'),
                    ("integration", False, f"DROP SECURITY INTEGRATION {name}"),
                ]  # fmt: skip
            else:
                statements = [
                    ("grant", True, f"GRANT analyst TO EXTERNAL GROUP '{name}'"),
                    ("grant", False, f"REVOKE analyst FROM EXTERNAL GROUP '{name}'"),
                ]
            for position, (kind, present, sql) in enumerate(statements):
                if position == 1 and self._random.random() < 0.5:
                    break
                step = self._execute(connection, kind, name, present, sql)
                if step.outcome != "ok":
                    if step.outcome == "unknown":
                        connection = None
                    break
        if connection is not None:
            connection.close()

    def _connect(self) -> pymysql.connections.Connection | None:
        try:
            return pymysql.connect(
                host=self.server.host,
                port=self.server.port,
                user="root",
                password=ROOT_PASSWORD,
                ssl={"check_hostname": False, "verify_mode": 0},
                connect_timeout=2,
                read_timeout=10,
                write_timeout=10,
            )
        except (pymysql.err.MySQLError, OSError):
            return None

    def _execute(
        self, connection: pymysql.connections.Connection, kind: str, name: str, present: bool, sql: str
    ) -> Step:
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql)
            step = Step(kind, name, present, "ok")
        except (pymysql.err.OperationalError, pymysql.err.InterfaceError, OSError) as exc:
            errno = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
            outcome = "error" if errno is not None and errno < 2000 else "unknown"
            step = Step(kind, name, present, outcome, errno)
        except pymysql.err.MySQLError as exc:
            step = Step(kind, name, present, "error", exc.args[0] if exc.args else None)
        self.steps.append(step)
        return step


def possible_states(steps: list[Step]) -> dict[tuple[str, str], set[bool]]:
    states: dict[tuple[str, str], set[bool]] = {}
    for step in steps:
        key = (step.kind, step.name)
        current = states.setdefault(key, {False})
        if step.outcome == "ok":
            states[key] = {step.present}
        elif step.outcome == "unknown":
            states[key] = current | {step.present}
    return states


def test_ok_statements_survive_sigkill(tmp_path: Path) -> None:
    prepare_home(tmp_path)
    server = FeProcess(tmp_path, env={"FE_ROOT_PASSWORD": ROOT_PASSWORD}).start()
    stop = threading.Event()
    writers = [Writer(index, server, stop) for index in range(SESSIONS)]
    try:
        root_execute(server, "CREATE ROLE analyst")
        for writer in writers:
            writer.start()
        for _ in range(KILLS):
            time.sleep(SECONDS_BETWEEN_KILLS)
            server.kill()  # SIGKILL, with statements in flight
            server.start(port=server.port)
        time.sleep(SECONDS_BETWEEN_KILLS)
        stop.set()
        for writer in writers:
            writer.join(15)
            assert not writer.is_alive() and writer.failure is None, repr(writer.failure)
        server.kill()  # nothing in flight: what was committed must be on disk
        server.start(port=server.port)

        steps = [step for writer in writers for step in writer.steps]
        unexpected = [s for s in steps if s.outcome == "error" and s.errno not in TRANSIENT_ERRORS]
        assert not unexpected, unexpected
        ok = [s for s in steps if s.outcome == "ok"]
        assert len(ok) >= 30 and {s.kind for s in ok} == {"integration", "grant"}, len(ok)
        assert any(s.outcome == "unknown" for s in steps) or len(ok) == len(steps)

        wrong = {}
        with Session(server, "root", ROOT_PASSWORD) as admin:
            integrations = {row[0] for row in admin.rows("SHOW SECURITY INTEGRATIONS")}
            for (kind, name), allowed in possible_states(steps).items():
                if kind == "integration":
                    present = name in integrations
                else:
                    present = bool(admin.rows(f"SHOW GRANTS FOR EXTERNAL GROUP '{name}'"))
                if present not in allowed:
                    wrong[(kind, name)] = (allowed, present)
        assert not wrong, f"catalog disagrees with OK'd statements (allowed, present): {wrong}"
        assert server.stop() == 0, server.log
    finally:
        stop.set()
        server.kill()
    with sqlite3.connect(tmp_path / "meta" / "catalog.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []


def test_fe_conf_chain_is_used_until_one_is_stored(tmp_path: Path) -> None:
    prepare_home(tmp_path)
    (tmp_path / "conf" / "fe.conf").write_text("authentication_chain = native\n")
    with running_fe(tmp_path, env={"FE_ROOT_PASSWORD": ROOT_PASSWORD}) as server:
        rows = root_execute(server, "ADMIN SHOW FRONTEND CONFIG LIKE 'authentication_chain'")
        assert rows[0][2] == "[native]"
    (tmp_path / "conf" / "fe.conf").write_text("authentication_chain = native,dup\n")
    with running_fe(tmp_path, env={"FE_ROOT_PASSWORD": ROOT_PASSWORD}) as server:
        rows = root_execute(
            server,
            *SETUP[:2],
            CORP.replace("corp", "dup", 1),
            "ADMIN SHOW FRONTEND CONFIG LIKE 'authentication_chain'",
        )
        assert rows[0][2] == "[native, dup]"
        with Session(server, "root", ROOT_PASSWORD) as admin:
            errno, message = admin.error("DROP SECURITY INTEGRATION dup")
            assert errno == 1396 and "fe.conf's authentication_chain" in message
            admin.run('ADMIN SET FRONTEND CONFIG ("authentication_chain" = "native")')  # stored: wins over fe.conf
            assert admin.rows("ADMIN SHOW FRONTEND CONFIG LIKE 'authentication_chain'")[0][2] == "[native]"
            admin.run("DROP SECURITY INTEGRATION dup")
