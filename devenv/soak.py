"""A seeded, bounded randomized fault soak: the real ``pgbackup`` command against real stores.

``python -m devenv.soak --seed N --steps K --store moto|seaweedfs|both [--seconds LIMIT] [--json]``
starts its own PostgreSQL, moto's S3 server and/or SeaweedFS, and a fault proxy in front of
each store, then takes K steps drawn from ``random.Random`` seeded with N and the store's
name: the same seed gives the same sequence of choices (what the processes then do under
those choices depends on timing, so a violation is reproduced by running the same seed again,
usually more than once).

A step is one of: change the data; ``run`` with 0-2 faults; ``run`` stopped by SIGTERM or
SIGKILL after a random number of S3 requests; two overlapping runs; ``prune`` with a random
retention; ``restore`` of a random listed backup into a new database; ``verify``; ``list``.
Faults are those of ``devenv.faultproxy`` (a write applied but its answer lost, resets, 500
and 503 SlowDown bursts, stalls, request and answer bodies flipped or cut short) aimed at a
random kind of request (part, upload start, completion, manifest PUT, GET, LIST, HEAD,
DELETE).

The ground truth: the data only changes in a change step, while no process runs, and every
table is read back as a count and an md5 of its rows in order. A backup timestamp seen for the
first time after a step is the data of that step. After every step the invariants are checked
on the clean store (no proxy) and each check is counted; a failed check is a violation with
the seed and step that reproduce it:

- every process exits with a documented code (0, 1; -9 only when SIGKILLed by the soak), one
  that fails says so in an ERROR line, none prints a traceback or a secret (the database
  password, the S3 secret key);
- a run that exits 0 stored a backup of every database, complete in ``list``;
- every backup ``list`` shows as complete (whatever the run that made it went through) is
  restored once with ``pgbackup restore --at`` and equals its ground truth;
- a restore that exits 0 equals the ground truth of the backup it says it restored; one that
  fails leaves no target database behind;
- a database that had a backup that is complete and whose stored bytes match its sha256 still
  has one after every step (prune and retention included), and every manifest in the bucket
  points at an object that is there;
- ``list`` through faults never shows as complete a backup the clean listing does not.

The driver only drives the command line and reads the bucket with boto3, so it does not
depend on pgbackup's internals. The pytest wrapper is ``tests/faults/test_soak.py``; its ``Soak`` use
passes the session's servers in rather than starting new ones.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .faultproxy import Fault, FaultProxy
from .postgres import Cluster, embedded_bindir
from .s3 import SECRET_KEY, S3Server
from .seaweed import SeaweedServer

ROOT = Path(__file__).resolve().parent.parent
SIGNING_KEY = ROOT / "tests" / "kit" / "data" / "signing-key.pem"
SIGNING_PUBLIC_KEY = "ed25519:vVou7SwWohd6TEsUiRUKI7DjgihzvjjvPR38Krc+iTA="
_SCRUB = ("PG", "AWS_", "BACKUP_", "LOG_", "PYTHONPATH")  # the caller's shell must not steer the job
PREFIX = "soak"
PROCESS_TIMEOUT = 180.0  # no command of a soak step takes this long unless it hangs
DOCUMENTED_EXITS = {0, 1}  # 2 is a refused setting, which a soak never gives

# The kinds of request a fault aims at: method and a pattern over the path and query.
KINDS: dict[str, tuple[str, str]] = {
    "part": ("PUT", r"\.sql\.gz\?.*partNumber="),
    "upload-start": ("POST", r"\.sql\.gz\?uploads"),
    "completion": ("POST", r"\.sql\.gz\?uploadId="),
    "manifest-put": ("PUT", r"\.manifest\.json$"),
    "get": ("GET", r"\.(manifest\.json|sql\.gz)$"),
    "list": ("GET", r"[?&](list-type=2|uploads)"),
    "head": ("HEAD", r""),
    "delete": ("DELETE", r""),
}
WRITES = {"part", "upload-start", "completion", "manifest-put", "delete"}
BODIES = {"part", "manifest-put"}  # requests whose body can be damaged on the way
ANSWERS = {"get", "list"}  # answers with a body worth damaging


def _actions(kind: str) -> list[str]:
    actions = ["reset", "burst-500", "burst-503", "stall", "stall-drop"]
    if kind in WRITES:
        actions += ["applied-500", "applied-reset"]
    if kind in BODIES:
        actions += ["corrupt", "truncate"]
    if kind in ANSWERS:
        actions += ["flip-answer", "cut-answer"]
    return actions


# The kinds of request each command makes (the run's GETs, LISTs and DELETEs: its clean-up,
# the shrink alarm's look at the previous backup, a confirmation, retention).
COMMAND_KINDS: dict[str, tuple[str, ...]] = {
    "run": (
        "part",
        "part",
        "upload-start",
        "completion",
        "completion",
        "manifest-put",
        "manifest-put",
        "list",
        "get",
        "head",
        "delete",
    ),
    "prune": ("list", "get", "get", "head", "delete", "delete"),
    "restore": ("list", "get", "get", "head"),
    "verify": ("list", "get", "get", "head"),
    "list": ("list", "get"),
}


def draw_fault(rng: random.Random, command: str) -> tuple[str, Fault]:
    """One fault of a random action at a random kind of request ``command`` makes: (its type, the fault)."""
    kind = rng.choice(COMMAND_KINDS[command])
    action = rng.choice(_actions(kind))
    method, pattern = KINDS[kind]  # each soak has a proxy and a bucket of its own: no need to match either
    if action.startswith("burst-"):
        status = int(action[-3:])
        fault = Fault(
            method,
            pattern,
            "answer",
            times=rng.randint(1, 4),
            status=status,
            code="SlowDown" if status == 503 else "InternalError",
        )
    elif action in ("stall", "stall-drop"):
        fault = Fault(method, pattern, "stall", seconds=round(rng.uniform(0.2, 2.5), 2), forward=action == "stall")
    else:
        fault = Fault(method, pattern, action)
    return f"{action}@{kind}", fault


@dataclass
class Figures:
    """What a soak did and found, added up over its stores."""

    seed: int
    steps: int = 0
    processes: int = 0
    seconds: float = 0.0
    step_kinds: Counter[str] = field(default_factory=Counter)
    step_seconds: dict[str, float] = field(default_factory=dict)  # by kind, checks after the step included
    faults_armed: Counter[str] = field(default_factory=Counter)
    faults_hit: Counter[str] = field(default_factory=Counter)
    signals: Counter[str] = field(default_factory=Counter)
    checks: Counter[str] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)  # errors pgbackup itself calls unexpected
    violations: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "steps": self.steps,
            "processes": self.processes,
            "seconds": round(self.seconds, 1),
            "step_kinds": dict(sorted(self.step_kinds.items())),
            "step_seconds": {kind: round(seconds, 1) for kind, seconds in sorted(self.step_seconds.items())},
            "faults_armed": sum(self.faults_armed.values()),
            "faults_hit": sum(self.faults_hit.values()),
            "faults_hit_by_type": dict(sorted(self.faults_hit.items())),
            "faults_by_action": dict(sorted(_by_action(self.faults_hit).items())),
            "signals": dict(sorted(self.signals.items())),
            "invariant_checks": sum(self.checks.values()),
            "checks_by_invariant": dict(sorted(self.checks.items())),
            "unexpected_errors": self.unexpected,
            "violations": self.violations,
        }

    def text(self) -> str:
        facts = self.as_dict()
        lines = [
            f"soak seed {self.seed}: {self.steps} steps, {self.processes} pgbackup processes, {facts['seconds']} s",
            f"steps: {_pairs(facts['step_kinds'])}",
            f"seconds by step: {_pairs(facts['step_seconds'])}",
            f"faults: {facts['faults_hit']} injected of {facts['faults_armed']} armed; by action: "
            f"{_pairs(facts['faults_by_action'])}",
            f"signals: {_pairs(facts['signals']) or 'none'}",
            f"invariant checks: {facts['invariant_checks']} ({_pairs(facts['checks_by_invariant'])})",
            f"unexpected errors: {len(self.unexpected)}",
            f"violations: {len(self.violations)}",
        ]
        for violation in self.violations:
            lines.append(
                f"  VIOLATION {violation['invariant']} at store {violation['store']} step {violation['step']}"
                f" (python -m devenv.soak --seed {self.seed} --store {violation['store']} --steps "
                f"{violation['step']}): {violation['detail']}"
            )
        return "\n".join(lines)


def _by_action(hits: Counter[str]) -> Counter[str]:
    actions: Counter[str] = Counter()
    for name, count in hits.items():
        actions[name.split("@")[0]] += count
    return actions


def _pairs(values: dict[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in values.items())


@dataclass
class Outcome:
    """One finished ``pgbackup`` process."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    signalled: str = ""  # SIGTERM or SIGKILL when the soak sent one

    def events(self) -> Iterator[dict[str, Any]]:
        for line in self.stdout.splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                yield event


Truth = tuple[tuple[str, int, str], ...]  # (table, rows, md5 of the rows in order) per table


class Soak:
    """The soak of one store: its bucket, its databases, its ground truth and its steps."""

    def __init__(
        self,
        cluster: Cluster,
        bindir: Path,
        server: S3Server | SeaweedServer,
        store: str,
        seed: int,
        figures: Figures,
        databases: int = 2,
    ) -> None:
        self.cluster = cluster
        self.bindir = bindir
        self.server = server
        self.store = store
        self.rng = random.Random(f"{seed}:{store}")
        self.figures = figures
        self.client = server.client()
        tag = f"{store[:4]}{seed}_{os.getpid()}"
        self.bucket = f"soak-{tag.replace('_', '-')}-{int(time.time())}"
        self.databases = [f"soak_{tag}_{chr(ord('a') + i)}" for i in range(databases)]
        self.workdir = Path(tempfile.gettempdir())  # the processes' own empty directory once entered
        self.proxy = FaultProxy(server.endpoint)
        self.step = 0
        self.truth: dict[tuple[str, str], Truth] = {}  # (database, timestamp) -> its data
        self.current: dict[str, Truth] = {}
        self.restored: set[tuple[str, str, str]] = set()  # (database, timestamp, sha256) restore-checked
        self.proven: dict[tuple[str, str], str] = {}  # (key, etag) -> sha256 of the stored bytes
        self.targets = 0
        self.faults_now: list[tuple[str, Fault]] = []
        self.rows: list[dict[str, Any]] = []  # the clean listing after the last step
        self.restorable_now: set[str] = set()
        self.last_kind = ""
        self.retention_ran = False  # in this step: a run's retention may delete an overlapping run's backups

    # -- set-up ---------------------------------------------------------------------------------

    def __enter__(self) -> Soak:
        self.workdir = Path(tempfile.mkdtemp(prefix="pgbackup-soak-"))  # no .env file to pick up
        self.proxy.start()
        self.client.create_bucket(Bucket=self.bucket)
        for database in self.databases:
            self.cluster.sql(f'CREATE DATABASE "{database}"')
            self.cluster.sql("CREATE TABLE items (id integer PRIMARY KEY, body text, amount numeric)", database)
            self._change(database, tables=True)
            self.current[database] = self._checksum(database)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.proxy.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
        for database in self.databases:
            self.cluster.sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')

    def env(self, proxied: bool, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB)}
        env.update(self.server.env())
        env.update(self.cluster.env())
        env.update(
            {
                "BACKUP_DESTINATION": f"s3://{self.bucket}/{PREFIX}",
                "BACKUP_PG_BINDIR": str(self.bindir),
                "BACKUP_SIGNING_KEY_FILE": str(SIGNING_KEY),
                "BACKUP_SIGNING_PUBLIC_KEYS": SIGNING_PUBLIC_KEY,
                "BACKUP_VERIFY_ON_BACKUP_SERVER": "true",
                "BACKUP_DATABASES": ",".join(self.databases),
                "BACKUP_GLOBALS": "false",
                "BACKUP_S3_ADDRESSING_STYLE": "path",
                "LOG_FORMAT": "json",
                # Faults cost seconds, not minutes: a stalled request gives up after 2 s, 4 attempts each.
                "BACKUP_S3_READ_TIMEOUT": "2s",
                "BACKUP_S3_CONNECT_TIMEOUT": "2s",
                "AWS_MAX_ATTEMPTS": "4",
                "BACKUP_DATABASE_TIMEOUT": "90s",
            }
        )
        if proxied:
            env["AWS_ENDPOINT_URL_S3"] = self.proxy.endpoint
        env.update(extra)
        return env

    # -- the data and its ground truth --------------------------------------------------------------

    def _change(self, database: str, tables: bool = False) -> None:
        rng = self.rng
        connection = self.cluster.connect(database)
        try:
            cursor = connection.cursor()
            cursor.execute("SELECT coalesce(max(id), 0) FROM items")
            top = int(cursor.fetchone()[0])
            rows = [(top + i + 1, _text(rng), rng.randint(-(10**6), 10**6) / 100) for i in range(rng.randint(1, 60))]
            cursor.executemany("INSERT INTO items VALUES (%s, %s, %s)", rows)
            if rng.random() < 0.5:
                cursor.execute("UPDATE items SET body = %s WHERE id %% %s = 0", (_text(rng), rng.randint(2, 9)))
            if rng.random() < 0.4:
                cursor.execute("DELETE FROM items WHERE id %% %s = 1", (rng.randint(3, 11),))
            if tables or rng.random() < 0.2:
                name = f"extra_{rng.randint(1, 4)}"
                cursor.execute(f"CREATE TABLE IF NOT EXISTS {name} (id serial PRIMARY KEY, note text)")
                cursor.execute(
                    f"INSERT INTO {name} (note) SELECT %s FROM generate_series(1, %s)",
                    (_text(rng), rng.randint(0, 200)),
                )
            if rng.random() < 0.05:
                cursor.execute(f"DROP TABLE IF EXISTS extra_{rng.randint(1, 4)}")
        finally:
            connection.close()

    def _checksum(self, database: str) -> Truth:
        tables = [
            row[0]
            for row in self.cluster.sql(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename", database
            )
        ]
        result = []
        for table in tables:
            [(rows, digest)] = self.cluster.sql(
                f"SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t.id), '')) FROM \"{table}\" t",
                database,
            )
            result.append((table, int(rows), str(digest)))
        return tuple(result)

    # -- processes --------------------------------------------------------------------------------

    def _spawn(self, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
        self.figures.processes += 1
        return subprocess.Popen(
            [sys.executable, "-m", "backup_job", *args],
            env=env,
            cwd=self.workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def _finish(self, process: subprocess.Popen[str], args: tuple[str, ...], signalled: str = "") -> Outcome:
        try:
            stdout, stderr = process.communicate(timeout=PROCESS_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
            self.violation("bounded", f"pgbackup {' '.join(args)} still ran after {PROCESS_TIMEOUT:.0f} s")
        outcome = Outcome(args, process.returncode, stdout, stderr, signalled)
        self._check_output(outcome)
        return outcome

    def cli(self, *args: str, proxied: bool = False, **extra: str) -> Outcome:
        return self._finish(self._spawn(self.env(proxied, **extra), *args), args)

    def _check_output(self, outcome: Outcome) -> None:
        text = outcome.stdout + outcome.stderr
        what = f"pgbackup {' '.join(outcome.args)}"
        self.check(
            "no-secret", self.cluster.password not in text and SECRET_KEY not in text, f"{what} printed a secret"
        )
        self.check(
            "no-traceback",
            "Traceback (most recent call last)" not in text,
            f"{what} printed a traceback: {_tail(text)}",
        )
        expected = set(DOCUMENTED_EXITS)
        if outcome.signalled == "SIGKILL":
            expected.add(-signal.SIGKILL)
        self.check(
            "exit-code",
            outcome.returncode in expected,
            f"{what} exited {outcome.returncode}{' after ' + outcome.signalled if outcome.signalled else ''}:"
            f" {_tail(text)}",
        )
        if outcome.returncode == 1:
            errors = [e for e in outcome.events() if e.get("level") == "ERROR"]
            self.check(
                "failure-said",
                bool(errors) or bool(outcome.stderr.strip()),
                f"{what} exited 1 without an ERROR line: {_tail(text)}",
            )
            for event in errors:
                if "unexpected" in str(event.get("message", "")):
                    self.figures.unexpected.append(f"{self.store} step {self.step}: {event['message'][:300]}")

    # -- faults -------------------------------------------------------------------------------------

    def arm(self, command: str, most: int = 2) -> None:
        self.faults_now = [draw_fault(self.rng, command) for _ in range(self.rng.randint(0, most))]
        for name, fault in self.faults_now:
            self.figures.faults_armed[name] += 1
            self.proxy.add(fault)

    def disarm(self) -> int:
        """Forget the armed faults; how many of them hit a request."""
        hit = 0
        for name, fault in self.faults_now:
            if fault.hits:
                self.figures.faults_hit[name] += 1
                hit += 1
        self.proxy.clear()
        self.faults_now = []
        return hit

    # -- invariants ---------------------------------------------------------------------------------

    def check(self, invariant: str, ok: bool, detail: str) -> bool:
        self.figures.checks[invariant] += 1
        if not ok:
            self.violation(invariant, detail)
        return ok

    def violation(self, invariant: str, detail: str) -> None:
        self.figures.violations.append(
            {"store": self.store, "step": self.step, "invariant": invariant, "detail": detail[:4000]}
        )

    def listing(self) -> list[dict[str, Any]]:
        """``pgbackup list --json`` straight from the store."""
        outcome = self.cli("list", "--json")
        if not self.check(
            "clean-list",
            outcome.returncode == 0,
            f"list without faults failed: {_tail(outcome.stdout + outcome.stderr)}",
        ):
            return []
        return [row for row in json.loads(outcome.stdout) if row.get("kind") == "database"]

    def objects(self) -> dict[str, dict[str, Any]]:
        paginator = self.client.get_paginator("list_objects_v2")
        return {
            obj["Key"]: obj
            for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{PREFIX}/")
            for obj in page.get("Contents", [])
        }

    def _stored_sha256(self, key: str, objects: dict[str, dict[str, Any]]) -> str | None:
        if key not in objects:
            return None
        cache = (key, str(objects[key].get("ETag")))
        if cache not in self.proven:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            self.proven[cache] = hashlib.sha256(body).hexdigest()
        return self.proven[cache]

    def restorable(self, rows: list[dict[str, Any]], objects: dict[str, dict[str, Any]]) -> set[str]:
        """The databases with a backup ``list`` calls complete whose stored bytes match its sha256."""
        return {
            row["database"]
            for row in rows
            if row["complete"] and row["key"] and self._stored_sha256(row["key"], objects) == row["sha256"]
        }

    def after_step(self, before: set[str], runs: list[Outcome]) -> set[str]:
        """Every invariant on the clean store; the databases restorable now."""
        rows = self.rows = self.listing()
        objects = self.objects()
        for row in rows:  # a timestamp seen for the first time holds the data of this step
            self.truth.setdefault((row["database"], row["timestamp"]), self.current[row["database"]])
        for outcome in runs:
            if outcome.returncode == 0:
                self._check_ok_run(outcome, rows)
        for key, obj in objects.items():  # every manifest points at an object that is there
            if key.endswith(".manifest.json"):
                cache = (key, f"manifest {obj.get('ETag')}")
                if cache not in self.proven:
                    body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
                    try:
                        self.proven[cache] = str(json.loads(body).get("key"))
                    except ValueError:
                        self.proven[cache] = ""
                pointed = self.proven[cache]
                self.check(
                    "manifest-object-there",
                    pointed in objects,
                    f"manifest {key} points at {pointed!r}, which is not in the bucket",
                )
        now = self.restorable(rows, objects)
        for database in sorted(before):
            self.check(
                "still-restorable",
                database in now,
                f"{database!r} had a complete backup with intact bytes before this step and has none after",
            )
        self.restore_checks(
            [
                row
                for row in rows
                if row["complete"] and (row["database"], row["timestamp"], row["sha256"]) not in self.restored
            ]
        )
        return now

    def _check_ok_run(self, outcome: Outcome, rows: list[dict[str, Any]]) -> None:
        """A run that exited 0 stored a backup of every database, complete in ``list``; or, when
        retention ran in the same step (an overlapping run's), deleted by it for a newer one."""
        stamps = {e.get("timestamp") for e in outcome.events() if e.get("event") == "run.started"}
        for database in self.databases:
            mine = [r for r in rows if r["database"] == database and r["timestamp"] in stamps]
            newer = (
                [
                    r
                    for r in rows
                    if r["database"] == database and r["complete"] and r["timestamp"] > max(s for s in stamps if s)
                ]
                if any(stamps)
                else []
            )
            ok = any(r["complete"] for r in mine) or (self.retention_ran and not mine and bool(newer))
            self.check(
                "ok-run-stored-all",
                ok,
                f"a run exited 0 (timestamp {sorted(s for s in stamps if s)}) but list shows no complete "
                f"backup of {database!r} from it; list shows "
                f"{[(r['timestamp'], r['status']) for r in rows if r['database'] == database]}; the run "
                f"said: {_messages(outcome)}",
            )

    def restore_checks(self, rows: list[dict[str, Any]]) -> None:
        """Backups ``list`` calls complete restore, and equal the data of their moment (two restores
        at a time: each is mostly waiting on psql and the server)."""
        for start in range(0, len(rows), 2):
            batch = rows[start : start + 2]
            started = [self._start_restore(row["database"], row["timestamp"], proxied=False) for row in batch]
            for row, (process, args, target) in zip(batch, started, strict=False):
                self.restored.add((row["database"], row["timestamp"], row["sha256"]))
                outcome, got = self._end_restore(process, args, target)
                if self.check(
                    "complete-restores",
                    outcome.returncode == 0,
                    f"backup {row['database']}@{row['timestamp']} is listed complete but its restore "
                    f"failed: {_tail(outcome.stdout + outcome.stderr)}",
                ):
                    self._compare(row["database"], outcome, got)

    def _start_restore(
        self, database: str, at: str, proxied: bool
    ) -> tuple[subprocess.Popen[str], tuple[str, ...], str]:
        self.targets += 1
        target = f"{database}_r{self.targets}"
        args = ("restore", "--database", database, "--at", at, "--target", target, "--create")
        return self._spawn(self.env(proxied), *args), args, target

    def _end_restore(
        self, process: subprocess.Popen[str], args: tuple[str, ...], target: str
    ) -> tuple[Outcome, Truth | None]:
        outcome = self._finish(process, args)
        exists = bool(self.cluster.sql("SELECT 1 FROM pg_database WHERE datname = %s", params=(target,)))
        got = self._checksum(target) if exists else None
        if outcome.returncode != 0:
            self.check(
                "failed-restore-leaves-nothing",
                not exists,
                f"a failed {' '.join(args)} left database {target!r} behind",
            )
        if exists:
            self.cluster.sql(f'DROP DATABASE "{target}" WITH (FORCE)')
        return outcome, got

    def _restore(self, database: str, at: str, proxied: bool) -> tuple[Outcome, Truth | None]:
        return self._end_restore(*self._start_restore(database, at, proxied))

    def _compare(self, database: str, outcome: Outcome, got: Truth | None) -> None:
        [stamp] = [e.get("timestamp") for e in outcome.events() if e.get("event") == "restore.started"] or [None]
        truth = self.truth.get((database, str(stamp)))
        self.check(
            "restore-equals-truth",
            truth is not None and got == truth,
            f"restore of {database}@{stamp} exited 0 but holds {_short(got)}, the data of its moment was "
            f"{_short(truth)}",
        )

    # -- steps -----------------------------------------------------------------------------------

    def run_step(self) -> None:
        before = self.restorable_now
        kind = self.rng.choices(
            ["change", "run", "signal", "overlap", "prune", "restore", "verify", "list"],
            weights=[14, 30, 12, 8, 9, 12, 6, 9],
        )[0]
        self.figures.step_kinds[kind] += 1
        started = time.monotonic()
        self.retention_ran = False
        runs: list[Outcome] = getattr(self, f"_step_{kind}")()
        self.restorable_now = self.after_step(before, runs)
        self.figures.step_seconds[kind] = self.figures.step_seconds.get(kind, 0.0) + time.monotonic() - started
        self.last_kind = kind

    def _step_change(self) -> list[Outcome]:
        for database in self.databases:
            if self.rng.random() < 0.7:
                self._change(database)
            self.current[database] = self._checksum(database)
        return []

    def _run_env(self) -> dict[str, str]:
        extra = {"BACKUP_PARALLEL_DATABASES": str(self.rng.randint(1, 2))}
        if self.rng.random() < 0.25:  # retention after the run, as a scheduled job has it
            extra["BACKUP_RETENTION"] = self._retention()
            self.retention_ran = True
        return self.env(True, **extra)

    def _retention(self) -> str:
        return self.rng.choice([f"last={self.rng.randint(1, 3)}", "daily=1", f"last={self.rng.randint(1, 2)},weekly=1"])

    def _step_run(self) -> list[Outcome]:
        self.arm("run")
        outcome = self._finish(self._spawn(self._run_env(), "run"), ("run",))
        self.disarm()
        return [outcome]

    def _wait_requests(self, start: int, count: int, process: subprocess.Popen[str]) -> None:
        """Until the proxy answered ``count`` more requests, or the process ended (bounded)."""
        deadline = time.monotonic() + 60
        while len(self.proxy.requests) - start < count and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)

    def _step_signal(self) -> list[Outcome]:
        self.arm("run", most=1)
        which = self.rng.choice(["SIGTERM", "SIGKILL"])
        # SIGTERM once the run talks to the store (its handler is in place by then); SIGKILL at any moment.
        after = self.rng.randint(1 if which == "SIGTERM" else 0, 14)
        start = len(self.proxy.requests)
        process = self._spawn(self._run_env(), "run")
        self._wait_requests(start, after, process)
        sent = ""
        if process.poll() is None:
            process.send_signal(getattr(signal, which))
            self.figures.signals[which] += 1
            sent = which
        outcome = self._finish(process, ("run",), sent)
        self.disarm()
        return [outcome]

    def _step_overlap(self) -> list[Outcome]:
        self.arm("run")
        start = len(self.proxy.requests)
        first = self._spawn(self._run_env(), "run")
        self._wait_requests(start, self.rng.randint(0, 10), first)
        second = self._spawn(self._run_env(), "run")
        outcomes = [self._finish(first, ("run",)), self._finish(second, ("run",))]
        self.disarm()
        return outcomes

    def _step_prune(self) -> list[Outcome]:
        self.arm("prune")
        self.cli("prune", proxied=True, BACKUP_RETENTION=self._retention())
        self.disarm()
        return []

    def _step_restore(self) -> list[Outcome]:
        # Everything drawn whatever the listing holds, so a seed's choices never depend on outcomes.
        pick, latest = self.rng.random(), self.rng.random() < 0.3
        self.arm("restore")
        rows = self.rows
        if not rows:
            self.disarm()
            return []
        row = rows[int(pick * len(rows))]
        at = "latest" if latest else row["timestamp"]
        outcome, got = self._restore(row["database"], at, proxied=True)
        hit = self.disarm()
        if outcome.returncode == 0:
            self._compare(row["database"], outcome, got)
        elif not hit and at != "latest":
            self.check(
                "complete-restores",
                not row["complete"],
                f"restore of {row['database']}@{at}, listed complete, failed with no fault injected: "
                f"{_tail(outcome.stdout + outcome.stderr)}",
            )
        return []

    def _step_verify(self) -> list[Outcome]:
        rows = self.rows
        self.arm("verify")
        outcome = self.cli("verify", proxied=True)
        hit = self.disarm()
        newest: dict[str, dict[str, Any]] = {}
        for row in rows:  # newest first per database
            newest.setdefault(row["database"], row)
        every_good = set(newest) == set(self.databases) and all(r["complete"] for r in newest.values())
        if not hit and outcome.returncode != 0:  # a database without a backup, or a damaged newest, fails it
            self.check(
                "verify-good-newest",
                not every_good,
                f"verify failed with no fault while every database's newest backup is complete: {_messages(outcome)}",
            )
        return []

    def _step_list(self) -> list[Outcome]:
        clean = {(r["database"], r["timestamp"]): r for r in self.rows}
        self.arm("list")
        outcome = self.cli("list", "--json", proxied=True)
        self.disarm()
        if outcome.returncode == 0:
            try:
                listed = json.loads(outcome.stdout)
            except ValueError:
                listed = None
            if not self.check(
                "list-json",
                isinstance(listed, list),
                f"list --json exited 0 without a JSON list: {_tail(outcome.stdout)}",
            ):
                return []
            for row in listed:
                if row.get("kind") != "database" or not row.get("complete"):
                    continue
                good = clean.get((row["database"], row["timestamp"]))
                self.check(
                    "faulty-list-no-false-complete",
                    good is not None and good["complete"] and good["sha256"] == row["sha256"],
                    f"list through faults shows {row['database']}@{row['timestamp']} complete, the clean "
                    f"listing does not",
                )
        return []


def _text(rng: random.Random) -> str:
    """A value with the characters a dump must carry exactly: quotes, tabs, newlines, backslashes, UTF-8."""
    pieces = ["plain", "it's", 'say "hi"', "tab\there", "new\nline", "back\\slash", "ünïcødé", "€", "\\N", ""]
    return " ".join(rng.choice(pieces) for _ in range(rng.randint(0, 8))) + "x" * rng.randint(0, 300)


def _messages(outcome: Outcome) -> str:
    """The messages of a JSON log, one after another (what a violation's report needs)."""
    return " | ".join(str(e.get("message", ""))[:300] for e in outcome.events())[-3000:]


def _tail(text: str, size: int = 400) -> str:
    return text.strip()[-size:].replace("\n", " | ")


def _short(truth: Truth | None) -> str:
    if truth is None:
        return "nothing"
    return ", ".join(f"{table} {rows} rows {digest[:8]}" for table, rows, digest in truth)


def soak(
    cluster: Cluster,
    bindir: Path,
    stores: dict[str, S3Server | SeaweedServer],
    seed: int,
    steps: int,
    seconds: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> Figures:
    """``steps`` steps on each store (fewer when ``seconds`` run out first); the figures."""
    figures = Figures(seed)
    started = time.monotonic()
    for store, server in stores.items():
        with Soak(cluster, bindir, server, store, seed, figures) as run:
            for number in range(1, steps + 1):
                if seconds is not None and time.monotonic() - started > seconds:
                    break
                run.step = number
                run.run_step()
                figures.steps += 1
                if progress:
                    progress(
                        f"{store} step {number} ({run.last_kind}): {len(figures.violations)} violations, "
                        f"{sum(figures.faults_hit.values())} faults injected"
                    )
    figures.seconds = time.monotonic() - started
    return figures


def _weed() -> Path:
    built = subprocess.run([str(ROOT / "scripts" / "tools-build"), "seaweedfs"], stdout=subprocess.PIPE, text=True)
    if built.returncode != 0:
        raise SystemExit("soak: scripts/tools-build seaweedfs failed; run it by hand to see why")
    return Path(built.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devenv.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--steps", type=int, default=100, help="steps per store")
    parser.add_argument("--store", choices=["moto", "seaweedfs", "both"], default="both")
    parser.add_argument("--seconds", type=float, help="start no step after this many seconds")
    parser.add_argument("--json", action="store_true", help="the figures as one JSON document")
    args = parser.parse_args(argv)
    names = ["moto", "seaweedfs"] if args.store == "both" else [args.store]
    with ExitStack() as stack:
        cluster = stack.enter_context(Cluster(embedded_bindir()))
        stores: dict[str, S3Server | SeaweedServer] = {}
        for name in names:
            server: S3Server | SeaweedServer = S3Server() if name == "moto" else SeaweedServer(_weed())
            stack.enter_context(server)
            stores[name] = server
        figures = soak(
            cluster,
            cluster.bindir,
            stores,
            args.seed,
            args.steps,
            args.seconds,
            progress=lambda line: print(line, file=sys.stderr, flush=True),
        )  # stdout: the figures
    print(json.dumps(figures.as_dict(), indent=2) if args.json else figures.text())
    return 1 if figures.violations else 0


if __name__ == "__main__":
    sys.exit(main())
