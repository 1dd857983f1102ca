"""The request guard's rules one by one (the servers' behaviour over HTTP is tested in
tests/integration/service/test_service_hardening.py and tests/integration/serving/test_serve_hardening.py)."""
from __future__ import annotations

import pytest
from starlette.datastructures import Headers

from tuneforge.httpguard import allowed_hosts, cross_site_problem, host_name, is_loopback


@pytest.mark.parametrize("value,name", [("127.0.0.1:8750", "127.0.0.1"), ("LocalHost", "localhost"),
                                        ("[::1]:8000", "::1"), ("::1", "::1"), ("evil.example:80", "evil.example"),
                                        ("", None), ("a/b", None), ("user@host", None), ("[::1", None)])
def test_host_name(value, name):
    assert host_name(value) == name


def test_allowed_hosts():
    assert allowed_hosts("127.0.0.1") == {"127.0.0.1", "localhost", "::1"}
    assert allowed_hosts("::1") == {"127.0.0.1", "localhost", "::1"}
    assert allowed_hosts("10.1.2.3", ["proxy.example:443"]) == {"10.1.2.3", "proxy.example"}
    assert allowed_hosts("0.0.0.0") is None  # any name: a token is required there
    assert allowed_hosts("0.0.0.0", ["tf.example"]) == {"tf.example"}


def _headers(**h: str) -> Headers:
    return Headers({"host": "127.0.0.1:8750", **{k.replace("_", "-"): v for k, v in h.items()}})


@pytest.mark.parametrize("method,headers,refused", [
    ("GET", dict(origin="http://evil.example"), False),  # reading is not a state change (and CORS hides it)
    ("POST", {}, False),  # a program: no browser labels
    ("POST", dict(origin="http://127.0.0.1:8750", sec_fetch_site="same-origin"), False),
    ("POST", dict(sec_fetch_site="none"), False),  # typed by the user
    ("POST", dict(origin="http://evil.example"), True),
    ("POST", dict(origin="http://127.0.0.1:9999"), True),  # same site, another port: another origin
    ("POST", dict(origin="null"), True),  # sandboxed iframes and data: URLs
    ("DELETE", dict(sec_fetch_site="cross-site"), True),
    ("PUT", dict(sec_fetch_site="same-site"), True),
    ("POST", dict(referer="http://evil.example/page"), True),
    ("POST", dict(referer="http://127.0.0.1:8750/tasks/new"), False),
    ("POST", dict(origin="http://evil.example", authorization="Bearer k"), False),  # needs a preflight cross-site
])
def test_cross_site_problem(method, headers, refused):
    assert (cross_site_problem(method, _headers(**headers)) is not None) is refused


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("::1", True), ("localhost", True),
                                            ("127.0.0.2", True), ("0.0.0.0", False), ("192.168.1.5", False),
                                            ("example.com", False), ("", False)])
def test_is_loopback_the_one_rule_of_every_server(host, loopback):
    assert is_loopback(host) is loopback
