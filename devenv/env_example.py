""".env.example, made from the settings schema: every variable the job reads, by section.

The file is what ``docker compose`` users copy to ``.env``, and what anyone running pgbackup by
hand can copy too (the job reads ``.env`` from its working directory). ``python -m
devenv.settings_docs`` writes it along with the configuration page, and
``tests/unit/test_settings_schema.py`` fails while the committed file differs from it.

What comes from where:

- a section per row of ``SECTIONS``: its heading and opening comment are written here, and its
  variables are whole settings groups, in declaration order, so a variable declared in a group
  appears in its section with nothing written here. A variable the job reads that no section
  holds (a new group) stops the generator with the fix to make;
- each variable's line: the declaration's ``note`` as a comment above it, then ``#NAME=`` with
  its default, else its first example (nothing for a secret), and its ``*_FILE`` form after it;
- ``COMPOSE``: the values the compose demo sets (uncommented), with why where the value is the
  demo's choice, and ``STACK``, docker-compose.yml's own variables, which pgbackup never reads.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backup_job.core import settings as S
from backup_job.core.schema import Variable
from backup_job.core.settings import Group

FILE = Path(__file__).resolve().parent.parent / ".env.example"
WIDTH = 100  # comments wrap here; headings are a little shorter

HEADER = """\
# pgbackup settings for docker compose. Copy to .env and adjust: cp .env.example .env
# Every variable pgbackup reads is listed; commented ones show their default, else an example.
# Made from the settings schema (backup_job/core/settings/) by: python -m devenv.settings_docs
"""

# docker-compose.yml's own variables: the stack's password, bucket and prefix.
STACK = (("POSTGRES_PASSWORD", "change-me-postgres"), ("BACKUP_BUCKET", "pg-backups"), ("BACKUP_PREFIX", "compose"))

# What the compose demo sets, and the comment that explains its choice ("" when the note does).
COMPOSE: dict[str, tuple[str, str]] = {
    S.SCHEDULE.name: (
        "*/2 * * * *",
        "5-field cron, or Supercronic's 7 fields with seconds first: every 2 minutes for the demo.",
    ),
    S.RUN_ON_START.name: ("true", "Run one backup as soon as the container starts, then follow the schedule."),
    S.VERIFY_SCHEDULE.name: (
        "*/10 * * * *",
        "The restore drill (pgbackup verify) on its own schedule: every 10 minutes for the demo.",
    ),
    S.AWS_ACCESS_KEY_ID.name: ("compose-access-key", ""),
    S.AWS_SECRET_ACCESS_KEY.name: ("compose-secret-key", ""),
    S.AWS_REGION.name: ("us-east-1", ""),
    S.S3_ADDRESSING_STYLE.name: ("path", ""),
    S.RETENTION.name: ("last=5,daily=7,weekly=4,monthly=6", ""),
    S.LOG_LEVEL.name: ("info", ""),
    S.LOG_FORMAT.name: ("text", ""),
}


@dataclass(frozen=True)
class Section:
    """One part of the file: a heading, an opening comment, and whole groups of variables."""

    heading: str
    members: tuple[type[Group] | Variable[Any], ...]
    comment: str = ""

    def variables(self) -> list[Variable[Any]]:
        found: list[Variable[Any]] = []
        for member in self.members:
            found += [member] if isinstance(member, Variable) else member.variables()
        return [variable for variable in found if variable.owner != "operator"]


SECTIONS = (
    Section("schedule (compose mode)", (S.ScheduleSettings,)),
    Section(
        "where backups go",
        (S.DESTINATION,),
        "docker-compose.yml sets BACKUP_DESTINATION=s3://${BACKUP_BUCKET}/${BACKUP_PREFIX} and the "
        "endpoint of the bundled S3 server. Outside compose: s3://bucket/prefix or file:///dir",
    ),
    Section(
        "S3 (the AWS SDK's own variables)",
        (S.AwsSdk, S.S3Settings),
        "Secrets may come from files instead (Docker secrets): each *_FILE holds the path of one.",
    ),
    Section(
        "Azure Blob Storage (BACKUP_DESTINATION=azure://account/container/prefix)",
        (S.AzureSettings,),
        "At most one credential; none uses the Azure SDK's chain (workload or managed identity).",
    ),
    Section("Google Cloud Storage (BACKUP_DESTINATION=gs://bucket/prefix)", (S.GcsSettings,)),
    Section(
        "PostgreSQL (libpq's own variables)",
        (S.PostgresSettings, S.AuthPolicy),
        "docker-compose.yml sets PGHOST, PGUSER and PGPASSWORD for the bundled server (its values win over this file).",
    ),
    Section("what and how", (S.DumpSettings, S.Compression, S.UploadSettings)),
    Section("the run: its identity, retention, alarms", (S.RunSettings,)),
    Section("encryption (docs/encryption.md#encryption)", (S.EncryptionSettings,)),
    Section(
        "signed manifests and trust (docs/security.md#signed-manifests)",
        (S.TrustSettings,),
        "Without a signing key, whoever can write the bucket is trusted like the database superuser.",
    ),
    Section("alerts: notifications, dead man's switch, metrics (docs/alerts.md#alerts)", (S.ReportSettings,)),
    Section(
        "verify (pgbackup verify)",
        (S.ScratchServer,),
        "Scratch databases go to the backup server unless a separate server is given here; then the "
        "main PG* variables are not used for it.",
    ),
    Section("the log", (S.LogSettings,)),
)


def _comment(text: str) -> list[str]:
    return (
        textwrap.wrap(
            text, WIDTH - 2, initial_indent="# ", subsequent_indent="# ", break_long_words=False, break_on_hyphens=False
        )
        if text
        else []
    )


def _heading(title: str) -> str:
    return f"# --- {title} ".ljust(WIDTH - 4, "-")


def lines(variable: Variable[Any]) -> list[str]:
    """The variable's comment and line, then its ``*_FILE`` form's."""
    value, why = COMPOSE.get(variable.name, ("", ""))
    out = _comment(variable.note) + _comment(why)
    if variable.name in COMPOSE:
        out.append(f"{variable.name}={value}")
    else:
        shown = variable.default or ("" if variable.secret else variable.examples()[0])
        out.append(f"#{variable.name}={shown}")
    if variable.file_form:
        out.append(f"#{variable.file_name}={variable.example if variable.secret else ''}")
    return out


def render() -> str:
    """The whole file."""
    placed = [variable for section in SECTIONS for variable in section.variables()]
    missing = [v.name for v in S.ALL if v.owner != "operator" and v not in placed]
    if missing:
        raise SystemExit(f"{', '.join(missing)} in no section of .env.example: add its group to SECTIONS in {__name__}")
    out = [HEADER, _heading("the compose stack itself"), *(f"{name}={value}" for name, value in STACK), ""]
    for section in SECTIONS:
        out += [_heading(section.heading), *_comment(section.comment)]
        for variable in section.variables():
            out += lines(variable)
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"
