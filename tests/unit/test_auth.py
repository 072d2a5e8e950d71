"""Authentication (shared/auth.py, shared/id_tokens.py) with real tokens: RS256, signed by RSA keys
made here (infra.local.issuer.LocalIssuer); the JWKS is handed to PyJWT's own PyJWKClient through its
documented fetch_data hook (no HTTP here; tests/integration/test_auth_functions.py serves it)."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import replace
from datetime import timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from infra.local.issuer import LocalIssuer, new_rsa_key
from shared.auth import OWNER_HEADER, Authenticator, new_server_key, parse_server_key, secret_hash
from shared.clock import utcnow
from shared.config import ConfigError, Settings
from shared.errors import InvalidRequest, Unauthorized
from shared.id_tokens import IdTokenVerifier, looks_like_jwt
from shared.identity import DEFAULT_OWNER, Caller
from shared.ports import ApiKeyRecord

ISS, AUD, SKEW = "https://issuer.test/project-1", "project-1", 60


class StaticKeys(jwt.PyJWKClient):
    """PyJWKClient whose fetch returns the issuer's current JWKS (counted)."""

    def __init__(self, issuer: LocalIssuer, cooldown_s: float = 0) -> None:
        super().__init__("https://issuer.test/jwks.json", cache_jwk_set=True, lifespan=300, cooldown_duration=cooldown_s)
        self.issuer, self.fetches = issuer, 0

    def fetch_data(self):
        self.fetches += 1
        data = self.issuer.jwks()
        self.jwk_set_cache.put(data)
        self._last_successful_fetch = time.monotonic()  # as PyJWKClient.fetch_data does: starts the cooldown
        return data


@pytest.fixture(scope="module")
def issuer() -> LocalIssuer:
    return LocalIssuer(ISS)


@pytest.fixture
def verifier(issuer) -> IdTokenVerifier:
    return IdTokenVerifier(ISS, [AUD], ["RS256"], SKEW, key_client=StaticKeys(issuer))


def refused(verifier, token: str, match: str) -> Unauthorized:
    with pytest.raises(Unauthorized, match=match) as info:
        verifier.verify(token)
    assert 'error="invalid_token"' in info.value.headers["WWW-Authenticate"]
    return info.value


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_a_good_token_names_its_sub(issuer, verifier):
    assert verifier.verify(issuer.mint("author-1", AUD)) == Caller("author-1", "id_token")
    # aud may be a list holding ours (OIDC Core 2: "an array of case-sensitive strings")
    assert verifier.verify(issuer.mint("author-2", ["other", AUD])).owner == "author-2"


def test_signatures_that_do_not_verify(issuer, verifier):
    refused(verifier, issuer.mint("author-1", AUD, key=new_rsa_key()), "signature does not verify")  # our kid, other key
    refused(verifier, issuer.mint("author-1", AUD, kid="not-published", key=new_rsa_key()), "does not publish")
    good = issuer.mint("author-1", AUD)
    head, payload, sig = good.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    tampered = b64(json.dumps({**claims, "sub": "author-2"}).encode())
    refused(verifier, f"{head}.{tampered}.{sig}", "signature does not verify")


def test_expiry_with_clock_skew(issuer, verifier):
    now = time.time()
    refused(verifier, issuer.mint("a", AUD, issued_at=now - 3600 - SKEW - 5), "expired")  # exp 65 s ago
    assert verifier.verify(issuer.mint("a", AUD, issued_at=now - 3600 - SKEW + 20)).owner == "a"  # exp 40 s ago
    refused(verifier, issuer.mint("a", AUD, issued_at=now + SKEW + 30), "not valid yet")  # iat 90 s ahead
    assert verifier.verify(issuer.mint("a", AUD, issued_at=now + SKEW - 20)).owner == "a"  # iat 40 s ahead
    refused(verifier, issuer.mint("a", AUD, claims={"nbf": int(now) + SKEW + 30}), "not valid yet")


def test_audience_issuer_and_required_claims(issuer, verifier):
    refused(verifier, issuer.mint("a", "another-project"), "another audience")
    refused(verifier, issuer.mint("a", AUD, issuer="https://issuer.test/project-2"), "another issuer")
    refused(verifier, issuer.mint(None, AUD), "no sub claim")
    refused(verifier, issuer.mint("has space", AUD), "not a usable owner")
    refused(verifier, issuer.mint("x" * 129, AUD), "not a usable owner")
    key = issuer.keys[issuer.kid]
    no_exp = jwt.encode({"iss": ISS, "aud": AUD, "sub": "a", "iat": int(time.time())}, key, "RS256",
                        headers={"kid": issuer.kid})
    refused(verifier, no_exp, "no exp claim")


def test_alg_none_and_hmac_confusion_are_refused(issuer, verifier):
    claims = {"iss": ISS, "aud": AUD, "sub": "a", "iat": int(time.time()), "exp": int(time.time()) + 600}
    body = b64(json.dumps(claims).encode())
    for alg in ("none", "None", "NONE"):
        unsigned = f"{b64(json.dumps({'alg': alg, 'kid': issuer.kid}).encode())}.{body}."
        refused(verifier, unsigned, "algorithm is not one of RS256")
    # HS256 keyed with the public key as published (the classic RS/HS confusion)
    pem = issuer.keys[issuer.kid].public_key().public_bytes(serialization.Encoding.PEM,
                                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    head = b64(json.dumps({"alg": "HS256", "kid": issuer.kid, "typ": "JWT"}).encode())
    sig = b64(hmac.new(pem, f"{head}.{body}".encode(), hashlib.sha256).digest())
    refused(verifier, f"{head}.{body}.{sig}", "algorithm is not one of RS256")
    # even a verifier told to allow HS256 by mistake cannot: the settings refuse it
    with pytest.raises(ConfigError, match="EXPORT_OIDC_ALGORITHMS"):
        Settings(oidc_algorithms="RS256,HS256")
    refused(verifier, "not.a.jwt", "malformed")


def test_an_unknown_kid_refetches_the_jwks_once():
    issuer = LocalIssuer(ISS)
    keys = StaticKeys(issuer)
    verifier = IdTokenVerifier(ISS, [AUD], ["RS256"], SKEW, key_client=keys)
    verifier.verify(issuer.mint("a", AUD))
    verifier.verify(issuer.mint("a", AUD))
    assert keys.fetches == 1  # cached
    issuer.rotate()
    assert verifier.verify(issuer.mint("b", AUD)).owner == "b"  # the new kid: fetched again
    assert keys.fetches == 2
    refused(verifier, issuer.mint("c", AUD, kid="never-published", key=new_rsa_key()), "does not publish")
    assert keys.fetches == 3
    # with PyJWT's cooldown an unknown kid cannot make us fetch again and again
    cooling = StaticKeys(issuer, cooldown_s=30)
    verifier = IdTokenVerifier(ISS, [AUD], ["RS256"], SKEW, key_client=cooling)
    verifier.verify(issuer.mint("a", AUD))
    for _ in range(3):
        refused(verifier, issuer.mint("c", AUD, kid="never-published", key=new_rsa_key()), "does not publish")
    assert cooling.fetches == 1


def test_looks_like_jwt():
    assert looks_like_jwt(LocalIssuer(ISS).mint("a", AUD))
    assert not looks_like_jwt("client-secret") and not looks_like_jwt("a.b") and not looks_like_jwt("a.b.c d")
    assert not looks_like_jwt("sfk_0123456789ab_" + "x" * 43)


# -- server keys ---------------------------------------------------------------------------------------------
class MemoryKeys:
    """ApiKeyStore in memory (the SQL one: tests/integration/test_auth_functions.py)."""

    def __init__(self) -> None:
        self.rows: dict[str, ApiKeyRecord] = {}
        self.touched: list[str] = []

    def add(self, name: str) -> str:
        key = new_server_key()
        self.rows[key.key_id] = ApiKeyRecord(key.key_id, name, key.secret_sha256, utcnow())
        return key.text

    def find(self, key_id):
        return self.rows.get(key_id)

    def touch(self, key_id, at):
        self.touched.append(key_id)
        self.rows[key_id] = replace(self.rows[key_id], last_used_at=at)


def test_key_text_shape_and_hash():
    key = new_server_key()
    key_id, secret = parse_server_key(key.text)
    assert key.text == f"sfk_{key_id}_{secret}" and key_id == key.key_id and len(secret) == 43
    assert key.secret_sha256 == hashlib.sha256(secret.encode()).hexdigest() == secret_hash(secret)
    assert secret not in key.secret_sha256
    assert parse_server_key(key.text + "x") is None and parse_server_key(key.text[:-1]) is None
    assert parse_server_key("sfk_" + key_id.upper() + "_" + secret) is None
    assert new_server_key().text != key.text


@pytest.fixture
def keyed():
    keys = MemoryKeys()
    settings = Settings(auth="server_key,id_token,client_token", oidc_issuer=ISS, oidc_audience=AUD,
                        client_token="legacy-client")
    return Authenticator(settings, keys=keys), keys


def test_server_keys(keyed):
    auth, keys = keyed
    text = keys.add("storyapp")
    assert auth.authenticate(f"Bearer {text}") == Caller("key:storyapp", "server_key")  # no header: key:NAME
    assert auth.authenticate(f"Bearer {text}", "author-9") == Caller("author-9", "server_key")
    assert keys.touched == [text[4:16]]  # last_used_at written once a minute at most
    key_id = text[4:16]
    keys.rows[key_id] = replace(keys.rows[key_id], last_used_at=utcnow() - timedelta(seconds=61))
    auth.authenticate(f"Bearer {text}")
    assert keys.touched == [key_id, key_id]
    wrong_secret = text[:-1] + ("A" if text[-1] != "A" else "B")
    unknown = new_server_key().text
    for bad in (wrong_secret, unknown, text + "x", "sfk_nothing"):
        with pytest.raises(Unauthorized, match="invalid server key"):
            auth.authenticate(f"Bearer {bad}")
    keys.rows[key_id] = replace(keys.rows[key_id], revoked_at=utcnow())
    with pytest.raises(Unauthorized, match="invalid server key") as info:
        auth.authenticate(f"Bearer {text}", "author-9")
    assert info.value.headers["WWW-Authenticate"] == (
        'Bearer realm="sceneflow-export", error="invalid_token", error_description="invalid server key"')


def test_owner_header_rules(keyed):
    auth, keys = keyed
    text = keys.add("storyapp")
    for bad in ("", "has space", "x" * 129, "tab\there", "alice,bob"):  # a repeated header arrives joined
        with pytest.raises(InvalidRequest) as info:
            auth.authenticate(f"Bearer {text}", bad)
        assert info.value.details[0]["path"] == f"headers.{OWNER_HEADER}"
    with pytest.raises(InvalidRequest, match="server key only"):
        auth.authenticate("Bearer legacy-client", "author-9")
    with pytest.raises(InvalidRequest, match="server key only"):
        auth.authenticate(f"Bearer {LocalIssuer(ISS).mint('a', AUD)}", "author-9")
    assert auth.authenticate(f"Bearer {text}", "default") == Caller("default", "server_key")  # legacy jobs


def test_an_id_token_never_names_a_reserved_owner(keyed, issuer, verifier):
    """`default` (the client token's) and `key:NAME` (a key's own) are the deployment's owners."""
    auth, _ = keyed
    auth.id_tokens = verifier
    assert auth.authenticate(f"Bearer {issuer.mint('alice', AUD)}") == Caller("alice", "id_token")
    for sub in ("default", "key:storyapp"):
        with pytest.raises(Unauthorized, match="reserved owner"):
            auth.authenticate(f"Bearer {issuer.mint(sub, AUD)}")


def test_methods_and_the_401_challenge(keyed):
    auth, _ = keyed
    assert auth.authenticate("Bearer legacy-client") == Caller(DEFAULT_OWNER, "client_token")
    with pytest.raises(Unauthorized, match="missing bearer token") as info:
        auth.authenticate(None)
    assert info.value.headers == {"WWW-Authenticate": 'Bearer realm="sceneflow-export"'}  # no error code (RFC 6750 3.1)
    for bad in ("Basic dXNlcjpwYXNz", "Bearer", "Bearer legacy-clien", "legacy-client"):
        with pytest.raises(Unauthorized):
            auth.authenticate(bad)
    # a method not enabled is not tried: a server key or the client token alone
    only_keys = Authenticator(Settings(auth="server_key", client_token="legacy-client"), keys=MemoryKeys())
    with pytest.raises(Unauthorized, match="invalid token"):
        only_keys.authenticate("Bearer legacy-client")
    with pytest.raises(Unauthorized, match="invalid token"):  # a JWT without id_token enabled
        only_keys.authenticate(f"Bearer {LocalIssuer(ISS).mint('a', AUD)}")
    # open: no credential needed; the header may name the owner (local development)
    open_ = Authenticator(Settings())
    assert open_.authenticate(None) == Caller(DEFAULT_OWNER, "open")
    assert open_.authenticate("Bearer anything", "author-3") == Caller("author-3", "open")


def test_export_auth_settings():
    assert Settings().auth_methods == ("open",)
    assert Settings(client_token="t").auth_methods == ("client_token",)
    assert Settings(auth=" server_key , id_token,server_key", oidc_issuer=ISS,
                    oidc_audience=AUD).auth_methods == ("server_key", "id_token")
    both = Settings(auth="server_key id_token", oidc_issuer=ISS, oidc_audience="a b,c")  # as deploy.sh writes lists
    assert both.auth_methods == ("server_key", "id_token") and both.oidc_audiences == ["a", "b", "c"]
    problems = {"bogus": "expected a comma-separated list of server_key, id_token, client_token, open",
                "open,server_key": "open cannot be combined",
                "id_token": "id_token needs EXPORT_OIDC_ISSUER and EXPORT_OIDC_AUDIENCE",
                "client_token": "client_token needs EXPORT_CLIENT_TOKEN"}
    for value, message in problems.items():
        with pytest.raises(ConfigError, match=f"EXPORT_AUTH='{value}': {message}"):
            Settings(auth=value)


def test_a_deployed_function_must_name_its_methods(monkeypatch):
    monkeypatch.setenv("K_SERVICE", "export-status")  # set by Cloud Run / Cloud Functions gen2
    monkeypatch.delenv("EXPORT_AUTH", raising=False)
    with pytest.raises(ConfigError, match="EXPORT_AUTH='': must be set on a deployed function"):
        Settings.from_env()
    monkeypatch.setenv("EXPORT_AUTH", "open")  # IAM alone guards it: said explicitly
    assert Settings.from_env().auth_methods == ("open",)
