"""`fe serve --workers N`: every worker runs with the supervisor's settings, command-line flags included."""

from __future__ import annotations

from tests.conftest import ROOT_PASSWORD
from tests.support.clients import ALL_CLIENTS
from tests.support.server import running_fe


def test_flags_reach_every_worker(tmp_path) -> None:
    args = ["--workers", "2", "--require-secure-transport"]
    with running_fe(tmp_path, extra_args=args, env={"FE_ROOT_PASSWORD": ROOT_PASSWORD}) as server:
        seen_ids = set()
        for _ in range(12):  # connections spread over both workers (SO_REUSEPORT)
            plain = ALL_CLIENTS["pymysql"](server.host, server.port, "root", ROOT_PASSWORD, tls=False)
            assert plain.errno == 3159, plain
            tls = ALL_CLIENTS["pymysql"](
                server.host, server.port, "root", ROOT_PASSWORD, statements=("SELECT CONNECTION_ID()",)
            )
            assert tls.ok, tls.message
            seen_ids.add(int(tls.rows[0][0][0]) % 2)
        assert seen_ids == {0, 1}, "both workers should have served"
