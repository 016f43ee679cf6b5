"""Which header rule a host gets, and which secrets are resolved where."""

from __future__ import annotations

from hutch.runtime.container.egress.rules import host_rule, rule_for
from hutch.runtime.types import EgressSettings, HeaderRule

RULES = (
    HeaderRule("*.example.com", {"X-Rule": "wide"}),
    HeaderRule("*.api.example.com", {"X-Rule": "narrow"}),
    HeaderRule("api.example.com", {"X-Rule": "exact"}),
)


def _which(name: str) -> str | None:
    rule = rule_for(name, RULES)
    return None if rule is None else rule.headers["X-Rule"]


def test_exact_then_longest_wildcard_never_the_apex():
    assert _which("api.example.com") == "exact"
    assert _which("v1.api.example.com") == "narrow"
    assert _which("a.b.c.api.example.com") == "narrow"
    assert _which("www.example.com") == "wide"
    assert _which("example.com") is None
    assert _which("notexample.com") is None
    assert _which("example.com.evil.test") is None


def test_secrets_resolve_only_where_the_rule_names_them():
    settings = EgressSettings(
        rules=(HeaderRule("api.test", {"Authorization": "Bearer ${e2b.secrets.tok}", "X-Plain": "v"}),),
        secrets={"tok": "S3CRET", "other": "NOPE"},
    )
    rule = host_rule("api.test", settings)
    assert rule is not None
    assert dict(rule.headers) == {b"authorization": b"Bearer S3CRET", b"x-plain": b"v"}
    assert rule.secrets == {b"tok": b"S3CRET"}
    rewritten = rule.rewrite(
        [
            (b"authorization", b"mine"),
            (b"x-a", b"${e2b.secrets.tok}/${e2b.secrets.other}/${e2b.secrets.missing}"),
            (b"host", b"api.test"),
        ]
    )
    assert rewritten == [
        (b"x-a", b"S3CRET/${e2b.secrets.other}/${e2b.secrets.missing}"),
        (b"host", b"api.test"),
        (b"authorization", b"Bearer S3CRET"),
        (b"x-plain", b"v"),
    ]
    assert host_rule("other.test", settings) is None


def test_a_placeholder_of_an_unknown_secret_stays_literal():
    settings = EgressSettings(rules=(HeaderRule("api.test", {"X-Key": "${e2b.secrets.gone}"}),))
    rule = host_rule("api.test", settings)
    assert rule is not None and dict(rule.headers) == {b"x-key": b"${e2b.secrets.gone}"}
