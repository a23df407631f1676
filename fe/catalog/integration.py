"""Security integrations: who may log in without a CREATE USER, and how their tokens are checked.

    CREATE SECURITY INTEGRATION corp PROPERTIES ("type" = "authentication_jwt", "jwks_url" = "...", ...)

The PROPERTIES are validated when the statement runs, by the rules of a token user's JSON (fe/auth/token_spec.py),
and stored normalised: `SecurityIntegration` is what the catalog gives back, with a real TokenAuthSpec for the
verifier. Beyond StarRocks: `jwks_url` may be left out when `required_issuer` is set (the keys are then found by
OpenID Connect Discovery), and `allowed_algorithms` / `token_as_password` work as in a token user's JSON.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from fe.auth.token_spec import (
    NO_AUDIENCE_WARNING,
    TOKEN_KEYS,
    TOKEN_PLUGINS,
    InvalidAuthString,
    TokenAuthSpec,
    check_algorithms,
    check_discovery_issuers,
    check_jwks_location,
    property_values,
    validate_string,
    validate_string_list,
)

NATIVE = "native"  # the catalog's own accounts, in authentication_chain; never an integration's name
INTEGRATION_TYPES = TOKEN_PLUGINS
# A token user's JSON keys, in its order, with the integration's own around them.
PROPERTY_KEYS = ("type", *TOKEN_KEYS, "permitted_groups", "comment")
_LISTS = ("required_issuer", "required_audience", "allowed_algorithms", "group_provider", "permitted_groups")
MAX_COMMENT = 1024


class InvalidIntegrationProperties(ValueError):
    """The PROPERTIES are not acceptable; the message names the problem."""


@dataclass(frozen=True)
class SecurityIntegration:
    name: str
    type: str  # authentication_jwt | authentication_openid_connect (one verifier)
    # The normalised PROPERTIES in PROPERTY_KEYS order ("type" first), as SHOW CREATE SECURITY INTEGRATION shows.
    properties: tuple[tuple[str, str], ...]
    # How its tokens are checked; jwks_url "" (spec.discovers_keys) when keys come from the issuer's discovery.
    spec: TokenAuthSpec
    group_providers: tuple[str, ...] = ()
    # None: every user whose token verifies is admitted; else only members of one of these groups.
    permitted_groups: tuple[str, ...] | None = None
    comment: str = ""

    def permits(self, groups: Collection[str]) -> bool:
        return self.permitted_groups is None or any(group in groups for group in self.permitted_groups)


def parse_integration_properties(
    name: str,
    properties: Sequence[tuple[str, str]],
    conf_dir: Path,
    *,
    require_https: bool = False,
    discovery_allow_http: bool = False,
) -> tuple[SecurityIntegration, list[str]]:
    """Validate PROPERTIES (of CREATE, or the merged result of ALTER … SET); return the integration and warnings.

    Raises InvalidIntegrationProperties naming the problem.
    """
    try:
        values = property_values(properties, INTEGRATION_TYPES, "security integration")
    except InvalidAuthString as exc:
        raise InvalidIntegrationProperties(str(exc)) from None
    kind = values["type"]
    unknown = [key for key in values if key not in PROPERTY_KEYS]
    if unknown:
        raise InvalidIntegrationProperties(f"unknown property '{unknown[0]}'; allowed: {', '.join(PROPERTY_KEYS)}")
    if "jwks_url" not in values and "required_issuer" not in values:
        raise InvalidIntegrationProperties(
            "missing required property: jwks_url (or required_issuer, to find the keys by OpenID Connect Discovery)"
        )
    normalised: dict[str, str] = {"type": kind}
    warnings: list[str] = []
    try:
        for key in PROPERTY_KEYS[1:]:
            if key not in values:
                continue
            if key == "comment":
                normalised[key] = _comment(values[key])
            elif key == "token_as_password":
                normalised[key] = _boolean(key, values[key])
            elif key in _LISTS:
                normalised[key] = ",".join(validate_string_list(key, values[key]))
            else:
                normalised[key] = validate_string(key, values[key])
        if "jwks_url" in normalised:
            warnings += check_jwks_location(normalised["jwks_url"], conf_dir, require_https)
        else:  # the keys are found from the issuer: each must be a URL discovery may fetch
            issuers = tuple(normalised["required_issuer"].split(","))
            warnings += check_discovery_issuers(issuers, discovery_allow_http)
        if "allowed_algorithms" in normalised:
            check_algorithms(tuple(normalised["allowed_algorithms"].split(",")))
        integration = integration_from_properties(name, tuple(normalised.items()))
    except InvalidAuthString as exc:
        raise InvalidIntegrationProperties(str(exc)) from None
    if "required_audience" not in normalised:
        warnings.append(NO_AUDIENCE_WARNING.replace("for this user", "through this integration"))
    return integration, warnings


def integration_from_properties(name: str, properties: Sequence[tuple[str, str]]) -> SecurityIntegration:
    """The integration from normalised properties (as parse_integration_properties made and the catalog stores
    them); touches no file. Raises InvalidAuthString only for a malformed principal_field JSON Pointer."""
    values = dict(properties)

    def listed(key: str) -> tuple[str, ...] | None:
        return tuple(values[key].split(",")) if key in values else None

    providers = listed("group_provider")
    spec = TokenAuthSpec(
        jwks_url=values.get("jwks_url", ""),
        principal_field=values.get("principal_field", "sub"),
        required_issuer=listed("required_issuer"),
        required_audience=listed("required_audience"),
        allowed_algorithms=listed("allowed_algorithms"),
        token_as_password=values.get("token_as_password", "true") == "true",
        group_providers=providers,
    )
    return SecurityIntegration(
        name=name,
        type=values["type"],
        properties=tuple((key, values[key]) for key in PROPERTY_KEYS if key in values),
        spec=spec,
        group_providers=providers or (),
        permitted_groups=listed("permitted_groups"),
        comment=values.get("comment", ""),
    )


def merge_properties(current: Sequence[tuple[str, str]], changes: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """ALTER SECURITY INTEGRATION … SET: `changes` replace or add properties; a property set to "" is removed
    (validation then decides whether the integration can do without it). The type cannot change."""
    merged = dict(current)
    seen = set()
    for key, value in changes:
        if key in seen:
            raise InvalidIntegrationProperties(f"property '{key}' appears more than once")
        seen.add(key)
        if key == "type":
            raise InvalidIntegrationProperties("'type' property cannot be changed")  # StarRocks' text
        if key not in PROPERTY_KEYS:
            raise InvalidIntegrationProperties(f"unknown property '{key}'; allowed: {', '.join(PROPERTY_KEYS)}")
        if value.strip() == "" and key != "comment":
            merged.pop(key, None)
        else:
            merged[key] = value
    return list(merged.items())


def properties_text(properties: Mapping[str, str] | Sequence[tuple[str, str]]) -> str:
    """`"k" = "v", "k2" = "v2"`, as StarRocks' SHOW CREATE prints PROPERTIES."""
    items = properties.items() if isinstance(properties, Mapping) else properties
    return ", ".join(f'"{_escape(key)}" = "{_escape(value)}"' for key, value in items)


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _boolean(key: str, value: str) -> str:
    lowered = value.strip().lower()
    if lowered not in ("true", "false"):
        raise InvalidIntegrationProperties(f"'{key}' must be true or false, not {value!r}")
    return lowered


def _comment(value: str) -> str:
    if len(value) > MAX_COMMENT or any(ord(ch) < 0x20 for ch in value):
        raise InvalidIntegrationProperties("'comment' is too long or contains control characters")
    return value
