"""A database owner against the COPY row counter, with real PostgreSQL 18 and the real CLI.

The counter reads pg_dump's plain SQL as it streams by and counts the rows of each
``COPY ... FROM stdin;`` block; ``verify`` later demands exactly those counts from the restored
tables. Whoever owns a database chooses names, comments, defaults and function bodies, and so
can make pg_dump write a line ``COPY public.ghost (id) FROM stdin;`` inside a quoted name, a
string or a dollar quote. Read as a header, such a line invents a table (verify then fails for
ever: "row counts differ") or swallows real rows. Here every such place carries one, and the
backup and its drill must still see exactly the real tables with their real rows.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from devenv.postgres import Cluster

from ..kit.helpers import job_env, run_pgbackup

FAKE = "COPY public.ghost (id) FROM stdin;"
# A fake block as a whole: header, one row, end marker, each on its own line.
FAKE_BLOCK = f"\n{FAKE}\n1\n\\.\n"
TABLE = f'"x\n{FAKE}"'  # a table name with a real newline
SCHEMA = f'"s\n{FAKE}"'
COLUMN = f'"c\n{FAKE}"'

PLANT = f"""
CREATE TABLE public.{TABLE} (id integer);
INSERT INTO public.{TABLE} SELECT generate_series(1, 7);

CREATE SCHEMA {SCHEMA};
CREATE TABLE {SCHEMA}.t (v text);
INSERT INTO {SCHEMA}.t VALUES ('a'), ('b'), ('c');

CREATE TABLE public.commented ({COLUMN} text DEFAULT 'it''s{FAKE_BLOCK}');
INSERT INTO public.commented SELECT 'row ' || g FROM generate_series(1, 5) g;
COMMENT ON TABLE public.commented IS 'a comment with a quote '' and{FAKE_BLOCK}';
COMMENT ON COLUMN public.commented.{COLUMN} IS E'an escaped \\' quote{FAKE_BLOCK}';

CREATE FUNCTION public.body() RETURNS text LANGUAGE plpgsql AS $fn$
BEGIN
    -- a comment in the body, and a string that carries the fake block
    RETURN '{FAKE_BLOCK}';
END
$fn$;
CREATE FUNCTION public.tagged() RETURNS text LANGUAGE sql AS $$ SELECT $q${FAKE_BLOCK}$q$::text $$;
"""

EXPECTED = {
    f"public.{TABLE}": 7,
    f"{SCHEMA}.t": 3,
    "public.commented": 5,
}


def test_hostile_names_comments_and_bodies_do_not_fool_the_row_counts(
    pg18: Cluster, bindir18: Path, dbname: str, tmp_path: Path
) -> None:
    pg18.sql(f"CREATE DATABASE {dbname}")
    pg18.sql(PLANT, dbname)
    store = tmp_path / "store"
    store.mkdir()
    env = job_env(pg18, f"file://{store}", bindir18, BACKUP_DATABASES=dbname, BACKUP_GLOBALS="false")

    backup = run_pgbackup(env)

    assert backup.returncode == 0, backup.stdout + backup.stderr
    dump = gzip.decompress(next(store.rglob("*.sql.gz")).read_bytes()).decode()
    assert dump.count(f"\n{FAKE}") >= 5, "pg_dump wrote the fake header inside every planted place"
    facts = json.loads(next(store.rglob("*.manifest.json")).read_bytes())
    assert facts["row_counts"] == EXPECTED

    verify = run_pgbackup(env, "verify", "--database", dbname)

    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "3 tables with 15 rows match" in verify.stdout
