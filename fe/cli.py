"""The `fe` command: `fe serve` runs the server; `fe token` creates a local signing key and mints test tokens;
`fe catalog copy` moves an SQLite catalog into PostgreSQL."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from fe import __version__
from fe.config import ConfigError, load_settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fe", description=__doc__)
    parser.add_argument("--version", action="version", version=f"fe {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the MySQL-protocol server")
    serve.add_argument("--home", type=Path, help="directory holding conf/ and meta/ (default: current directory)")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="query port (default 9030; 0 picks a free one)")
    serve.add_argument("--workers", type=int, help="server processes sharing the port (default 1)")
    serve.add_argument("--root-password", help="root's password, used on first start only")
    serve.add_argument("--require-secure-transport", action="store_true", default=None,
                       help="refuse connections that do not use TLS")  # fmt: skip
    serve.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR")
    serve.add_argument("--worker-index", type=int, default=None, help=argparse.SUPPRESS)
    serve.add_argument("--worker-count", type=int, default=1, help=argparse.SUPPRESS)

    token = commands.add_parser("token", help="local signing key and test tokens, for trying token logins")
    from fe.auth import devtools

    devtools.add_arguments(token)
    token.add_argument("--home", type=Path, help="directory holding conf/ and meta/ (default: current directory)")

    catalog = commands.add_parser("catalog", help="the user catalog")
    catalog_commands = catalog.add_subparsers(dest="catalog_command", required=True)
    copy = catalog_commands.add_parser(
        "copy",
        help="copy every table of an SQLite catalog into an empty PostgreSQL catalog, in one transaction",
        description="Copy every table of an SQLite catalog into a PostgreSQL database that holds no catalog yet "
        "(or only what a first start creates), in one transaction. The password comes from FE_CATALOG_PASSWORD "
        "or --password-file (or libpq's PGPASSWORD / ~/.pgpass); avoid putting it in the URL.",
    )
    copy.add_argument("--from", dest="source", type=Path, required=True, help="the SQLite catalog (meta/catalog.db)")
    copy.add_argument("--to", dest="target", required=True, help="postgresql://user@host:port/database")
    copy.add_argument("--password-file", type=Path, help="a file whose first line is the PostgreSQL password")
    copy.add_argument("--force", action="store_true",
                      help="replace the contents of a target that already holds a catalog")  # fmt: skip
    return parser


def _serve(args: argparse.Namespace) -> int:
    from fe.server import eventloop
    from fe.server.app import StartupError, configure_logging, serve
    from fe.server.workers import supervise

    overrides = {
        "host": args.host,
        "query_port": args.port,
        "workers": args.workers,
        "root_password": args.root_password,
        "require_secure_transport": args.require_secure_transport,
        "log_level": args.log_level,
    }
    try:
        settings = load_settings(args.home, overrides)
    except ConfigError as exc:
        print(f"fe: configuration error: {exc}", file=sys.stderr)
        return 2
    try:
        loop_name = eventloop.resolve(settings.event_loop)
    except eventloop.EventLoopUnavailable as exc:
        print(f"fe: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    try:
        if args.worker_index is not None:

            def tell_parent(host: str, port: int) -> None:
                print(f"ready {host}:{port}", flush=True)

            eventloop.run(serve(settings, worker_index=args.worker_index, worker_count=args.worker_count,
                                on_ready=tell_parent, parent_pid=os.getppid()), loop_name)  # fmt: skip
            return 0
        if settings.workers > 1:
            return eventloop.run(supervise(settings), loop_name)
        eventloop.run(serve(settings), loop_name)
    except StartupError as exc:
        print(f"fe: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


def _catalog_copy(args: argparse.Namespace) -> int:
    from fe.catalog.copy import copy_catalog
    from fe.catalog.errors import CatalogError
    from fe.catalog.pg.location import PASSWORD_ENV, LocationError, is_postgres_location, parse_location

    if not is_postgres_location(args.target):
        print("fe: --to must be a postgresql:// URL", file=sys.stderr)
        return 2
    password = os.environ.get(PASSWORD_ENV)
    if args.password_file is not None:
        try:
            lines = args.password_file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            print(f"fe: cannot read {args.password_file}: {exc.strerror or exc}", file=sys.stderr)
            return 2
        password = lines[0] if lines else ""
    try:
        target = parse_location(args.target, password)
    except LocationError as exc:
        print(f"fe: {exc}", file=sys.stderr)
        return 2
    try:
        counts = copy_catalog(args.source, target, force=args.force)
    except CatalogError as exc:
        print(f"fe: {exc}", file=sys.stderr)
        return 1
    rows = ", ".join(f"{table} {count}" for table, count in counts.items())
    print(f"copied {args.source} into {target.describe()} (rows: {rows})")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "catalog":
        return _catalog_copy(args)
    from fe.auth import devtools

    home = (args.home or Path.cwd()).resolve()
    return devtools.run(args, home)


if __name__ == "__main__":
    sys.exit(main())
