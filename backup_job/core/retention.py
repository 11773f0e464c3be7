"""The retention policy as a value: what ``settings.RETENTION`` (and ``spec.retention``) says.

Written ``last=N,daily=N,weekly=N,monthly=N`` (any subset, each at least 1). The rules are
listed once, in ``RULES``, in the order the policy is written; ``commands.prune`` applies a
policy, the operator renders one from a PgBackup.
"""

from __future__ import annotations

from dataclasses import dataclass

RULES = ("last", "daily", "weekly", "monthly")


@dataclass(frozen=True)
class RetentionPolicy:
    """How many of each kind to keep; 0 means the rule is not used."""

    last: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0

    def __bool__(self) -> bool:
        return any((self.last, self.daily, self.weekly, self.monthly))

    def describe(self) -> str:
        return ",".join(f"{rule}={getattr(self, rule)}" for rule in RULES if getattr(self, rule))

    @classmethod
    def parse(cls, text: str) -> RetentionPolicy:
        """``last=7,daily=14`` -> policy; ``ValueError`` with the reason otherwise."""
        values: dict[str, int] = {}
        for item in (part.strip() for part in text.split(",")):
            if not item:
                continue
            rule, sep, count = item.partition("=")
            rule = rule.strip().lower()
            if not sep or rule not in RULES:
                raise ValueError(f"{item!r} is not one of {', '.join(r + '=N' for r in RULES)}")
            if rule in values:
                raise ValueError(f"{rule} is given twice")
            if not count.strip().isdigit() or int(count) < 1:
                raise ValueError(f"{rule} must be a whole number of at least 1, not {count.strip()!r}")
            values[rule] = int(count)
        if not values:
            raise ValueError("no rules given")
        return cls(**values)
