"""Hostile or mistaken settings and arguments, given to the real ``pgbackup`` command: each is
refused before anything is attempted, in one line that names the setting and the fix, and
never echoes a credential or a control character.

The tests that run pgbackup or real services; the offline ones are in tests/unit/test_hostile_settings.py."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from devenv.postgres import Cluster

from ..kit.helpers import job_env, run_pgbackup


def one_line_refusal(result: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a run refused for its settings or arguments (exit 2)."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    return result.stderr.strip()


@pytest.mark.parametrize("suffix", ["?x#y", "?", "#", "?versionId=3"])
def test_a_file_destination_with_a_query_or_fragment_is_refused(
    suffix: str, pg18: Cluster, bindir18: Path, dbname: str, tmp_path: Path
) -> None:
    """``file:///d?x#y`` used to back up into ``/d``, silently dropping what followed."""
    pg18.sql(f"CREATE DATABASE {dbname}")
    result = run_pgbackup(
        job_env(pg18, f"file://{tmp_path}/d{suffix}", bindir18, BACKUP_DATABASES=dbname, BACKUP_GLOBALS="false")
    )
    line = one_line_refusal(result)
    assert "BACKUP_DESTINATION" in line and "must not contain '?' or '#'" in line, line
    assert not (tmp_path / "d").exists(), "nothing was backed up"


@pytest.mark.parametrize("destination", ["file://{tmp}/d\nx", "file://{tmp}/d\tx", "s3://bucket/pre\rfix"])
def test_a_destination_with_a_control_character_is_refused(destination: str, tmp_path: Path) -> None:
    """URL parsing drops tabs and line breaks without a word: the directory or prefix used
    would not be the one written."""
    result = run_pgbackup({"BACKUP_DESTINATION": destination.format(tmp=tmp_path)})
    line = one_line_refusal(result)
    assert "BACKUP_DESTINATION" in line and "control character" in line, line
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("variable", ["BACKUP_METRICS_PUSHGATEWAY_URL", "BACKUP_HEALTHCHECK_URL"])
def test_a_report_url_with_credentials_is_refused_without_echoing_them(
    variable: str, pg18: Cluster, bindir18: Path, dbname: str, tmp_path: Path
) -> None:
    """``http://user:pass@host`` used to end in a DNS error on every run (urllib takes
    ``user:pass@host`` for the host name) while the run itself reported success."""
    pg18.sql(f"CREATE DATABASE {dbname}")
    env = job_env(
        pg18,
        f"file://{tmp_path}/b",
        bindir18,
        BACKUP_DATABASES=dbname,
        BACKUP_GLOBALS="false",
        **{variable: "http://pusher:Pa55-w0rd-xyz@127.0.0.1:9/metrics"},
    )
    result = run_pgbackup(env)
    line = one_line_refusal(result)
    assert variable in line and "user:password@" in line and "no credentials" in line, line
    assert "Pa55-w0rd-xyz" not in result.stdout + result.stderr and "pusher" not in line
    assert not (tmp_path / "b").exists(), "nothing was attempted"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://", "names no host"),
        ("http:///metrics", "names no host"),
        ("https://:9091/x", "names no host"),
        ("https://user@monitor.example/uuid", "user:password@"),
        ("https://monitor.example:99999/uuid", "invalid port"),
        ("https://monitor.example/uu\nid", "control character"),
        ("https://monitor.example/uu\tid", "control character"),
        ("https://monitor.example/a b", "a space"),
        ("ftp://monitor.example/uuid", "must be an http:// or https:// URL"),
    ],
)
def test_a_report_url_that_cannot_work_is_refused(url: str, problem: str) -> None:
    result = run_pgbackup({"BACKUP_DESTINATION": "file:///nonexistent/b", "BACKUP_HEALTHCHECK_URL": url})
    line = one_line_refusal(result)
    assert "BACKUP_HEALTHCHECK_URL" in line and problem in line, line
    assert "monitor.example" not in line, "a secret variable's value is never shown"


@pytest.mark.parametrize(
    ("variable", "expression"),
    [
        ("BACKUP_SCHEDULE", "* * * * *\n* * * * * rm -rf /"),  # a second crontab line, a second job
        ("BACKUP_SCHEDULE", "* * *\n* *"),  # five fields over two lines: what the field count let through
        ("BACKUP_SCHEDULE", "30\r2 * * *"),
        ("BACKUP_SCHEDULE", "30\x0b2 * * *"),
        ("BACKUP_VERIFY_SCHEDULE", "0 6 * *\n0"),
    ],
)
def test_a_schedule_with_a_control_character_is_refused_before_a_crontab_is_written(
    variable: str, expression: str, tmp_path: Path
) -> None:
    """Each schedule becomes one line of the crontab Supercronic reads: a line break in it would
    be a second line, a second job."""
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    env = {
        "BACKUP_DESTINATION": f"file://{tmp_path}/b",
        "TMPDIR": str(tmpdir),
        "BACKUP_SCHEDULE": "30 2 * * *",
        "BACKUP_SUPERCRONIC": str(tmp_path / "no-supercronic"),
        variable: expression,
    }
    line = one_line_refusal(run_pgbackup(env, "schedule"))
    assert variable in line and "control character" in line, line
    assert list(tmpdir.iterdir()) == [], "no crontab was written"


@pytest.mark.parametrize(
    "at",
    [
        "9999-12-31",
        "2026-13-45",
        "2026-02-30",
        "20261326T000000Z",
        "-1",
        "x" * 10_000,
        "2026-11-26T25:00:00Z",
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
        "2026-11-26T02:30:00+24:00",
        "1969-12-31",
        "2026W481",
        "\x1b[2J2026-11-26",
    ],
)
def test_an_invalid_at_is_one_line_naming_the_accepted_forms(at: str, tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    result = run_pgbackup({"BACKUP_DESTINATION": f"file://{tmp_path}/b"}, "restore", "--database", "shop", "--at", at)
    line = one_line_refusal(result)
    assert line.startswith("pgbackup: --at ") and "2026-11-26T02:30:00Z" in line and "20261126T023000Z" in line, line
    assert len(line) < 400 and line.isprintable(), line
    assert result.stdout == ""


def test_an_at_that_is_valid_still_reaches_the_catalog(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    result = run_pgbackup(
        {"BACKUP_DESTINATION": f"file://{tmp_path}/b"},
        "restore",
        "--database",
        "shop",
        "--at",
        "2026-11-26T03:30:00+01:00",
    )
    assert result.returncode == 1 and "no complete backup of 'shop'" in result.stdout, result.stdout + result.stderr


FORGED_NAMES = [  # database names a bucket writer can give keys; each decodes to a legal name
    "shop\n20991231T000000Z  1.0 KiB  deadbeefcafe  -          complete",  # a forged listing line
    "\x1b[2J\x1b[Hwiped",
    "invoice\u202etxt.exe",
    "tab\there",
    "cr\rover",
    "zero\u200bwidth",
    "line\u2028sep",
    "back\\slash",
]


def test_list_escapes_control_characters_in_database_names_from_the_bucket(
    pg18: Cluster, bindir18: Path, dbname: str, tmp_path: Path
) -> None:
    from backup_job.core.layout import encode_database

    pg18.sql(f"CREATE DATABASE {dbname}")
    env = job_env(pg18, f"file://{tmp_path}/b", bindir18, BACKUP_DATABASES=dbname, BACKUP_GLOBALS="false")
    assert run_pgbackup(env).returncode == 0
    [dump] = (tmp_path / "b" / dbname).glob("*.sql.gz")
    for name in FORGED_NAMES:  # what a bucket writer can do: objects under keys of its choosing
        forged = tmp_path / "b" / encode_database(name)
        forged.mkdir()
        (forged / dump.name).write_bytes(dump.read_bytes())

    table = run_pgbackup(env, "list")
    assert table.returncode == 0, table.stdout + table.stderr
    lines = table.stdout.split("\n")
    assert lines.pop() == "" and len(lines) == 1 + 1 + len(FORGED_NAMES), table.stdout
    assert all(line.isprintable() for line in lines), [line for line in lines if not line.isprintable()]
    shown = "\n".join(lines)
    for escaped in (
        "shop\\n20991231T000000Z",
        "\\x1b[2J\\x1b[Hwiped",
        "invoice\\u202etxt.exe",
        "tab\\there",
        "cr\\rover",
        "zero\\u200bwidth",
        "line\\u2028sep",
        "back\\\\slash",
    ):
        assert escaped in shown, escaped
    assert sum(line.startswith(dbname) for line in lines) == 1

    listed = run_pgbackup(env, "list", "--json")
    assert sorted(row["database"] for row in json.loads(listed.stdout)) == sorted([dbname, *FORGED_NAMES])


def _age_identity() -> tuple[str, str]:
    import pyrage

    identity = pyrage.x25519.Identity.generate()
    return str(identity), str(identity.to_public())


def _assert_unseen(secret: str, result: subprocess.CompletedProcess[str]) -> None:
    """Neither ``secret`` nor any 8 characters of it in a row is printed (a key's fixed words
    such as AGE-SECRET-KEY- and -----BEGIN are not secret)."""
    output = result.stdout + result.stderr
    for word in secret.split():
        body = word.removeprefix("AGE-SECRET-KEY-1").removeprefix("age-secret-key-1")
        if word.startswith("-----") or len(body) < 12:
            continue
        for start in range(len(body) - 7):
            assert body[start : start + 8] not in output, f"part of the key leaked: {body[start : start + 8]!r}"


@pytest.mark.parametrize("case", ["upper", "lower", "among recipients"])
def test_an_age_identity_pasted_as_a_recipient_is_never_printed(case: str, tmp_path: Path) -> None:
    identity, public = _age_identity()
    value = {"upper": identity, "lower": identity.lower(), "among recipients": f"{public},{identity}"}[case]
    result = run_pgbackup({"BACKUP_DESTINATION": f"file://{tmp_path}/b", "BACKUP_ENCRYPT_RECIPIENTS": value})
    line = one_line_refusal(result)
    assert "BACKUP_ENCRYPT_RECIPIENTS holds a private age identity" in line, line
    assert "age-keygen -y" in line and "BACKUP_DECRYPT_IDENTITY_PATH" in line, line
    _assert_unseen(identity, result)


def test_an_age_identity_file_given_as_the_recipients_file_is_never_printed(tmp_path: Path) -> None:
    key = tmp_path / "key.txt"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    [identity] = [line for line in key.read_text().splitlines() if line.startswith("AGE-SECRET-KEY-")]
    result = run_pgbackup({"BACKUP_DESTINATION": f"file://{tmp_path}/b", "BACKUP_ENCRYPT_RECIPIENTS_FILE": str(key)})
    line = one_line_refusal(result)
    assert "holds a private age identity" in line and "age-keygen -y" in line, line
    _assert_unseen(identity, result)


def test_a_private_key_or_token_in_a_plain_setting_is_redacted(tmp_path: Path) -> None:
    ssh_key = tmp_path / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(ssh_key)], check=True)
    private = ssh_key.read_text()
    identity, _public = _age_identity()
    token = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzq9RvLmT3aXk"  # shaped like an AWS secret access key
    cases = {
        "BACKUP_ENCRYPT_RECIPIENTS": private,
        "BACKUP_COMPRESSION": private.strip().replace("\n", " "),
        "BACKUP_DESTINATION": token,
        "BACKUP_PG_DUMP_OPTIONS": f"--no-owner {identity}",
        "BACKUP_S3_STORAGE_CLASS": "-----BEGIN PRIVATE KEY-----MC4CAQAwBQYDK2VwBCIEIFqkc1lT8pD6xkXz-----END",
        "BACKUP_SHARD": "PuTTY-User-Key-File-3: ssh-ed25519",
    }
    for variable, value in cases.items():
        # an S3 option is read (and refused) only when the destination is S3
        destination = "s3://my-bucket" if variable.startswith("BACKUP_S3_") else f"file://{tmp_path}/b"
        env = {"BACKUP_DESTINATION": destination, variable: value}
        result = run_pgbackup(env)
        line = one_line_refusal(result)
        assert f"{variable}=<redacted: looks like " in line, line
        _assert_unseen(value, result)


def _termination(path: Path) -> dict[str, object]:
    assert path.exists(), "no termination message was written"
    document = json.loads(path.read_text())
    assert isinstance(document, dict) and path.read_text().count("\n") == 1
    return document


@pytest.mark.parametrize(
    ("env", "args", "command", "said"),
    [
        ({"BACKUP_COMPRESSION": "bogus"}, ("run",), "run", "BACKUP_COMPRESSION='bogus' must be one of gzip | zstd"),
        ({"PGPASSWORD": "x", "PGPASSWORD_FILE": "/etc/hostname"}, ("verify",), "verify", "both PGPASSWORD and"),
        ({"BACKUP_RUN_ID": "run-1"}, ("schedule",), "schedule", "BACKUP_RUN_ID names one run"),
        ({}, ("restore", "--database", "shop", "--at", "2026-13-45"), "restore", "--at '2026-13-45' is not a valid"),
        ({}, ("prune",), "prune", "BACKUP_RETENTION is not set"),
        ({}, ("restore",), "restore", "one of the arguments --database --globals is required"),
        ({}, ("restore", "--database", "x", "--bogus"), "", "unrecognized arguments: --bogus"),
        ({}, ("explode",), "", "invalid choice: 'explode'"),
    ],
)
def test_every_refusal_writes_the_termination_message(
    env: dict[str, str], args: tuple[str, ...], command: str, said: str, tmp_path: Path
) -> None:
    """The operator and ``kubectl describe pod`` learn why a job exited 2 from this file."""
    (tmp_path / "b").mkdir()
    message = tmp_path / "termination-log"
    result = run_pgbackup(
        {"BACKUP_DESTINATION": f"file://{tmp_path}/b", "BACKUP_TERMINATION_LOG": str(message), **env}, *args
    )
    assert result.returncode == 2, result.stdout + result.stderr
    document = _termination(message)
    assert document["ok"] is False and document["command"] == command, document
    assert said in str(document["summary"]) and said in result.stderr, (document, result.stderr)
    assert str(document["summary"]) in result.stderr.replace("\n", " "), "the same words as on stderr"


def test_the_termination_log_named_in_dotenv_is_written_when_the_settings_fail(tmp_path: Path) -> None:
    message = tmp_path / "termination-log"
    identity, _public = _age_identity()
    (tmp_path / ".env").write_text(
        f"BACKUP_DESTINATION=file://{tmp_path}\nBACKUP_TERMINATION_LOG={message}\n"
        f"BACKUP_ENCRYPT_RECIPIENTS={identity}\n"
    )
    result = run_pgbackup({}, "run", cwd=tmp_path)
    assert result.returncode == 2
    document = _termination(message)
    assert document["ok"] is False and "holds a private age identity" in str(document["summary"]), document
    assert identity[16:32] not in message.read_text(), "the message is redacted as the line on stderr is"


def test_the_environment_wins_over_dotenv_for_the_termination_log(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"BACKUP_TERMINATION_LOG={tmp_path}/from-dotenv\nBACKUP_COMPRESSION=bogus\n")
    result = run_pgbackup(
        {"BACKUP_DESTINATION": f"file://{tmp_path}", "BACKUP_TERMINATION_LOG": str(tmp_path / "env")},
        "run",
        cwd=tmp_path,
    )
    assert result.returncode == 2 and (tmp_path / "env").exists() and not (tmp_path / "from-dotenv").exists()
