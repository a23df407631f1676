"""OpenID Connect Discovery: keys found from the token's issuer, for a spec with required_issuer and no jwks_url.

As Pulsar and APISIX do it: the token's `iss` must be one of the spec's required_issuer before anything is fetched
(a stranger's token cannot make fe fetch from a URL of its choosing); then `<iss>/.well-known/openid-configuration`
(OpenID Connect Discovery 1.0 §4: a trailing `/` of the issuer is dropped before the path is appended) is fetched,
its `issuer` must equal `iss` exactly (§4.3), and its `jwks_uri` names the key set. Discovery documents are cached
per issuer with the very policy of key sets (jwks_http.py), and fetched with the same client and limits.
https:// only, for the issuer and the jwks_uri, unless discovery_allow_http.
"""

from __future__ import annotations

from fe.auth.errors import TokenRejected, shorten
from fe.auth.jwk import KeyParseError, load_json
from fe.auth.jwks_http import FetchFailed, RemoteDocumentCache
from fe.auth.token_spec import TokenAuthSpec, discovery_issuer_problem, discovery_url_problem

WELL_KNOWN_PATH = "/.well-known/openid-configuration"


def discovery_url(issuer: str) -> str:
    return issuer.rstrip("/") + WELL_KNOWN_PATH


def issuer_to_discover(spec: TokenAuthSpec, claimed: object, allow_http: bool) -> str:
    """The token's `iss` if keys may be discovered from it for `spec`; TokenRejected otherwise. Runs before any
    fetch: only an issuer the administrator listed is ever contacted."""
    if spec.required_issuer is None:
        raise TokenRejected("key_set_invalid", "the account has neither jwks_url nor required_issuer: no keys to use")
    if claimed is None:
        raise TokenRejected("wrong_issuer", "token has no 'iss' claim; this account's keys are found from its issuer")
    if not isinstance(claimed, str):
        raise TokenRejected("wrong_issuer", f"'iss' must be a single string, not {shorten(claimed)}")
    if claimed not in spec.required_issuer:
        raise TokenRejected("wrong_issuer", f"issuer {shorten(claimed)} is not one of required_issuer (not fetched)")
    problem = discovery_issuer_problem(claimed, allow_http)
    if problem is not None:
        raise TokenRejected("key_set_invalid", f"issuer {shorten(claimed)} {problem}: its keys cannot be discovered")
    return claimed


def parse_discovery_document(body: bytes, issuer: str, allow_http: bool) -> str:
    """The `jwks_uri` of `issuer`'s discovery document, or FetchFailed("key_set_invalid", detail) where the detail
    reads after "discovery document of <issuer> "."""
    try:
        doc = load_json(body)
    except KeyParseError as exc:
        raise FetchFailed("key_set_invalid", f"is {exc}") from None
    if not isinstance(doc, dict):
        raise FetchFailed("key_set_invalid", "is not a JSON object")
    said = doc.get("issuer")
    if said is None:
        raise FetchFailed("key_set_invalid", "has no 'issuer'")
    if said != issuer:
        # The one check that ties the keys to this issuer: a document served at its URL for another issuer (a
        # misconfigured proxy, a path mix-up, a hostile tenant of a shared host) must not lend that one its keys.
        raise FetchFailed("key_set_invalid", f"says issuer {shorten(said)}, not {shorten(issuer)}")
    jwks_uri = doc.get("jwks_uri")
    if not isinstance(jwks_uri, str) or not jwks_uri:
        raise FetchFailed("key_set_invalid", f"has no 'jwks_uri' (got {shorten(jwks_uri)})")
    problem = discovery_url_problem(jwks_uri, allow_http)
    if problem is not None:
        raise FetchFailed("key_set_invalid", f"gives jwks_uri {shorten(jwks_uri)}, which {problem}")
    return jwks_uri


class DiscoverySource(RemoteDocumentCache[str]):
    """Issuer → the jwks_uri its discovery document gives."""

    what = "discovery document"
    noun = "discovery document"

    async def jwks_uri(self, issuer: str) -> str:
        return await self.get(issuer)

    async def _load(self, key: str) -> tuple[str, list[str]]:
        try:
            body = await self._fetcher.get(discovery_url(key), "application/json")
        except FetchFailed as exc:
            if exc.reason == "key_set_invalid":  # too big, compressed
                raise FetchFailed(exc.reason, f"is unusable: {exc.detail}") from None
            raise
        return parse_discovery_document(body, key, self._options.discovery_allow_http), []

    def _loaded_text(self, key: str, value: str) -> str:
        return f"discovery document of {key}: jwks_uri {value}"

    def _unreachable_text(self, key: str, detail: str) -> str:
        return f"discovery document of {key} unreachable: {discovery_url(key)} ({detail})"

    def _invalid_text(self, key: str, detail: str) -> str:
        return f"discovery document of {key} ({discovery_url(key)}) {detail}"
