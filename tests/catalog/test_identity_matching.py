"""Which identity a login uses: exact address, then the most specific pattern, then '%'."""

from __future__ import annotations

from pathlib import Path

import pytest

from fe.catalog import CACHING_SHA2, Catalog, Credentials
from fe.catalog.identity import match_rank, normalize_client_ip

PASSWORD = Credentials(CACHING_SHA2, "", "CACHING_SHA2_PASSWORD")


@pytest.fixture
def tom_everywhere(catalog: Catalog) -> Catalog:
    for host in ("%", "10.0.%", "10.0.0.%", "10.0.0.5", "192.168.1._", "localhost"):
        catalog.create_user("tom", host, PASSWORD)
    return catalog


@pytest.mark.parametrize(
    ("client_ip", "expected_host"),
    [
        ("10.0.0.5", "10.0.0.5"),
        ("10.0.0.6", "10.0.0.%"),
        ("10.0.9.9", "10.0.%"),
        ("192.168.1.7", "192.168.1._"),
        ("192.168.1.70", "%"),
        ("8.8.8.8", "%"),
        ("::ffff:10.0.0.5", "10.0.0.5"),
        ("::ffff:10.0.0.77", "10.0.0.%"),
        ("127.0.0.1", "localhost"),
        ("::1", "localhost"),
    ],
)
def test_most_specific_identity_wins(tom_everywhere: Catalog, client_ip: str, expected_host: str) -> None:
    account = tom_everywhere.find_login_account("tom", client_ip)
    assert account is not None and account.host == expected_host


def test_no_matching_identity(catalog: Catalog) -> None:
    catalog.create_user("ann", "10.0.0.1", PASSWORD)
    assert catalog.find_login_account("ann", "10.0.0.2") is None
    assert catalog.find_login_account("nobody", "10.0.0.1") is None
    assert catalog.find_login_account("ANN", "10.0.0.1") is None  # names are case-sensitive


def test_login_sees_another_processes_commit_at_once(catalog: Catalog, catalog_path: Path) -> None:
    with Catalog.open(catalog_path) as other:
        assert catalog.find_login_account("tom", "1.2.3.4") is None
        other.create_user("tom", "%", PASSWORD)
        assert catalog.find_login_account("tom", "1.2.3.4") is not None
        other.drop_user("tom", "%")
        assert catalog.find_login_account("tom", "1.2.3.4") is None


def test_pattern_rules() -> None:
    assert match_rank("%", "1.2.3.4") == (3, 0)
    assert match_rank("1.2.3.%", "1.2.3.4") is not None
    assert match_rank("1.2.3.%", "1.2.34.4") is None
    assert match_rank("1.2.3._", "1.2.3.45") is None
    assert match_rank("1.2.3.4", "1.2.3.44") is None
    assert match_rank("1.2.3.%", "1.2.3.4") < match_rank("1.2.%", "1.2.3.4")  # type: ignore[operator]
    assert normalize_client_ip("::ffff:192.0.2.1") == "192.0.2.1"
    assert normalize_client_ip("not-an-ip") == "not-an-ip"


def test_domain_identities_match_their_resolved_addresses() -> None:
    resolved = {"db.example": {"10.0.0.7", "10.0.0.8"}}

    def addresses(domain: str) -> set[str]:
        return resolved.get(domain, set())

    assert match_rank("[db.example]", "10.0.0.8", addresses) is not None
    assert match_rank("[db.example]", "10.0.0.9", addresses) is None
    assert match_rank("[other.example]", "10.0.0.7", addresses) is None
    assert match_rank("[db.example]", "10.0.0.7") is None  # nothing resolved: no match
    # exact address, then domain, then pattern, then %
    ranks = [match_rank(h, "10.0.0.7", addresses) for h in ("10.0.0.7", "[db.example]", "10.0.0.%", "%")]
    assert ranks == sorted(ranks)  # type: ignore[type-var]
    assert len(set(ranks)) == 4
