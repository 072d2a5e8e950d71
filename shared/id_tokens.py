"""End users' OpenID Connect ID tokens: verified with PyJWT against the issuer's JWKS.

A token is accepted when (OpenID Connect Core 1.0, section 3.1.3.7, ID Token Validation):
- its header's `alg` is one of EXPORT_OIDC_ALGORITHMS (asymmetric only: `none` and HS* never, so
  a public JWKS key can never serve as an HMAC secret) and its `kid` names a key of the JWKS;
- the signature verifies with that key;
- `iss` equals EXPORT_OIDC_ISSUER, `aud` is (or contains) one of EXPORT_OIDC_AUDIENCE;
- `exp` is not past, `iat` and `nbf` (when present) are not in the future, each with
  EXPORT_OIDC_CLOCK_SKEW_S of leeway; `exp`, `iat`, `iss`, `aud` and `sub` are required;
- `sub` is a usable owner id (shared.identity.is_owner): the owner of the caller's jobs.

Keys: PyJWKClient caches the JWKS for JWKS_CACHE_S; a `kid` it does not know makes it fetch the
JWKS again (at most once per REFETCH_COOLDOWN_S, so forged kids cannot make us hammer the issuer).
The JWKS URL is EXPORT_OIDC_JWKS_URL, else the `jwks_uri` of {issuer}/.well-known/openid-configuration
(OpenID Connect Discovery 1.0), fetched once per process.

Firebase Auth / Identity Platform (the example issuer), per
https://firebase.google.com/docs/auth/admin/verify-id-tokens#verify_id_tokens_using_a_third-party_jwt_library:
issuer https://securetoken.google.com/PROJECT_ID, audience PROJECT_ID, RS256, `sub` = the user's
uid; JWKS https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com
(also the jwks_uri of the issuer's discovery document).

Errors: shared.errors.Unauthorized(invalid_token=True) for a token that fails any check;
TransientError when the issuer's keys cannot be fetched (503: the token may be good).
"""
from __future__ import annotations

import json
import threading
import urllib.request

import jwt

from shared.errors import TransientError, Unauthorized
from shared.identity import Caller, is_owner

JWKS_CACHE_S = 300  # how long fetched keys are trusted before the JWKS is fetched again
REFETCH_COOLDOWN_S = 30  # at least this long between refetches caused by an unknown kid (PyJWT's default)
FETCH_TIMEOUT_S = 5  # a JWKS or discovery fetch; the request waits on it
REQUIRED_CLAIMS = ("exp", "iat", "iss", "aud", "sub")


def looks_like_jwt(token: str) -> bool:
    """A JWS compact serialisation: three base64url parts joined by dots (RFC 7515 section 7.1)."""
    parts = token.split(".")
    return len(parts) == 3 and all(parts[:2]) and all(
        c.isalnum() or c in "-_" for part in parts for c in part)


def _refused(message: str) -> Unauthorized:
    return Unauthorized(message, invalid_token=True)


class IdTokenVerifier:
    """Verifies ID tokens of one issuer. Thread-safe; keep one per process (its key cache)."""

    def __init__(self, issuer: str, audiences: list[str], algorithms: list[str], leeway_s: float,
                 jwks_url: str | None = None, *, refetch_cooldown_s: float = REFETCH_COOLDOWN_S,
                 key_client: jwt.PyJWKClient | None = None) -> None:
        """key_client: a PyJWKClient to use instead of one on the JWKS URL (tests)."""
        self.issuer = issuer
        self.audiences = audiences
        self.algorithms = algorithms
        self.leeway_s = leeway_s
        self._jwks_url = jwks_url or None
        self._cooldown_s = refetch_cooldown_s
        self._client: jwt.PyJWKClient | None = key_client
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings) -> IdTokenVerifier:
        """From EXPORT_OIDC_* (shared.config.Settings)."""
        return cls(settings.oidc_issuer, settings.oidc_audiences, settings.oidc_algorithms.split(","),
                   settings.oidc_clock_skew_s, settings.oidc_jwks_url)

    def _keys(self) -> jwt.PyJWKClient:
        with self._lock:
            if self._client is None:
                url = self._jwks_url or self._discover()
                self._client = jwt.PyJWKClient(url, cache_jwk_set=True, lifespan=JWKS_CACHE_S,
                                               timeout=FETCH_TIMEOUT_S, cooldown_duration=self._cooldown_s)
            return self._client

    def _discover(self) -> str:
        """jwks_uri of the issuer's discovery document (its `issuer` must be ours: Discovery 4.3)."""
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        try:
            with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S) as response:  # noqa: S310 - the issuer's https URL
                doc = json.loads(response.read())
        except (OSError, ValueError) as exc:
            raise TransientError(f"the ID token issuer's discovery document could not be read ({type(exc).__name__})") from None
        if not isinstance(doc, dict) or doc.get("issuer") != self.issuer or not isinstance(doc.get("jwks_uri"), str):
            raise TransientError("the ID token issuer's discovery document names another issuer or no jwks_uri")
        return doc["jwks_uri"]

    def verify(self, token: str) -> Caller:
        """The caller a valid ID token names: Caller(sub, "id_token"). Raises Unauthorized, TransientError."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _refused("the ID token is malformed") from None
        if header.get("alg") not in self.algorithms:  # before any fetch: none, HS256 and the like
            raise _refused(f"the ID token's algorithm is not one of {', '.join(self.algorithms)}")
        if not isinstance(header.get("kid"), str):
            raise _refused("the ID token names no key (kid)")
        try:
            key = self._keys().get_signing_key(header["kid"])
        except jwt.PyJWKClientConnectionError:
            raise TransientError("the ID token issuer's keys could not be fetched") from None
        except jwt.PyJWKClientError:
            raise _refused("the ID token was signed by a key the issuer does not publish") from None
        try:
            claims = jwt.decode(token, key, algorithms=self.algorithms, audience=self.audiences, issuer=self.issuer,
                                leeway=self.leeway_s, options={"require": list(REQUIRED_CLAIMS)})
        except jwt.ExpiredSignatureError:
            raise _refused("the ID token has expired") from None
        except jwt.ImmatureSignatureError:
            raise _refused("the ID token is not valid yet (iat or nbf in the future)") from None
        except jwt.InvalidAudienceError:
            raise _refused("the ID token is for another audience") from None
        except jwt.InvalidIssuerError:
            raise _refused("the ID token is from another issuer") from None
        except jwt.MissingRequiredClaimError as exc:
            raise _refused(f"the ID token has no {exc.claim} claim") from None
        except jwt.InvalidSignatureError:
            raise _refused("the ID token's signature does not verify") from None
        except jwt.PyJWTError:
            raise _refused("the ID token is invalid") from None
        if not is_owner(claims.get("sub")):
            raise _refused("the ID token's sub is not a usable owner id (1-128 printable ASCII characters)")
        return Caller(claims["sub"], "id_token")
