"""Group providers without the SQL layer: PROPERTIES validation, file providers re-read on change and kept inside
conf/, the unix groups of real users of this machine, the shapes of a jwt groups claim, failures that give no
groups and say why in the log."""

from __future__ import annotations

import grp
import logging
import os
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from fe.auth.groups import (
    MAX_GROUPS,
    GroupProvider,
    GroupResolver,
    InvalidProviderProperties,
    claim_groups,
    parse_group_file,
    parse_group_provider,
    provider_from_properties,
    unix_groups,
)


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    (tmp_path / "conf").mkdir()
    return tmp_path / "conf"


def provider(conf: Path, name: str = "p", **properties: str) -> GroupProvider:
    made, _warnings = parse_group_provider(name, list(properties.items()), conf)
    return made


def file_provider(conf: Path, file_name: str = "groups.txt") -> GroupProvider:
    return provider(conf, type="file", group_file_url=file_name)


def refused(conf: Path, **properties: str) -> str:
    with pytest.raises(InvalidProviderProperties) as caught:
        parse_group_provider("p", list(properties.items()), conf)
    return str(caught.value)


# ---- PROPERTIES


def test_each_type_normalised_with_type_first(conf: Path) -> None:
    (conf / "groups.txt").write_text("")
    assert provider(conf, type="UNIX").properties == (("type", "unix"),)
    made = provider(conf, group_file_url="groups.txt", comment="hr", type="File")
    assert made.properties == (("type", "file"), ("group_file_url", "groups.txt"), ("comment", "hr"))
    assert made.group_file == "groups.txt" and made.comment == "hr"
    jwt = provider(conf, type="jwt", jwt_claim="realm_access.roles")
    assert jwt.jwt_claim == ("realm_access", "roles") and jwt.group_file is None
    assert provider(conf, type="jwt", jwt_claim="/https:~1~1ex.com~1groups").jwt_claim == ("https://ex.com/groups",)
    assert provider_from_properties("p", made.properties) == made


@pytest.mark.parametrize(
    ("properties", "message"),
    [
        ({}, "missing required property: type"),
        ({"type": "ldap"}, "unsupported group provider type 'ldap'; fe supports file, unix, jwt"),
        ({"type": "file"}, "missing required property: group_file_url"),
        ({"type": "jwt"}, "missing required property: jwt_claim"),
        ({"type": "unix", "group_file_url": "g.txt"}, "unknown property 'group_file_url' for a unix group provider"),
        ({"type": "jwt", "jwt_claim": "groups", "ldap_conn_url": "x"}, "unknown property 'ldap_conn_url'"),
        ({"type": "file", "group_file_url": ""}, "'group_file_url' must not be empty"),
        ({"type": "file", "group_file_url": "../groups.txt"}, "'group_file_url' '../groups.txt' escapes conf/"),
        ({"type": "file", "group_file_url": "/etc/group"}, "must be a path relative to conf/, not an absolute path"),
        ({"type": "file", "group_file_url": "~root/g"}, "must be a path relative to conf/"),
        ({"type": "file", "group_file_url": "https://idp/groups"}, "'group_file_url' 'https://idp/groups': only a"),
        ({"type": "jwt", "jwt_claim": "a..b"}, "'jwt_claim' 'a..b' has an empty step"),
        ({"type": "jwt", "jwt_claim": "/a~2"}, "'jwt_claim' '/a~2' is not a valid JSON Pointer: bad escape '~2'"),
        ({"type": "unix", "comment": "x\ny"}, "'comment' is too long or contains control characters"),
    ],
)
def test_bad_properties_name_the_problem(conf: Path, properties: dict[str, str], message: str) -> None:
    assert message in refused(conf, **properties)


def test_a_repeated_property_is_refused(conf: Path) -> None:
    with pytest.raises(InvalidProviderProperties, match="property 'type' appears more than once"):
        parse_group_provider("p", [("type", "unix"), ("type", "unix")], conf)


def test_a_group_file_linked_out_of_conf_is_refused_and_a_missing_one_warns(conf: Path, tmp_path: Path) -> None:
    (tmp_path / "outside.txt").write_text("g:tom\n")
    (conf / "link.txt").symlink_to(tmp_path / "outside.txt")
    assert "'group_file_url' 'link.txt' escapes conf/ (through a link)" in refused(
        conf, type="file", group_file_url="link.txt"
    )
    (conf / "dir").mkdir()
    assert "'group_file_url' conf/dir is not a regular file" in refused(conf, type="file", group_file_url="dir")
    _made, warnings = parse_group_provider("p", [("type", "file"), ("group_file_url", "later.txt")], conf)
    assert warnings == ["group file conf/later.txt does not exist yet; it gives no groups until then"]


# ---- file providers


def test_group_file_lines(conf: Path) -> None:
    members, problems = parse_group_file("# people\ndba: tom, ann\n\nreaders:tom,\nbroken line\n:nobody\nempty:\n")
    assert members == {"tom": frozenset({"dba", "readers"}), "ann": frozenset({"dba"})}
    assert problems == [
        "group file line 5: expected 'group:user1,user2'",
        "group file line 6: expected 'group:user1,user2'",
    ]


def test_file_is_read_once_and_again_when_it_changes(conf: Path) -> None:
    groups_file = conf / "groups.txt"
    groups_file.write_text("dba:tom\n")
    resolver = GroupResolver(conf)
    fp = file_provider(conf)
    assert resolver.resolve_groups([fp], "tom", None) == {"dba"}
    assert resolver.resolve_groups([fp], "ann", None) == frozenset()
    assert resolver.file_reads == 1  # unchanged: one read served both lookups
    groups_file.write_text("dba:tom,ann\nops:ann\n")  # a new size
    assert resolver.resolve_groups([fp], "ann", None) == {"dba", "ops"}
    replacement = conf / "groups.new"
    replacement.write_text("ops:tom,ann\nx:ann\n")  # same size as before: the new inode tells
    os.replace(replacement, groups_file)
    assert resolver.resolve_groups([fp], "tom", None) == {"ops"}
    assert resolver.file_reads == 3
    os.utime(groups_file, ns=(1, 1))  # only the mtime moved: read again, same contents
    assert resolver.resolve_groups([fp], "tom", None) == {"ops"}
    assert resolver.file_reads == 4


def test_missing_or_broken_file_gives_no_groups_and_logs_once(conf: Path, caplog: pytest.LogCaptureFixture) -> None:
    resolver = GroupResolver(conf)
    fp = file_provider(conf)
    with caplog.at_level(logging.WARNING, "fe.auth.groups"):
        assert resolver.resolve_groups([fp], "tom", None) == frozenset()
        assert resolver.resolve_groups([fp], "tom", None) == frozenset()
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["group provider p (file) gives no groups: group file conf/groups.txt does not exist"]
    (conf / "groups.txt").write_bytes(b"dba:tom\n\xff\xfe\n")
    caplog.clear()
    with caplog.at_level(logging.WARNING, "fe.auth.groups"):
        assert resolver.resolve_groups([fp], "tom", None) == frozenset()
    assert "is not UTF-8 text" in caplog.text
    (conf / "groups.txt").write_text("dba:tom\n")  # fixed: groups again
    assert resolver.resolve_groups([fp], "tom", None) == {"dba"}


def test_file_swapped_for_a_link_out_of_conf_gives_nothing(conf: Path, tmp_path: Path) -> None:
    """The path rules hold at every read, not only at CREATE: a link put in place later is not followed out."""
    (conf / "groups.txt").write_text("dba:tom\n")
    resolver = GroupResolver(conf)
    fp = file_provider(conf)
    assert resolver.resolve_groups([fp], "tom", None) == {"dba"}
    (tmp_path / "evil.txt").write_text("root_group:tom\n")
    (conf / "groups.txt").unlink()
    (conf / "groups.txt").symlink_to(tmp_path / "evil.txt")
    assert resolver.resolve_groups([fp], "tom", None) == frozenset()
    os.mkfifo(conf / "fifo.txt")  # made after CREATE GROUP PROVIDER checked the path
    fifo = provider_from_properties("f", (("type", "file"), ("group_file_url", "fifo.txt")))
    assert resolver.resolve_groups([fifo], "tom", None) == frozenset()  # refused, never blocks


def test_a_stored_path_outside_conf_is_never_read(conf: Path) -> None:
    escaping = GroupProvider("p", "file", (("type", "file"), ("group_file_url", "../x")), group_file="../x")
    assert GroupResolver(conf).resolve_groups([escaping], "tom", None) == frozenset()


def test_file_over_the_size_limit_gives_nothing(conf: Path) -> None:
    (conf / "groups.txt").write_text("dba:tom\n" * 100)
    assert GroupResolver(conf, max_file_bytes=64).resolve_groups([file_provider(conf)], "tom", None) == frozenset()


def test_concurrent_lookups_share_one_read(conf: Path) -> None:
    (conf / "groups.txt").write_text("".join(f"g{n}:tom\n" for n in range(200)))
    resolver = GroupResolver(conf)
    fp = file_provider(conf)
    results: list[frozenset[str]] = []

    def look() -> None:
        for _ in range(50):
            results.append(resolver.resolve_groups([fp], "tom", None))

    threads = [threading.Thread(target=look) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 400 and all(len(groups) == 200 for groups in results)
    assert resolver.file_reads == 1


# ---- unix providers


@pytest.fixture
def unix_user() -> Iterator[tuple[str, str]]:
    """A user of this machine in a supplementary group, made for the test (root only), else root itself."""
    if os.geteuid() != 0:
        yield "root", grp.getgrgid(0).gr_name
        return
    suffix = uuid.uuid4().hex[:8]
    user, group = f"fe_u_{suffix}", f"fe_g_{suffix}"
    subprocess.run(["groupadd", group], check=True, capture_output=True)
    try:
        subprocess.run(["useradd", "--no-create-home", "-G", group, user], check=True, capture_output=True)
        try:
            yield user, group
        finally:
            subprocess.run(["userdel", user], check=False, capture_output=True)
    finally:
        subprocess.run(["groupdel", group], check=False, capture_output=True)


def test_unix_groups_of_a_real_user(conf: Path, unix_user: tuple[str, str]) -> None:
    user, group = unix_user
    resolver = GroupResolver(conf, unix_cache_seconds=0)
    groups = resolver.resolve_groups([provider(conf, type="unix")], user, None)
    assert group in groups
    assert groups == unix_groups(user)
    assert resolver.resolve_groups([provider(conf, type="unix")], "no_such_user_" + uuid.uuid4().hex[:8], None) == set()
    assert unix_groups("bad\0name") == frozenset()


def test_unix_answers_are_kept_briefly(conf: Path) -> None:
    calls: list[str] = []
    now = [100.0]

    def lookup(user: str) -> frozenset[str]:
        calls.append(user)
        return frozenset({f"g{len(calls)}"})

    resolver = GroupResolver(conf, unix_lookup=lookup, unix_cache_seconds=5, clock=lambda: now[0])
    unix = provider(conf, type="unix")
    assert resolver.resolve_groups([unix], "tom", None) == {"g1"}
    now[0] += 4
    assert resolver.resolve_groups([unix], "tom", None) == {"g1"}
    now[0] += 2
    assert resolver.resolve_groups([unix], "tom", None) == {"g2"}
    assert calls == ["tom", "tom"]


def test_a_failing_unix_lookup_gives_no_groups(conf: Path, caplog: pytest.LogCaptureFixture) -> None:
    def broken(user: str) -> frozenset[str]:
        raise OSError("nss is down")

    resolver = GroupResolver(conf, unix_lookup=broken)
    with caplog.at_level(logging.WARNING, "fe.auth.groups"):
        assert resolver.resolve_groups([provider(conf, type="unix")], "tom", None) == frozenset()
    assert "group provider p (unix) gives no groups: OSError: nss is down" in caplog.text


# ---- jwt providers


@pytest.mark.parametrize(
    ("claims", "path", "expected"),
    [
        ({"groups": ["dba", "ops"]}, "groups", {"dba", "ops"}),
        ({"groups": "dba ops"}, "groups", {"dba", "ops"}),
        ({"groups": "dba,ops, qa"}, "groups", {"dba", "ops", "qa"}),
        ({"groups": "dba"}, "groups", {"dba"}),
        ({"groups": ["/team/dba", 7, None, "", "ops"]}, "groups", {"/team/dba", "ops"}),
        ({"realm_access": {"roles": ["admin"]}}, "realm_access.roles", {"admin"}),
        ({"realm_access": {"roles": ["admin"]}}, "/realm_access/roles", {"admin"}),
        ({"https://ex.com/groups": ["x"]}, "/https:~1~1ex.com~1groups", {"x"}),
        ({"groups": [["nested"]]}, "groups", set()),
        ({"other": ["x"]}, "groups", set()),
        ({"groups": None}, "groups", set()),
        ({"realm_access": "flat"}, "realm_access.roles", set()),
    ],
)
def test_jwt_claim_shapes(conf: Path, claims: dict[str, object], path: str, expected: set[str]) -> None:
    jwt = provider(conf, type="jwt", jwt_claim=path)
    assert GroupResolver(conf).resolve_groups([jwt], "tom", claims) == expected


def test_jwt_claim_of_another_type_gives_none_and_logs(conf: Path, caplog: pytest.LogCaptureFixture) -> None:
    jwt = provider(conf, type="jwt", jwt_claim="groups")
    with caplog.at_level(logging.WARNING, "fe.auth.groups"):
        assert GroupResolver(conf).resolve_groups([jwt], "tom", {"groups": {"a": 1}}) == frozenset()
    assert "the claim is dict, not an array or a string of group names" in caplog.text


def test_no_token_no_jwt_groups_and_limits(conf: Path) -> None:
    jwt = provider(conf, type="jwt", jwt_claim="groups")
    assert GroupResolver(conf).resolve_groups([jwt], "tom", None) == frozenset()
    many = claim_groups({"groups": [f"g{n}" for n in range(MAX_GROUPS + 50)] + ["x" * 300]}, ("groups",))
    assert len(many) == MAX_GROUPS


def test_providers_together(conf: Path) -> None:
    (conf / "groups.txt").write_text("dba:tom\n")
    providers = [file_provider(conf), provider(conf, "j", type="jwt", jwt_claim="groups")]
    assert GroupResolver(conf).resolve_groups(providers, "tom", {"groups": ["ops"]}) == {"dba", "ops"}
