"""The settings schema's machinery: a ``Variable`` declares one environment variable, whole.

A variable is declared once (in ``settings``) with everything every consumer needs:

- ``name`` and ``doc`` (one line), for the configuration reference's table;
- ``parse``: text to a typed value, raising ``Invalid`` with what is wrong;
- ``example``: example values, separated by ``", "``;
- ``note``: what someone editing ``.env.example`` should read above the variable's line, when
  its line alone would not do (``.env.example`` shows the default, else the first example);
- ``default``: the text a user would write for the default (``""``: unset). The typed
  default is ``parse(default)``, so the documented default and the one the code uses can
  never differ;
- ``secret``: its value is registered with the log redaction and never printed;
- ``file_form``: ``<NAME>_FILE`` may hold the path of a file with the value (Kubernetes and
  Docker secrets); setting both is an error;
- ``owner``: ``pgbackup`` for the job's own knobs, ``operator`` for the operator's;
  ``libpq`` and ``sdk`` for the client
  libraries' own variables that pgbackup reads or the operator renders, which keep their
  libraries' meaning;
- ``format``: a typed value back to the text ``parse`` accepts, for the operator, which
  renders a PgBackup into these variables.

A ``Variable`` written in the body of a settings group (``settings.group.Group``) is also
that group's field: read on the class it is the declaration (``DumpSettings.include.name``),
read on an instance it is the typed value (``settings.dump.include``). The declaration and
the field are one statement, so adding a setting is one edit (then ``python -m
devenv.settings_docs`` makes the docs' tables and ``.env.example`` from it).

Reading turns every complaint into one ``ConfigError`` line in one shape, naming the
variable, the value (never a secret's), the problem and an example:
``configuration error: NAME='value' problem; for example NAME=example``. A value that looks
like a key or credential (``credentials``: an age identity, a private key, a PEM block, a long
random token) is never shown either, whatever the variable: the line says
``NAME=<redacted: looks like a private key>``, and any piece of it the parser quoted is taken
out. An age identity given where age recipients belong (a variable whose example is an
``age1...`` recipient) gets its own line: put its public key there, keep the identity for
decrypting.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar, overload

from . import credentials
from .errors import ConfigError

T = TypeVar("T")
Owner = Literal["pgbackup", "operator", "libpq", "sdk"]


class Invalid(ValueError):
    """A parser's complaint: the problem, and an example better than the variable's own."""

    def __init__(self, problem: str, example: str | None = None, separator: str = " ", conceal: bool = False) -> None:
        super().__init__(problem)
        self.problem = problem
        self.example = example
        self.separator = separator  # between the shown value and the problem
        self.conceal = conceal  # the value may carry a credential (a URL's user or query): never shown


class Secret:
    """A string that never shows itself in logs, reprs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Variable(Generic[T]):
    """One environment variable: its name, meaning, parser, default and nature."""

    name: str
    parse: Callable[[str], T]
    doc: str
    default: str = ""
    example: str = ""
    note: str = ""  # the comment above its line in .env.example
    shown_default: str = ""  # the docs' words when the default is not a value ("all")
    secret: bool = False
    file_form: bool = False
    owner: Owner = "pgbackup"
    format: Callable[[T], str] = str
    attribute: str = field(default="", compare=False, repr=False)  # its field's name in a group

    def __set_name__(self, owner: type, name: str) -> None:
        object.__setattr__(self, "attribute", name)

    @overload
    def __get__(self, instance: None, owner: type) -> Variable[T]: ...

    @overload
    def __get__(self, instance: object, owner: type) -> T: ...

    def __get__(self, instance: object | None, owner: type) -> Any:
        """On the class, the declaration; an instance holds its value in its own ``__dict__``,
        which a non-data descriptor leaves first, so this runs only for an unset field."""
        if instance is None:
            return self
        raise AttributeError(f"{owner.__name__}.{self.attribute} ({self.name}) was never read")

    @property
    def file_name(self) -> str:
        return f"{self.name}_FILE"

    def problem(self, value: str, invalid: Invalid) -> ConfigError:
        """The one-line error for ``value``; a secret's value is never shown, nor a value that
        looks like a key or credential (nor the pieces of it ``invalid`` quotes)."""
        example = invalid.example if invalid.example is not None else shlex.quote(self.examples()[0])
        looks = credentials.kind(value)
        if looks == credentials.AGE_IDENTITY and self.example.startswith("age1"):
            return ConfigError(
                f"configuration error: {self.name} holds a private age identity (not shown); put "
                "its public key here instead (age1..., as `age-keygen -y` prints it) and keep the "
                f"identity for {credentials.IDENTITY_SETTING}; for example {self.name}={example}"
            )
        if looks:
            shown = self.name if self.secret else f"{self.name}=<redacted: looks like {looks}>"
            detail = credentials.scrub(invalid.problem, value)
        else:
            shown = f"{self.name}={value!r}" if value and not self.secret and not invalid.conceal else self.name
            detail = invalid.problem
        return ConfigError(
            f"configuration error: {shown}{invalid.separator}{detail}; for example {self.name}={example}"
        )

    def read(self, env: Mapping[str, str]) -> T:
        """The typed value from ``env``; the default when unset or empty."""
        value = env.get(self.name, "")
        try:
            return self.parse(value if value != "" else self.default)
        except Invalid as exc:
            raise self.problem(value, exc) from exc

    @property
    def default_value(self) -> T:
        """The typed default (what an unset variable means)."""
        return self.parse(self.default)

    def render(self, value: T) -> str:
        """``value`` as this variable's text (what ``read`` turns back into ``value``)."""
        return self.format(value)

    def examples(self) -> list[str]:
        """The example values (``example`` lists them separated by ``", "``), else the default."""
        return self.example.split(", ") if self.example else [self.default]

    @property
    def documented_default(self) -> str:
        return self.shown_default or (f"`{self.default}`" if self.default else "none")


# Parsers: each takes the text (the default's text when unset) and returns the value.


def text(value: str) -> str:
    return value


def optional_text(value: str) -> str | None:
    return value or None


def optional_path(value: str) -> Path | None:
    return Path(value) if value else None


def format_optional(value: object) -> str:
    """None (unset) as empty text, anything else as ``str`` does."""
    return "" if value is None else str(value)


def integer(low: int, high: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError as exc:
            raise Invalid(f"is not a whole number from {low} to {high}") from exc
        if not low <= number <= high:
            raise Invalid(f"is out of range: it must be from {low} to {high}")
        return number

    return parse


def optional_integer(low: int, high: int) -> Callable[[str], int | None]:
    """A whole number in range, or None when unset."""
    number = integer(low, high)

    def parse(value: str) -> int | None:
        return number(value) if value.strip() else None

    return parse


def duration(value: str) -> int:
    """Seconds from ``90``, ``90s``, ``15m`` or ``2h``."""
    match = re.fullmatch(r"\s*(\d+)\s*([smh]?)\s*", value)
    if not match:
        raise Invalid("is not a duration", "300, 90s, 15m or 2h")
    return int(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def bound(value: str) -> int:
    """A duration that bounds a network wait: at least one second. There is no ``0`` for
    "forever" (every network wait needs a bound), and the HTTP stack refuses a zero timeout
    only when the client is built, as an unexpected error instead of this line."""
    seconds = duration(value)
    if seconds < 1:
        raise Invalid("must be at least 1 second: every network wait needs a bound", "60, 90s or 2m")
    return seconds


def choice(*choices: str, fold: bool = True) -> Callable[[str], str]:
    """One of ``choices``; folded to lower case unless ``fold`` is False. The first choice
    is the example; an empty string among them allows unset."""

    def parse(value: str) -> str:
        folded = value.lower() if fold else value
        if folded not in choices:
            raise Invalid(f"must be one of {' | '.join(choices)}", choices[0])
        return folded

    return parse


def boolean(value: str) -> bool:
    folded = value.strip().lower()
    if folded in ("1", "true", "yes", "on"):
        return True
    if folded in ("0", "false", "no", "off"):
        return False
    raise Invalid("must be true or false", "true")


def format_boolean(value: bool) -> str:
    return "true" if value else "false"


def fraction(value: str) -> float:
    """``0.5`` or ``50%``, from 0 to below 1."""
    stripped = value.strip()
    try:
        number = float(stripped.rstrip("%")) / (100 if stripped.endswith("%") else 1)
    except ValueError as exc:
        raise Invalid("is not a fraction from 0 to 1", "0.5") from exc
    if not 0 <= number < 1:
        raise Invalid("must be from 0 (off) to below 1", "0.5")
    return number


def format_number(value: float) -> str:
    """``1`` not ``1.0``, ``0.25`` as written."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def patterns(value: str) -> tuple[str, ...]:
    """Comma-separated names or shell-style globs (fnmatch accepts any string as a glob)."""
    return tuple(item.strip() for item in value.split(",") if item.strip())


def format_patterns(value: tuple[str, ...]) -> str:
    return ",".join(value)
