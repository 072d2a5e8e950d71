"""The SSRF rules of webhook URLs (shared/webhook_url.py) and our Standard Webhooks signature checked
by the independent `standardwebhooks` package. Pure."""
import time
from datetime import datetime, timezone

import pytest
import standardwebhooks

from shared.webhook_signing import headers, new_secret, signature
from shared.webhook_url import RefusedUrl, check, forbidden_reason


@pytest.mark.parametrize("address,why", [
    ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("::1", "loopback"),
    ("10.0.0.1", "private"), ("172.16.5.4", "private"), ("192.168.1.1", "private"), ("fd12::1", "private"),
    ("169.254.169.254", "link-local"), ("fe80::1%eth0", "link-local"),
    ("100.64.0.1", "shared (CGNAT)"), ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("224.0.0.251", "multicast"), ("ff02::1", "multicast"), ("240.0.0.1", "private"),  # 240/4 is in the stdlib's private list
    ("::ffff:169.254.169.254", "link-local (inside an IPv6 address)"),
    ("2002:7f00:1::", "loopback (inside an IPv6 address)"),  # 6to4 of 127.0.0.1
    ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "private (inside an IPv6 address)"),  # Teredo of 10.0.0.1
    ("192.0.2.1", "private"),  # documentation range: never a receiver
])
def test_forbidden_addresses(address, why):
    assert forbidden_reason(address) == why


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"])
def test_public_addresses_pass(address):
    assert forbidden_reason(address) is None


def resolver(table):
    return lambda host, port: table[host]


def test_allow_entries_let_exact_host_port_or_a_cidr_through_and_nothing_else():
    r = resolver({"localhost": ["127.0.0.1"]})
    assert check("https://localhost:8443/h", r, allow_http=False, allow=("localhost:8443",)).address == "127.0.0.1"
    with pytest.raises(RefusedUrl, match="loopback"):
        check("https://localhost:8444/h", r, allow_http=False, allow=("localhost:8443",))
    assert check("https://127.0.0.1:1/h", r, allow_http=False, allow=("127.0.0.1/32",)).port == 1
    with pytest.raises(RefusedUrl, match="loopback"):
        check("https://127.0.0.2/h", r, allow_http=False, allow=("127.0.0.1/32",))


@pytest.mark.parametrize("url,why", [
    ("https://metadata/computeMetadata/v1/", "metadata server"),
    ("https://METADATA.google.internal./x", "metadata server"),
    ("https://a.example.com/h#frag", "fragment"),
    ("https://a.example.com:99999/h", "not a valid URL"),
    ("https:///h", "must name a host"),
    ("https://a.example.com/h x", "spaces or control characters"),
    ("https://a@a.example.com/", "user name or password"),
    ("//a.example.com/", "must use https"),
    (12, "absolute https URL"),
])
def test_malformed_urls_are_refused(url, why):
    with pytest.raises(RefusedUrl, match=why):
        check(url, resolver({"a.example.com": ["93.184.215.14"]}), allow_http=False)


def test_http_only_when_allowed_and_the_target_keeps_the_checked_address():
    r = resolver({"a.example.com": ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]})
    t = check("http://a.example.com/h?x=1", r, allow_http=True)
    assert (t.scheme, t.host, t.port, t.address) == ("http", "a.example.com", 80, "93.184.215.14")


def test_our_signature_verifies_with_the_standardwebhooks_package():
    secret, body, now = new_secret(), b'{"type":"export.queued","data":{"jobId":"j"}}', int(time.time())
    assert standardwebhooks.Webhook(secret).verify(body, headers(secret, "evt_1", now, body)) == {
        "type": "export.queued", "data": {"jobId": "j"}}
    theirs = standardwebhooks.Webhook(secret).sign("evt_1", datetime.fromtimestamp(now, timezone.utc), body.decode())
    assert signature(secret, "evt_1", now, body) == theirs
    with pytest.raises(ValueError):
        signature("not-a-secret", "evt_1", now, body)
