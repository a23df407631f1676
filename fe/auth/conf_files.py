"""Reading a file an administrator named under conf/ (a key file, a group file): strictly inside conf/, never
through a link swapped in after the path was resolved, never blocking on a FIFO, bounded in size, and re-read only
when it changed. The checks are made on the open descriptor, not on a path that may change in between."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from fe.auth.token_spec import InvalidAuthString, conf_relative_path

# (path, device, inode, mtime in ns, size): a file whose fingerprint is unchanged is not read again.
Fingerprint = tuple[str, int, int, int, int]


class UnusableFile(Exception):
    """The named file cannot be used; the message says why, phrased to follow the file's name and a colon."""


def resolve_inside_conf(conf_dir: Path, name: str, setting: str = "jwks_url") -> Path:
    """conf/`name`, resolved; raises UnusableFile for a path that leaves conf/, FileNotFoundError if absent."""
    try:
        relative = conf_relative_path(name, setting)
    except InvalidAuthString:
        raise UnusableFile("not a path inside conf/") from None
    conf = conf_dir.resolve()
    path = (conf / relative).resolve(strict=True)
    if not path.is_relative_to(conf):
        raise UnusableFile("outside conf/ once resolved")
    return path


def read_if_changed(path: Path, previous: Fingerprint | None, max_bytes: int) -> tuple[Fingerprint, bytes | None]:
    """The file's fingerprint and its bytes, or None for the bytes when the fingerprint is `previous` (unchanged).
    Raises UnusableFile (not a regular file, over `max_bytes`) or OSError."""
    # O_NOFOLLOW refuses a symlink swapped in since the path was resolved; O_NONBLOCK keeps a FIFO swapped in from
    # blocking (it is then refused as not a regular file).
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnusableFile("not a regular file")
        fingerprint = (str(path), info.st_dev, info.st_ino, info.st_mtime_ns, info.st_size)
        if fingerprint == previous:
            return fingerprint, None
        if info.st_size > max_bytes:
            raise UnusableFile(f"over the {max_bytes}-byte limit ({info.st_size} bytes)")
        with open(fd, "rb", closefd=False) as handle:
            data = handle.read(max_bytes + 1)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise UnusableFile(f"over the {max_bytes}-byte limit")
    return fingerprint, data
