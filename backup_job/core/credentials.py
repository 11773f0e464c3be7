"""What looks like a private key or a credential, so that no message repeats one.

A configuration error shows the value it refuses (``NAME='value' problem``), which makes typos
easy to see, and would print a key pasted into the wrong variable in full: an age identity
where its public recipient belongs, an SSH or TLS private key, a bucket's secret key. Such an
error line reaches the terminal, the container log and the termination message (Kubernetes
keeps it in the Pod's status). ``kind`` recognises these values, and ``schema.Variable.problem``
then shows ``<redacted: looks like ...>`` instead of the value; ``scrub`` takes out of a
parser's complaint any piece of them it quotes (``keys.recipient`` quotes the first 20
characters of an entry it cannot read).

Recognised (letter case ignored where the format allows):

- age identities, ``AGE-SECRET-KEY-1...``;
- private keys: anything saying ``PRIVATE KEY`` (PEM and OpenSSH armour), a PuTTY key file,
  and OpenSSH's key body without its armour (``b3BlbnNzaC1rZXktdjE``, base64 of
  ``openssh-key-v1``);
- any other PEM block (``-----BEGIN``);
- long random-looking tokens: ``TOKEN_LENGTH`` or more characters of the base64 or base64url
  alphabet mixing capitals, small letters and digits, at ``TOKEN_BITS`` bits of entropy per
  character or more and switching between those kinds as often as random text does
  (``TOKEN_SWITCHES``): an AWS secret access key, an API token; or as many hex digits mixing
  digits and letters (a hex token). Paths (a leading ``/``), camel-case words and SSH public
  keys (their base64 starts ``AAAA``) fall below.

These are heuristics that decide only what a message shows, never what a setting accepts.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter

AGE_IDENTITY = "a private age identity"
PRIVATE_KEY = "a private key"
PEM_BLOCK = "a PEM key block"
TOKEN = "a secret token"
IDENTITY_SETTING = "BACKUP_DECRYPT_IDENTITY_PATH"  # settings.DECRYPT_IDENTITY_PATH (settings imports this room)
TOKEN_LENGTH = 32
TOKEN_BITS = 4.0  # random base62 of 32 characters measures 4.0 to 4.9; words and paths less
TOKEN_SWITCHES = 0.38  # share of neighbours of different kinds (capital, small, digit): random
# base64 of 32 characters has 0.64 on average (0.42 or more 99 times in 100), camel case 0.25-0.32
HEX_BITS = 3.0  # random hex of 32 characters measures 3.0 to 3.9

_AGE = re.compile(r"AGE-SECRET-KEY-1[0-9A-Z]*", re.IGNORECASE)
_MARKERS = (
    (re.compile(r"PRIVATE KEY|PuTTY-User-Key-File|b3BlbnNzaC1rZXktdjE", re.IGNORECASE), PRIVATE_KEY),
    (re.compile(r"-----BEGIN", re.IGNORECASE), PEM_BLOCK),
)
_RUN = re.compile(r"[A-Za-z0-9+/_-]+")  # the alphabet of base64, base64url and hex ('=' pads, or assigns)
_HEX = re.compile(r"[0-9a-fA-F]+")
_LABEL = re.compile(r"[A-Z-]+")  # BEGIN, END, -----: the armour's words, not key material
_SHORTEST_PIECE = 6  # a quoted piece of a key shorter than this is not worth hiding


def kind(value: str) -> str | None:
    """What ``value`` looks like (``AGE_IDENTITY``, ``PRIVATE_KEY``, ``PEM_BLOCK``, ``TOKEN``),
    or None for an ordinary value."""
    if _AGE.search(value):
        return AGE_IDENTITY
    for pattern, name in _MARKERS:
        if pattern.search(value):
            return name
    return TOKEN if any(_random_looking(run) for run in _RUN.findall(value)) else None


def secret_parts(value: str) -> list[str]:
    """The pieces of ``value`` that no message may repeat (empty for an ordinary value)."""
    looks = kind(value)
    if looks == AGE_IDENTITY:
        return _AGE.findall(value)
    if looks in (PRIVATE_KEY, PEM_BLOCK):
        return [run for run in _RUN.findall(value) if len(run) >= _SHORTEST_PIECE and not _LABEL.fullmatch(run)]
    return [run for run in _RUN.findall(value) if _random_looking(run)]


def scrub(text: str, value: str) -> str:
    """``text`` (a complaint about ``value``) with every quoted piece of a secret part of
    ``value`` replaced by ``<redacted>``."""
    parts = secret_parts(value)
    if not parts:
        return text

    def hide(match: re.Match[str]) -> str:
        word = match.group(0)
        if len(word) >= _SHORTEST_PIECE and any(word in part or part in word for part in parts):
            return "<redacted>"
        return word

    return _RUN.sub(hide, text)


def _random_looking(run: str) -> bool:
    if len(run) < TOKEN_LENGTH or run.startswith(("/", "AAAA")):  # a path; an SSH public key's body
        return False
    has_digit, has_letter = any(c.isdigit() for c in run), any(c.isalpha() for c in run)
    if _HEX.fullmatch(run):
        return has_digit and has_letter and _bits(run) >= HEX_BITS
    mixed = has_digit and any(c.isupper() for c in run) and any(c.islower() for c in run)
    return mixed and _bits(run) >= TOKEN_BITS and _switches(run) >= TOKEN_SWITCHES


def _switches(run: str) -> float:
    """How often a character is of another kind (capital, small letter, digit, other) than the
    one before it: often in random text, seldom in words written in camel case."""

    def kind_of(char: str) -> int:
        return 0 if char.isupper() else 1 if char.islower() else 2 if char.isdigit() else 3

    return sum(kind_of(a) != kind_of(b) for a, b in itertools.pairwise(run)) / (len(run) - 1)


def _bits(run: str) -> float:
    """Shannon entropy of the run's characters, in bits per character."""
    counts = Counter(run).values()
    return -sum(n / len(run) * math.log2(n / len(run)) for n in counts)
