"""A settings group: a frozen value whose fields are the ``Variable``s declared in its body.

A group is declared by writing its variables as class attributes::

    class DumpSettings(Group):
        include = Variable("BACKUP_DATABASES", patterns, "Names or globs to back up.")

``DumpSettings.include`` is the declaration (its name for messages, the operator's rendering,
the docs' tables); ``DumpSettings.read(env)`` reads every declared variable at once, and
``settings.include`` on the instance is the typed value. Nothing else lists a group's
variables, so adding a setting is one edit, its declaration, then ``python -m
devenv.settings_docs`` to make the docs' tables and ``.env.example`` anew.

A group checks what one variable alone cannot in ``settle`` (a level in its format's range,
a key that needs another setting). Instances are frozen and compare by value; their repr
never shows a secret's value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

from ..schema import Variable

G = TypeVar("G", bound="Group")


class Group:
    """The base of every settings group (see the module docstring)."""

    _declared: ClassVar[dict[str, Variable[Any]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._declared = {name: value for name, value in vars(cls).items() if isinstance(value, Variable)}

    def __init__(self, *positional: Any, **values: Any) -> None:
        names = list(self._declared)
        if len(positional) > len(names):
            raise TypeError(f"{type(self).__name__} takes at most {len(names)} values")
        for name, value in zip(names, positional, strict=False):
            if name in values:
                raise TypeError(f"{type(self).__name__} got {name} twice")
            values[name] = value
        unknown = set(values) - set(names)
        if unknown:
            raise TypeError(f"{type(self).__name__} has no setting {', '.join(sorted(unknown))}")
        for name, variable in self._declared.items():
            object.__setattr__(self, name, values[name] if name in values else variable.default_value)
        self.settle()

    @classmethod
    def variables(cls) -> tuple[Variable[Any], ...]:
        """The group's variables, in the order they are declared."""
        return tuple(cls._declared.values())

    @classmethod
    def read(cls: type[G], env: Mapping[str, str]) -> G:
        """Every variable of the group from ``env`` (see ``Variable.read``), then ``settle``."""
        return cls(**{name: variable.read(env) for name, variable in cls._declared.items()})

    def settle(self) -> None:
        """Check (or complete, with ``object.__setattr__``) what needs several fields at once."""

    def _values(self) -> tuple[Any, ...]:
        return tuple(self.__dict__[name] for name in self._declared)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen")

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        shown = (
            f"{name}={'***' if variable.secret else repr(self.__dict__[name])}"
            for name, variable in self._declared.items()
        )
        return f"{type(self).__name__}({', '.join(shown)})"
