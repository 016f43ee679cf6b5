"""Which header rule applies to a host, and the ``${e2b.secrets.NAME}`` placeholders in headers.

A rule's pattern is an exact name (``api.example.com``) or a wildcard (``*.example.com``: every name below
it, at any depth, never the apex). The exact rule wins, then the longest matching wildcard; rule sets are
never merged. A rule does not open anything: the egress policy still decides whether the host is reached.

A secret is sent only to the hosts whose rule names it (in one of its header values): placeholders of those
secrets are resolved in the rule's values and in the sandbox's own request headers; any other placeholder
stays as it is, literally.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from ...types import EgressSettings, HeaderRule
from .sni import normalise_name

PLACEHOLDER = re.compile(r"\$\{e2b\.secrets\.([^{}\x00-\x1f\x7f-\x9f]+)\}")
PLACEHOLDER_BYTES = re.compile(rb"\$\{e2b\.secrets\.([^{}\x00-\x1f\x7f-\x9f]+)\}")


@dataclass(frozen=True)
class HostRule:
    """What to do to the requests of one host: headers to set (names lower-cased, values resolved) and the
    secrets the rule names, which may be resolved in the sandbox's own headers too."""

    pattern: str
    headers: tuple[tuple[bytes, bytes], ...]
    secrets: dict[bytes, bytes]

    def rewrite(self, headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """The request's headers with the rule applied: the rule's headers replace those of the same name,
        and the rule's secrets are resolved in the others."""
        replaced = {name for name, _ in self.headers}
        kept = [(name, self.resolve(value)) for name, value in headers if name.lower() not in replaced]
        return kept + list(self.headers)

    def resolve(self, value: bytes) -> bytes:
        if b"${" not in value:
            return value
        return PLACEHOLDER_BYTES.sub(lambda m: self.secrets.get(m.group(1), m.group(0)), value)


def rule_for(name: str, rules: Iterable[HeaderRule]) -> HeaderRule | None:
    """The rule for the (normalised) host ``name``: exact first, then the longest wildcard suffix."""
    best: HeaderRule | None = None
    best_suffix = -1
    for rule in rules:
        pattern = rule.pattern.strip().lower().rstrip(".")
        if pattern.startswith("*."):
            suffix = normalise_name(pattern[2:])
            if suffix is not None and name.endswith("." + suffix) and len(suffix) > best_suffix:
                best, best_suffix = rule, len(suffix)
        elif normalise_name(pattern) == name:
            return rule
    return best


def host_rule(name: str, settings: EgressSettings) -> HostRule | None:
    """The resolved rule for ``name``, or None if no rule matches it."""
    rule = rule_for(name, settings.rules)
    if rule is None:
        return None
    named = {m.group(1) for value in rule.headers.values() for m in PLACEHOLDER.finditer(value)}
    secrets = {n.encode(): settings.secrets[n].encode() for n in named if n in settings.secrets}
    resolved = HostRule(rule.pattern, (), secrets)
    headers = tuple(
        (key.strip().lower().encode(), resolved.resolve(value.encode()))
        for key, value in rule.headers.items()
    )
    return HostRule(rule.pattern, headers, secrets)
