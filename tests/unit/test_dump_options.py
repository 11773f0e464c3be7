"""BACKUP_PG_DUMP_OPTIONS is read the way pg_dump reads it: a refused option stays refused
whether it is abbreviated, bundled, aliased or given its value in the next word.

The offline tests; those that run pgbackup or real services are in tests/integration/test_dump_options.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from backup_job.core.errors import ConfigError
from backup_job.core.settings import load_settings

BYPASSES = [  # what a string comparison let through, and the option pg_dump really sees
    ("--form=custom", "--format"),
    ("--for custom", "--format"),
    ("-vFc", "-F"),
    ("-vF c", "-F"),
    ("--compr=9", "--compress"),
    ("-Z9", "-Z"),
    ("--cre", "--create"),
    ("-vC", "-C"),
    ("-cv", "-c"),
    ("--clea", "--clean"),
    ("--jobs 4", "--jobs"),
    ("-j4", "-j"),
    ("--db=other", "--dbname"),
    ("-dother", "-d"),
    ("--file /tmp/x", "--file"),
    ("-vf/tmp/x", "-f"),
    ("--passw", "--password"),
    ("-wW", "-W"),
    ("--vers", "--version"),
    ("-v?", "-?"),
]


def settings_error(value: str, tmp_path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(
            {"BACKUP_DESTINATION": "file:///b", "BACKUP_PG_DUMP_OPTIONS": value}, dotenv_path=tmp_path / "none"
        )
    return str(caught.value)


@pytest.mark.parametrize(("value", "option"), BYPASSES)
def test_every_spelling_of_a_refused_option_is_refused(value: str, option: str, tmp_path: Path) -> None:
    message = settings_error(value, tmp_path)
    assert f"must not contain {option}" in message and "BACKUP_PG_DUMP_OPTIONS" in message


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("--fi=x", "--fi is ambiguous (it could be --file, --filter)"),
        ("--no-such-thing", "--no-such-thing is not a pg_dump option"),
        ("-X", "-X is not a pg_dump option pgbackup can pass"),
        ("-k", "-k is not a pg_dump option"),
        ("shop", "'shop' is not an option (pg_dump would take it as the database name)"),
        ("--no-owner -- shop", "'--' would end pg_dump's options"),
        ("-Z", "-Z needs a value"),
        ("--verbose=yes", "--verbose takes no value"),
    ],
)
def test_what_pg_dump_would_reject_is_rejected_up_front(value: str, reason: str, tmp_path: Path) -> None:
    assert reason in settings_error(value, tmp_path)


@pytest.mark.parametrize(
    "value",
    [
        "--no-owner --no-privileges",
        "--no-ow --no-acl",
        "--exclude-table-data='audit.*'",
        "-t 'a b' -T c -v",
        "--exclude-table -Fc",  # the table is called -Fc: the next word is a value, not an option
        "--lock-wait-timeout 5s --role=backup",
        "--large --blob --attribute-inserts --inserts",
    ],
)
def test_harmless_options_are_kept_word_for_word(value: str, tmp_path: Path) -> None:
    import shlex

    settings = load_settings(
        {"BACKUP_DESTINATION": "file:///b", "BACKUP_PG_DUMP_OPTIONS": value}, dotenv_path=tmp_path / "none"
    )
    assert settings.dump.pg_dump_options == tuple(shlex.split(value))


CONNECTION_SPELLINGS = [  # every way pg_dump reads a server, port or user, and what it sees
    ("--host=evil.example", "--host"),
    ("--hos=evil.example", "--host"),
    ("--ho evil.example", "--host"),
    ("-h evil.example", "-h"),
    ("-hevil.example", "-h"),
    ("-vhevil.example", "-h"),
    ("-vh evil.example", "-h"),
    ("--port=6543", "--port"),
    ("--po 6543", "--port"),
    ("-p6543", "-p"),
    ("-vp 6543", "-p"),
    ("--username=mallory", "--username"),
    ("--user mallory", "--username"),
    ("-Umallory", "-U"),
    ("-vUmallory", "-U"),
    ("--restrict-key=k3y", "--restrict-key"),
    ("--restr k3y", "--restrict-key"),
]


@pytest.mark.parametrize(("value", "option"), CONNECTION_SPELLINGS)
def test_connection_options_and_the_restrict_key_are_refused_however_written(
    value: str, option: str, tmp_path: Path
) -> None:
    message = settings_error(f"--no-owner {value}", tmp_path)
    assert f"must not contain {option}" in message and "BACKUP_PG_DUMP_OPTIONS" in message, message
