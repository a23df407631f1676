"""The JSON a token user is created with: parsed, validated and normalised once, at CREATE/ALTER USER time.

    {"jwks_url": "...", "principal_field": "sub", "required_issuer": ..., "required_audience": ...}

Ours, beyond StarRocks: validated when the statement runs (nothing stored on error); issuer and audience take
a string, a comma-separated string or a JSON array, and an omitted one is not checked; `jwks_url` is an
http(s) URL or a path inside `<home>/conf`; an optional `allowed_algorithms` list narrows the algorithms;
`token_as_password: false` keeps the user to the OpenID Connect client plugin; `group_provider` (a comma-separated
string or an array) names the group providers whose groups the user's session gets. A `principal_field` starting
with `/` is a JSON Pointer into the claims (RFC 6901), as in newer StarRocks.

The checks are shared with the PROPERTIES of security integrations (fe/catalog/integration.py) and group providers
(fe/auth/groups.py): `property_values`, `validate_string`, `validate_string_list`, `check_jwks_location`,
`check_conf_file`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from fe.auth.json_pointer import PointerError, is_pointer, parse_pointer

TOKEN_PLUGINS = ("authentication_jwt", "authentication_openid_connect")

SUPPORTED_ALGORITHMS = (
    "RS256", "RS384", "RS512",
    "PS256", "PS384", "PS512",
    "ES256", "ES384", "ES512",
    "EdDSA",
)  # fmt: skip

TOKEN_KEYS = (
    "jwks_url",
    "principal_field",
    "required_issuer",
    "required_audience",
    "allowed_algorithms",
    "token_as_password",
    "group_provider",
)
_MAX_TEXT = 64 * 1024
_MAX_VALUE = 2048


NO_AUDIENCE_WARNING = (
    "'required_audience' is not set: a token this identity provider issued to any other application "
    "will be accepted for this user"
)
PLAIN_HTTP_WARNING = (
    "'jwks_url' uses plain http://: a key set fetched without TLS can be replaced in flight, and whoever "
    "replaces it can sign tokens for this user; use https:// (require_https_key_urls = true refuses http://)"
)
PLAIN_HTTP_DISCOVERY_WARNING = (
    "'required_issuer' {issuer!r} uses plain http://: its discovery document and keys are fetched without TLS and "
    "can be replaced in flight; accepted only because discovery_allow_http = true (for tests and labs)"
)


class InvalidAuthString(ValueError):
    """The AS '<json>' text is not acceptable; the message says why, for the ERR sent to the administrator."""


@dataclass(frozen=True)
class TokenAuthSpec:
    jwks_url: str
    principal_field: str = "sub"
    required_issuer: tuple[str, ...] | None = None
    required_audience: tuple[str, ...] | None = None
    allowed_algorithms: tuple[str, ...] | None = None
    # False: this user may log in only through the OpenID Connect client plugin, never with the token as password.
    token_as_password: bool = True
    # Group providers (by name) whose groups a session of this user gets; None: none named.
    group_providers: tuple[str, ...] | None = None
    # The reference tokens when principal_field is a JSON Pointer ("/realm_access/username"), else None.
    principal_pointer: tuple[str, ...] | None = field(default=None, init=False, repr=False, compare=False)
    _hash: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if is_pointer(self.principal_field):
            try:
                pointer = parse_pointer(self.principal_field)
            except PointerError as exc:
                raise InvalidAuthString(
                    f"'principal_field' {self.principal_field!r} is not a valid JSON Pointer: {exc}"
                ) from None
            object.__setattr__(self, "principal_pointer", pointer)
        # A spec keys the verified-token cache and the key store, so a token login hashes it several times: the
        # hash of the compared fields (what the dataclass's own __hash__ would compute each time) is taken once.
        object.__setattr__(self, "_hash", hash(tuple(getattr(self, f.name) for f in fields(self) if f.compare)))

    def __hash__(self) -> int:
        return self._hash

    @property
    def is_remote(self) -> bool:
        return self.jwks_url.startswith(("http://", "https://"))

    @property
    def discovers_keys(self) -> bool:
        """No jwks_url: the keys are to be found through the issuer's OpenID Connect Discovery document (the
        spec then has a required_issuer; see fe/auth/discovery.py)."""
        return not self.jwks_url

    def to_json(self) -> str:
        """The normalised form, stored in the catalog and shown by SHOW AUTHENTICATION."""
        doc: dict[str, object] = {"jwks_url": self.jwks_url} if self.jwks_url else {}  # none: discovery
        doc["principal_field"] = self.principal_field
        if self.required_issuer is not None:
            doc["required_issuer"] = list(self.required_issuer)
        if self.required_audience is not None:
            doc["required_audience"] = list(self.required_audience)
        if self.allowed_algorithms is not None:
            doc["allowed_algorithms"] = list(self.allowed_algorithms)
        if not self.token_as_password:
            doc["token_as_password"] = False  # only when off, so the JSON of every other user stays as it was
        if self.group_providers is not None:
            doc["group_provider"] = list(self.group_providers)
        return json.dumps(doc, separators=(", ", ": "))

    @classmethod
    def from_json(cls, text: str) -> TokenAuthSpec:
        """The spec back from to_json()'s text (already validated when it was stored)."""
        doc = json.loads(text)

        def strings(key: str) -> tuple[str, ...] | None:
            value = doc.get(key)
            return None if value is None else tuple(value)

        return cls(
            jwks_url=doc.get("jwks_url", ""),
            principal_field=doc.get("principal_field", "sub"),
            required_issuer=strings("required_issuer"),
            required_audience=strings("required_audience"),
            allowed_algorithms=strings("allowed_algorithms"),
            token_as_password=doc.get("token_as_password", True) is not False,
            group_providers=strings("group_provider"),
        )


def parse_token_auth_string(
    text: str, conf_dir: Path, *, require_https: bool = False, discovery_allow_http: bool = False
) -> tuple[TokenAuthSpec, list[str]]:
    """Validate the JSON; return the spec and warnings (e.g. a local key file that does not exist yet).

    `require_https` (the setting require_https_key_urls) refuses an http:// jwks_url, which otherwise only warns.
    Without jwks_url, every required_issuer must be an https:// URL, or http:// with `discovery_allow_http`.
    """
    if len(text) > _MAX_TEXT:
        raise InvalidAuthString(f"authentication string is too long ({len(text)} > {_MAX_TEXT} characters)")
    if not text.strip():
        raise InvalidAuthString("authentication string is empty; expected a JSON object with 'jwks_url'")
    try:
        doc = json.loads(text, object_pairs_hook=_object_without_duplicates)
    except json.JSONDecodeError as exc:
        raise InvalidAuthString(f"authentication string is not valid JSON: {exc.msg} at position {exc.pos}") from None
    except RecursionError:
        raise InvalidAuthString("authentication string is nested too deeply") from None
    if not isinstance(doc, dict):
        raise InvalidAuthString(f"authentication string must be a JSON object, not {_json_type(doc)}")
    unknown = sorted(set(doc) - set(TOKEN_KEYS))
    if unknown:
        raise InvalidAuthString(
            f"unknown key {unknown[0]!r} in authentication string; allowed keys: {', '.join(TOKEN_KEYS)}"
        )
    if "jwks_url" not in doc and "required_issuer" not in doc:
        raise InvalidAuthString(
            "'jwks_url' is required (or 'required_issuer', to find the keys by OpenID Connect Discovery)"
        )

    issuers = _string_list(doc, "required_issuer")
    if "jwks_url" in doc:
        jwks_url = _string(doc, "jwks_url")
        warnings = check_jwks_location(jwks_url, conf_dir, require_https)
    else:
        assert issuers is not None
        jwks_url = ""
        warnings = check_discovery_issuers(issuers, discovery_allow_http)
    principal_field = _string(doc, "principal_field") if "principal_field" in doc else "sub"
    token_as_password = _boolean(doc, "token_as_password", default=True)
    audiences = _string_list(doc, "required_audience")
    algorithms = _string_list(doc, "allowed_algorithms")
    if algorithms is not None:
        check_algorithms(algorithms)
    spec = TokenAuthSpec(
        jwks_url,
        principal_field,
        issuers,
        audiences,
        algorithms,
        token_as_password=token_as_password,
        group_providers=_string_list(doc, "group_provider"),
    )  # raises InvalidAuthString for a malformed JSON Pointer in principal_field
    if audiences is None:
        warnings.append(NO_AUDIENCE_WARNING)
    return spec, warnings


_JSON_TYPE_NAMES = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "an array",
                    dict: "an object"}  # fmt: skip


def _object_without_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    doc: dict[str, object] = {}
    for key, value in pairs:
        if key in doc:
            raise InvalidAuthString(f"key {key!r} appears more than once in the authentication string")
        doc[key] = value
    return doc


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def property_values(properties: Iterable[tuple[str, str]], types: Sequence[str], what: str) -> dict[str, str]:
    """PROPERTIES ("k" = "v", ...) of a CREATE `what` as a dict, its "type" lower-cased; InvalidAuthString for a key
    given twice, or a type missing or not one of `types` (StarRocks' texts)."""
    values: dict[str, str] = {}
    for key, value in properties:
        if key in values:
            raise InvalidAuthString(f"property '{key}' appears more than once")
        values[key] = value
    if "type" not in values:
        raise InvalidAuthString("missing required property: type")
    kind = values["type"].strip().lower()
    if kind not in types:
        raise InvalidAuthString(f"unsupported {what} type '{values['type']}'; fe supports {', '.join(types)}")
    values["type"] = kind
    return values


def check_algorithms(algorithms: tuple[str, ...]) -> None:
    bad = [a for a in algorithms if a not in SUPPORTED_ALGORITHMS]
    if bad:
        raise InvalidAuthString(
            f"'allowed_algorithms' has unsupported algorithm {bad[0]!r}; supported: {', '.join(SUPPORTED_ALGORITHMS)}"
        )


def _string(doc: dict[str, object], key: str) -> str:
    return validate_string(key, doc[key])


def validate_string(key: str, value: object) -> str:
    """A non-empty string value of `key`, stripped; InvalidAuthString naming the key otherwise."""
    if not isinstance(value, str):
        raise InvalidAuthString(f"'{key}' must be a string, not {_json_type(value)}")
    value = value.strip()
    if not value:
        raise InvalidAuthString(f"'{key}' must not be empty")
    if len(value) > _MAX_VALUE:
        raise InvalidAuthString(f"'{key}' is too long ({len(value)} > {_MAX_VALUE} characters)")
    if any(ord(ch) < 0x20 for ch in value):
        raise InvalidAuthString(f"'{key}' contains control characters")
    return value


def _boolean(doc: dict[str, object], key: str, *, default: bool) -> bool:
    if key not in doc:
        return default
    value = doc[key]
    if not isinstance(value, bool):
        raise InvalidAuthString(f"'{key}' must be true or false, not {_json_type(value)}")
    return value


def _string_list(doc: dict[str, object], key: str) -> tuple[str, ...] | None:
    if key not in doc:
        return None
    return validate_string_list(key, doc[key])


def validate_string_list(key: str, value: object) -> tuple[str, ...]:
    """A string, a comma-separated string or an array of strings: its entries, stripped, without repeats."""
    if isinstance(value, str):
        items = [part.strip() for part in value.split(",")]
    elif isinstance(value, list):
        if not all(isinstance(item, str) for item in value):
            raise InvalidAuthString(f"'{key}' must be a string or an array of strings")
        items = [item.strip() for item in value]
    else:
        raise InvalidAuthString(f"'{key}' must be a string or an array of strings, not {_json_type(value)}")
    if not items or any(not item for item in items):
        raise InvalidAuthString(f"'{key}' must not be empty or contain empty entries")
    for item in items:
        if len(item) > _MAX_VALUE or any(ord(ch) < 0x20 for ch in item):
            raise InvalidAuthString(f"'{key}' has a malformed entry")
    return tuple(dict.fromkeys(items))


def conf_relative_path(name: str, key: str = "jwks_url") -> PurePosixPath:
    """A file named by `key` (a key file's `jwks_url`, a group file) as a path inside conf/: relative, no `..`,
    no `~`, no drive letter, no URL scheme.

    Raises InvalidAuthString saying what is wrong. Links are checked where the path is resolved (at CREATE time,
    and again each time the file is read).
    """
    if "://" in name:
        allowed = "only http:// and https:// URLs or a file under conf/ are allowed"
        raise InvalidAuthString(f"'{key}' {name!r}: {allowed if key == 'jwks_url' else 'only a file under conf/'}")
    relative = PurePosixPath(name.replace("\\", "/"))
    if relative.is_absolute() or name.startswith("~") or (len(name) > 1 and name[1] == ":"):
        raise InvalidAuthString(f"'{key}' {name!r} must be a path relative to conf/, not an absolute path")
    if ".." in relative.parts:
        raise InvalidAuthString(f"'{key}' {name!r} escapes conf/")
    return relative


def check_jwks_location(jwks_url: str, conf_dir: Path, require_https: bool) -> list[str]:
    """Refuse a `jwks_url` that is neither a usable http(s) URL nor a file inside conf/; return warnings."""
    lowered = jwks_url.lower()
    if lowered.startswith(("http://", "https://")):
        parts = urlsplit(jwks_url)
        if not parts.hostname:
            raise InvalidAuthString(f"'jwks_url' {jwks_url!r} has no host")
        if parts.username or parts.password:
            raise InvalidAuthString("'jwks_url' must not carry credentials")
        if any(ch.isspace() for ch in jwks_url):
            raise InvalidAuthString("'jwks_url' must not contain spaces")
        try:
            _ = parts.port
        except ValueError:
            raise InvalidAuthString(f"'jwks_url' {jwks_url!r} has a bad port") from None
        if not jwks_url.startswith(("http://", "https://")):
            raise InvalidAuthString("'jwks_url' scheme must be lower-case http:// or https://")
        if jwks_url.startswith("http://"):
            if require_https:
                raise InvalidAuthString(
                    f"'jwks_url' {jwks_url!r} is plain http://, and this server accepts only https:// key URLs "
                    "(require_https_key_urls = true): a key set fetched without TLS can be replaced in flight"
                )
            return [PLAIN_HTTP_WARNING]
        return []
    return check_conf_file(jwks_url, conf_dir, "jwks_url", "key file", "logins will fail until it is created")


def check_conf_file(name: str, conf_dir: Path, key: str, what: str, until: str) -> list[str]:
    """A file (`what`: "key file", "group file") named by property `key`, inside conf/ even through links; a
    missing one only warns (`until`: what happens meanwhile). Raises InvalidAuthString naming the problem."""
    relative = conf_relative_path(name, key)
    path = conf_dir / relative
    try:
        resolved = path.resolve()
        inside = resolved.is_relative_to(conf_dir.resolve())
    except (OSError, RuntimeError):
        inside = False
    if not inside:
        raise InvalidAuthString(f"'{key}' {name!r} escapes conf/ (through a link)")
    if not path.exists():
        return [f"{what} conf/{relative} does not exist yet; {until}"]
    if not path.is_file():
        raise InvalidAuthString(f"'{key}' conf/{relative} is not a regular file")
    return []


def discovery_url_problem(url: str, allow_http: bool) -> str | None:
    """Why discovery may not fetch from `url` (an issuer, a jwks_uri), said after it ("is not ..."), or None."""
    if not url.startswith("https://") and not (allow_http and url.startswith("http://")):
        if url.startswith("http://"):
            return "is plain http:// (discovery_allow_http = true allows it, for tests and labs)"
        return "is not an https:// URL"
    parts = urlsplit(url)
    if any(ch.isspace() for ch in url):
        return "contains spaces"
    if not parts.hostname:
        return "has no host"
    if parts.username or parts.password:
        return "carries credentials"
    try:
        _ = parts.port
    except ValueError:
        return "has a bad port"
    return None


def discovery_issuer_problem(issuer: str, allow_http: bool) -> str | None:
    """As discovery_url_problem; and an OpenID Connect issuer has no query or fragment."""
    problem = discovery_url_problem(issuer, allow_http)
    if problem is None and ("?" in issuer or "#" in issuer):
        return "has a query or fragment"
    return problem


def check_discovery_issuers(issuers: tuple[str, ...], allow_http: bool) -> list[str]:
    """The required_issuer of a spec without jwks_url: each one's discovery document must be fetchable (see
    discovery_issuer_problem). Raises InvalidAuthString naming the first bad one; returns warnings."""
    warnings = []
    for issuer in issuers:
        problem = discovery_issuer_problem(issuer, allow_http)
        if problem is not None:
            raise InvalidAuthString(
                f"'required_issuer' {issuer!r} {problem}; without 'jwks_url' the keys are found from each issuer's "
                "OpenID Connect Discovery document"
            )
        if issuer.startswith("http://"):
            warnings.append(PLAIN_HTTP_DISCOVERY_WARNING.format(issuer=issuer))
    return warnings
