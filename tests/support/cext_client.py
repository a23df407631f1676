"""Run Connector/Python's C extension (libmysqlclient 9.x) in a fresh process and report what happened as JSON.

It must load before anything imports `ssl`, with the bundled OpenSSL found through LD_LIBRARY_PATH, so it runs
as its own process (see `run_cext`). Input: one JSON object on argv[1] with connect arguments and statements.
Output: {"have_cext": bool, "rows": [...], "error": [errno, sqlstate, msg] | null, "plugin_dir": ...}.
"""

from __future__ import annotations

import json
import sys

import _mysql_connector  # noqa: F401  (first: it needs its own OpenSSL)
import mysql.connector
from mysql.connector import HAVE_CEXT


def main() -> None:
    request = json.loads(sys.argv[1])
    result: dict[str, object] = {"have_cext": bool(HAVE_CEXT), "rows": [], "error": None}
    try:
        connection = mysql.connector.connect(use_pure=False, **request["connect"])
        result["connection_class"] = type(connection).__name__
        cursor = connection.cursor()
        for statement in request.get("statements", []):
            cursor.execute(statement)
            rows = cursor.fetchall() if cursor.with_rows else []
            result["rows"].append([[_plain(v) for v in row] for row in rows])  # type: ignore[union-attr]
        if request.get("ping"):
            connection.ping()
        connection.close()
    except mysql.connector.Error as exc:
        result["error"] = [exc.errno, exc.sqlstate, exc.msg]
    print(json.dumps(result))


def _plain(value: object) -> object:
    if isinstance(value, bytes | bytearray):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, int | float | str | type(None)) else str(value)


if __name__ == "__main__":
    main()
