"""libpq's ``require_auth`` list: which authentication requests a client answers.

``PGREQUIREAUTH`` (libpq 16 and later) is a comma-separated list of methods the client accepts
from the server, or of methods it refuses, each written ``!method``; the two forms do not mix.
Methods: ``password`` (the password in cleartext), ``md5``, ``gss``, ``sspi``,
``scram-sha-256``, ``oauth`` (libpq 18) and ``none`` (the server asks for nothing: trust,
certificates, peer). ``AuthMethods`` is the parsed list; ``allows`` answers for one method
as libpq would. The policy pgbackup builds on it is ``core.pgauth``'s.
"""

from __future__ import annotations

from dataclasses import dataclass

from .schema import Invalid

METHODS = ("password", "md5", "gss", "sspi", "scram-sha-256", "oauth", "none")
EXAMPLE = "scram-sha-256,md5"


@dataclass(frozen=True)
class AuthMethods:
    """The methods a ``require_auth`` list names, and whether it names them to refuse them."""

    names: tuple[str, ...]
    negated: bool = False

    def allows(self, method: str) -> bool:
        return (method not in self.names) if self.negated else (method in self.names)

    def only(self, methods: set[str]) -> bool:
        """Whether every method this list allows is among ``methods``."""
        return not self.negated and set(self.names) <= methods

    def __str__(self) -> str:
        return ",".join(("!" if self.negated else "") + name for name in self.names)


def parse(value: str) -> AuthMethods | None:
    """``PGREQUIREAUTH``'s text; None when unset (pgbackup's default applies)."""
    words = [word.strip() for word in value.split(",")] if value.strip() else []
    if not words:
        return None
    negated = {word.startswith("!") for word in words}
    if len(negated) > 1:
        raise Invalid("mixes methods to allow and methods to refuse (!method); write one kind only", EXAMPLE)
    names = tuple(word.lstrip("!") for word in words)
    unknown = [name for name in names if name not in METHODS]
    if unknown:
        raise Invalid(f"names {unknown[0]!r}, which is no authentication method ({', '.join(METHODS)})", EXAMPLE)
    return AuthMethods(names, negated.pop())


def describe(methods: AuthMethods | None) -> str:
    return "" if methods is None else str(methods)
