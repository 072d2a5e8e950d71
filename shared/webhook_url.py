"""Webhook URLs against server-side request forgery (SSRF): which URLs a job may name, and which
addresses a delivery may connect to. Checked at export_start and again at every delivery (a name
may resolve elsewhere by then). Pure, except `system_resolver` (the resolver is a port: tests pass
their own).

Rules (OWASP SSRF Prevention Cheat Sheet; the ranges are the stdlib ipaddress module's properties):
- https only, unless EXPORT_WEBHOOK_ALLOW_HTTP (the local stacks); no user:password@; a host; no
  fragment; at most MAX_URL_CHARS;
- never the metadata server's names (metadata.google.internal, metadata);
- every address the host is or resolves to must be public: not loopback, private (RFC 1918,
  fc00::/7), link-local (169.254/16 with 169.254.169.254, fe80::/10), unspecified, multicast,
  reserved, shared/CGNAT (100.64/10), nor an IPv4-mapped/6to4/Teredo IPv6 form of those;
- EXPORT_WEBHOOK_ALLOW_PRIVATE_HOSTS (local only; infra/deploy.sh refuses it) lets exact "host:port"
  entries or CIDR ranges through, so the test receiver on loopback passes the same check.
"""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Callable
from urllib.parse import urlsplit

MAX_URL_CHARS = 2000
METADATA_NAMES = frozenset({"metadata.google.internal", "metadata"})
_CGNAT = ipaddress.ip_network("100.64.0.0/10")

Resolver = Callable[[str, int], list[str]]  # (host, port) -> the addresses it resolves to; OSError if none


def system_resolver(host: str, port: int) -> list[str]:
    """Every address getaddrinfo gives for host:port (TCP). Raises OSError (socket.gaierror)."""
    return list(dict.fromkeys(info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)))


class RefusedUrl(ValueError):
    """A webhook URL or its address is not allowed; str() says why (shown to the client and in status)."""


@dataclass(frozen=True)
class Target:
    """A checked webhook URL: scheme, host (lower case, IPv6 without brackets), port, and the address
    to connect to (the first allowed one resolved)."""

    url: str
    scheme: str
    host: str
    port: int
    address: str


def forbidden_reason(address: str) -> str | None:
    """Why `address` may not be a webhook's destination ("loopback", "private", ...), or None."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # a zone id (fe80::1%eth0) changes nothing
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None:
            why = forbidden_reason(str(embedded))
            return f"{why} (inside an IPv6 address)" if why else None
    for reason, hit in (("loopback", ip.is_loopback), ("link-local", ip.is_link_local),
                        ("unspecified", ip.is_unspecified), ("multicast", ip.is_multicast),
                        ("shared (CGNAT)", ip.version == 4 and ip in _CGNAT),
                        ("private", ip.is_private), ("reserved", ip.is_reserved),
                        ("not globally routable", not ip.is_global)):
        if hit:
            return reason
    return None


def _allowed(host: str, port: int, address: str, allow: tuple[str, ...]) -> bool:
    """Whether EXPORT_WEBHOOK_ALLOW_PRIVATE_HOSTS lets host:port (exact) or `address` (a CIDR) through."""
    for entry in allow:
        if "/" in entry:
            try:
                if ipaddress.ip_address(address.split("%", 1)[0]) in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue
        elif entry.lower() in (f"{host}:{port}", f"[{host}]:{port}"):
            return True
    return False


def parse(url: object, *, allow_http: bool) -> tuple[str, str, int]:
    """(scheme, host, port) of a webhook URL's text. Raises RefusedUrl."""
    if not isinstance(url, str) or not url:
        raise RefusedUrl("must be an absolute https URL")
    if len(url) > MAX_URL_CHARS:
        raise RefusedUrl(f"must be at most {MAX_URL_CHARS} characters")
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
        raise RefusedUrl("must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise RefusedUrl(f"is not a valid URL ({exc})") from None
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme.lower() not in schemes:
        raise RefusedUrl("must use https" if not allow_http else "must use https or http")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise RefusedUrl("must not contain a user name or password")
    if not parts.hostname:
        raise RefusedUrl("must name a host")
    if parts.fragment or url.endswith("#"):
        raise RefusedUrl("must not have a fragment")
    scheme = parts.scheme.lower()
    return scheme, parts.hostname.rstrip("."), port or (443 if scheme == "https" else 80)


def check(url: object, resolve: Resolver, *, allow_http: bool, allow: tuple[str, ...] = ()) -> Target:
    """Check a webhook URL now: its text (parse) and every address its host resolves to. Returns the
    Target to connect to (connect to Target.address, never to the name again: a DNS rebind between
    check and connect cannot swap it). Raises RefusedUrl naming the rule broken."""
    scheme, host, port = parse(url, allow_http=allow_http)
    if host in METADATA_NAMES:
        raise RefusedUrl(f"host {host} is the metadata server")
    try:
        addresses = [str(ipaddress.ip_address(host))]  # an IP literal is its own address
    except ValueError:
        try:
            addresses = resolve(host, port)
        except OSError as exc:
            raise RefusedUrl(f"host {host} does not resolve ({type(exc).__name__})") from None
        if not addresses:
            raise RefusedUrl(f"host {host} does not resolve")
    for address in addresses:
        why = forbidden_reason(address)
        if why and not _allowed(host, port, address, allow):
            shown = host if host == address else f"{host} ({address})"
            raise RefusedUrl(f"host {shown} is a {why} address")
    return Target(url=str(url), scheme=scheme, host=host, port=port, address=addresses[0])
