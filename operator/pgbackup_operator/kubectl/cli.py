"""``kubectl pgbackup``: the commands, their arguments and exit codes.

kubectl runs any ``kubectl-pgbackup`` on the ``PATH`` as ``kubectl pgbackup``, and ``pip
install pgbackup`` puts this one there. Each command asks only for what it needs, and only
through objects the operator already serves, so a user needs no bucket credentials and no
right to create Jobs:

- ``status``: the PgBackups' status as the operator writes it (``views``);
- ``backup NAME``: the ``pgbackup.io/backup-now`` annotation, set to a new id; with
  ``--wait`` the Job the operator makes for that id (its name is fixed by the id,
  ``names.manual_job_name``) is followed through its pods' logs to the end, and the exit code
  is the run's;
- ``list NAME``: the ``pgbackup.io/list-requested`` annotation, set to a new id; the operator
  lists the bucket with the PgBackup's read identity and publishes the table in a ConfigMap
  (``listings``), printed here once it answers that id;
- ``restore NAME``: a PgRestore, followed (``--wait``) to Succeeded or Failed, with its
  Job's log where the user may read pods' logs;
- ``logs NAME``: the log of the last run (the Job ``status.lastRun`` names), drill or prune.

Exit codes: 0 done; 1 a run, restore or listing that failed, or a request the cluster
refused (one line naming the verb and resource RBAC would have to allow); 2 wrong arguments.
No traceback reaches the user.
"""

from __future__ import annotations

import argparse
import functools
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TypeVar

from backup_job import __version__
from backup_job.core.errors import ClusterError, ForbiddenError, PgBackupError

from ..api import LIST_ANNOTATION, LIST_DATABASE_ANNOTATION, RUN_NOW_ANNOTATION
from ..names import cronjob_name, listing_name, manual_job_name
from . import views
from .cluster import Body, Cluster

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
POLL = 1.0  # seconds between looks at an object we wait on
LIST_TIMEOUT = 600  # seconds to wait for the operator's listing: its Job's own deadline
JOB_TIMEOUT = 300  # seconds to wait for the first pod of a Job the operator is to make
T = TypeVar("T")


def _request_id() -> str:
    """A new annotation value: when, and a random part, so two users never ask the same."""
    return f"{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


def _wait(what: str, check: Callable[[], T | None], timeout: float | None = None) -> T:
    started = time.monotonic()
    while True:
        found = check()
        if found is not None:
            return found
        if timeout is not None and time.monotonic() - started > timeout:
            raise ClusterError(f"{what} did not come within {int(timeout)} s; is the operator running?")
        time.sleep(POLL)


def _ready(body: Body, what: str) -> None:
    """Refuse at once what the operator would not do: it acts on requests only for a PgBackup
    it could render (``Ready`` not False)."""
    conditions = (body.get("status") or {}).get("conditions") or []
    ready: Body = next((c for c in conditions if c.get("type") == "Ready"), {})
    if ready.get("status") == "False":
        name = body["metadata"]["name"]
        raise ClusterError(
            f"{name} is not Ready ({ready.get('reason')}: {ready.get('message')}), so the operator would not "
            f"{what}; fix it first (kubectl describe pgbackup {name})"
        )


def _err(text: str) -> None:
    print(f"kubectl pgbackup: {text}", file=sys.stderr)


# -- status ----------------------------------------------------------------------------------


def status(cluster: Cluster, args: argparse.Namespace) -> int:
    items = cluster.pgbackups(args.all_namespaces)
    now = views.utcnow()
    if args.output in ("json", "yaml"):
        sys.stdout.write(views.document(items, now, args.output))
        return EXIT_OK
    if not items:
        where = "any namespace" if args.all_namespaces else f"namespace {cluster.namespace}"
        print(f"No PgBackups found in {where}.", file=sys.stderr)
        return EXIT_OK
    sys.stdout.write(views.table(items, now, args.all_namespaces))
    return EXIT_OK


# -- following a Job's pods --------------------------------------------------------------------


def _finished(pod: Body) -> Body | None:
    for container in (pod.get("status") or {}).get("containerStatuses") or []:
        terminated = (container.get("state") or {}).get("terminated")
        if terminated:
            return dict(terminated)
    return None


def _follow(cluster: Cluster, job: str, wanted: int = 1, over: Callable[[], bool] = lambda: False) -> int:
    """Stream the logs of the Job's pods as they run, one after the other; the exit code of the
    last that failed, else 0. ``wanted``: how many pods the Job runs; ``over``: whether the
    operator has recorded the end already (a pod that never started, a deadline), so nothing
    more is waited for."""
    followed: set[str] = set()
    code = EXIT_OK
    _wait(f"a pod of Job {job}", lambda: cluster.job_pods(job) or over() or None, timeout=JOB_TIMEOUT)
    while True:
        pods = [p for p in cluster.job_pods(job) if p["metadata"]["name"] not in followed]
        startable = [p for p in pods if (p.get("status") or {}).get("phase") in ("Running", "Succeeded", "Failed")]
        if not startable:
            if (len(followed) >= wanted and not pods) or over():
                return code
            time.sleep(POLL)
            continue
        pod = startable[0]
        name = pod["metadata"]["name"]
        for chunk in cluster.log(name, follow=True):
            sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
        terminated = _wait(f"the end of pod {name}", functools.partial(_terminated, cluster, job, name))
        followed.add(name)
        if terminated.get("exitCode"):
            code = int(terminated["exitCode"])
        if len(followed) >= wanted and not [p for p in cluster.job_pods(job) if p["metadata"]["name"] not in followed]:
            return code


def _terminated(cluster: Cluster, job: str, pod: str) -> Body | None:
    found = next((p for p in cluster.job_pods(job) if p["metadata"]["name"] == pod), None)
    if found is None:
        return {"exitCode": 1}  # gone before it told
    phase = (found.get("status") or {}).get("phase")
    if phase in ("Succeeded", "Failed"):  # over, with or without a container that ran
        return _finished(found) or {"exitCode": 0 if phase == "Succeeded" else 1}
    return _finished(found)


# -- backup ----------------------------------------------------------------------------------


def backup(cluster: Cluster, args: argparse.Namespace) -> int:
    body = cluster.pgbackup(args.name)
    _ready(body, "start a backup")
    run_id = _request_id()
    cluster.annotate(args.name, {RUN_NOW_ANNOTATION: run_id})
    cronjob = (body.get("status") or {}).get("cronJobName") or cronjob_name(args.name)
    job = manual_job_name(cronjob, run_id)
    print(f"backup of {args.name} requested: Job {job}", file=sys.stderr)
    if not args.wait:
        return EXIT_OK
    shards = int((body.get("spec") or {}).get("parallelism") or 1)

    def recorded() -> str | None:
        run = (cluster.pgbackup(args.name).get("status") or {}).get("lastRun") or {}
        return str(run["result"]) if run.get("jobName") == job and run.get("result") != "Running" else None

    code = _follow(cluster, job, shards, lambda: recorded() is not None)

    result = _wait(f"the outcome of Job {job}", recorded, timeout=120)
    if result == "Succeeded":
        print(f"backup of {args.name} succeeded", file=sys.stderr)
        return EXIT_OK
    _err(f"backup of {args.name} failed: see kubectl describe pgbackup {args.name}")
    return code or EXIT_FAILED


# -- list ------------------------------------------------------------------------------------


def listing(cluster: Cluster, args: argparse.Namespace) -> int:
    _ready(cluster.pgbackup(args.name), "list its backups")
    wanted = _request_id()
    cluster.annotate(args.name, {LIST_ANNOTATION: wanted, LIST_DATABASE_ANNOTATION: args.database})
    name = listing_name(args.name)

    def answered() -> Body | None:
        found = cluster.config_map(name)
        data = (found or {}).get("data") or {}
        return dict(data) if data.get("request") == wanted else None

    data = _wait(f"the listing of {args.name} (ConfigMap {name})", answered, timeout=LIST_TIMEOUT)
    if data.get("result") == "Succeeded":
        sys.stdout.write(data.get("listing", ""))
        return EXIT_OK
    sys.stderr.write(data.get("listing", ""))
    _err(f"listing the backups of {args.name} failed")
    return EXIT_FAILED


# -- restore ---------------------------------------------------------------------------------


def restore(cluster: Cluster, args: argparse.Namespace) -> int:
    cluster.pgbackup(args.name)
    name = args.restore_name or f"{args.name}-{datetime.now(UTC).strftime('%Y%m%d%H%M%S')}-{secrets.token_hex(2)}"
    spec: Body = {"backupRef": {"name": args.name}, "database": args.database}
    if args.at:
        spec["at"] = args.at
    target: Body = {}
    if args.target:
        target["database"] = args.target
    for flag in ("create", "clean"):
        if getattr(args, flag):
            target[flag] = True
    if target:
        spec["target"] = target
    cluster.create_pgrestore(
        {"apiVersion": "pgbackup.io/v1alpha1", "kind": "PgRestore", "metadata": {"name": name}, "spec": spec}
    )
    print(f"pgrestore {name} created", file=sys.stderr)
    if not args.wait:
        return EXIT_OK
    final = _follow_restore(cluster, name)
    message = str(final.get("message") or "")
    if final.get("phase") == "Succeeded":
        print(f"restored: {message}" if message else "restored")
        return EXIT_OK
    _err(f"pgrestore {name} failed: {message or 'see kubectl describe pgrestore ' + name}")
    return EXIT_FAILED


def _restore_over(cluster: Cluster, name: str) -> bool:
    return (cluster.pgrestore(name).get("status") or {}).get("phase") in ("Succeeded", "Failed")


def _follow_restore(cluster: Cluster, name: str) -> Body:
    """Print the PgRestore's phases, and its Job's log where the user may read it, until it
    Succeeded or Failed; its status then."""
    shown, followed = "", False
    while True:
        found = cluster.pgrestore(name).get("status") or {}
        phase = str(found.get("phase") or "")
        if phase and phase != shown:
            print(f"pgrestore {name}: {phase}", file=sys.stderr)
            shown = phase
        over = phase in ("Succeeded", "Failed")
        job = found.get("jobName")
        if job and not followed:
            followed = True
            try:
                if not over or cluster.job_pods(str(job)):  # a finished Job's pods may be gone
                    _follow(cluster, str(job), over=functools.partial(_restore_over, cluster, name))
                    continue
            except ForbiddenError as exc:
                print(f"pgrestore {name}: its log is not shown: {exc}", file=sys.stderr)
        if over:
            return dict(found)
        time.sleep(POLL)


# -- logs ------------------------------------------------------------------------------------


def logs(cluster: Cluster, args: argparse.Namespace) -> int:
    found = cluster.pgbackup(args.name).get("status") or {}
    if args.verify:
        what, job = "drill", (found.get("lastVerify") or {}).get("job")
    elif args.prune:
        what, job = "prune", (found.get("lastPrune") or {}).get("job")
    else:
        what, job = "run", (found.get("lastRun") or {}).get("jobName")
    if not job:
        raise ClusterError(f"{args.name} has no {what} yet")
    pods = cluster.job_pods(job)
    if not pods:
        raise ClusterError(f"the pods of the last {what}'s Job {job} are gone (the Job's history limit or TTL)")
    for pod in pods:
        if len(pods) > 1:
            print(f"==> pod {pod['metadata']['name']} <==", flush=True)
        for chunk in cluster.log(pod["metadata"]["name"], follow=args.follow):
            sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
    return EXIT_OK


# -- arguments -------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="kubectl pgbackup",
        description="Status, backups, listings, restores and logs of PgBackups, with your kubeconfig's rights.",
    )
    top.add_argument("--version", action="version", version=f"kubectl-pgbackup {__version__}")
    # Before the command or after it, as with kubectl; given after, it wins (SUPPRESS keeps a
    # subcommand's absent option from hiding the one given before).
    common = argparse.ArgumentParser(add_help=False)
    for where, default in ((top, None), (common, argparse.SUPPRESS)):
        where.add_argument(
            "--context", default=default, help="the kubeconfig context to use (default: the current one)"
        )
        where.add_argument(
            "-n", "--namespace", default=default, help="the namespace (default: the context's, else default)"
        )
    commands = top.add_subparsers(dest="command", metavar="COMMAND", required=True)

    show = commands.add_parser("status", parents=[common], help="every PgBackup: last run, freshness, next run")
    show.add_argument("-A", "--all-namespaces", action="store_true", help="in every namespace")
    show.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")

    now = commands.add_parser("backup", parents=[common], help="run a backup now")
    now.add_argument("name", metavar="NAME", help="the PgBackup")
    now.add_argument("--wait", action="store_true", help="follow the run's log; exit with the run's code")

    bucket = commands.add_parser(
        "list", parents=[common], help="the backups in the bucket, as pgbackup list shows them"
    )
    bucket.add_argument("name", metavar="NAME", help="the PgBackup")
    bucket.add_argument("--database", metavar="D", help="only this database's backups")

    back = commands.add_parser("restore", parents=[common], help="restore a database (creates a PgRestore)")
    back.add_argument("name", metavar="NAME", help="the PgBackup whose backup to restore")
    back.add_argument("--database", metavar="D", required=True, help="the database whose backup to restore")
    back.add_argument("--at", metavar="T", help="the newest backup at or before T (default: the newest)")
    back.add_argument("--target", metavar="T", help="load into database T (default: D)")
    back.add_argument("--create", action="store_true", help="create the target database (it must not exist)")
    back.add_argument("--clean", action="store_true", help="drop the target's objects first")
    back.add_argument("--name", dest="restore_name", metavar="R", help="the PgRestore's name (default: NAME-<time>)")
    back.add_argument("--wait", action="store_true", help="wait for the restore's end; exit 1 if it failed")

    log = commands.add_parser("logs", parents=[common], help="the log of the last run (or drill, or prune)")
    log.add_argument("name", metavar="NAME", help="the PgBackup")
    which = log.add_mutually_exclusive_group()
    which.add_argument("--verify", action="store_true", help="the last verify drill's log")
    which.add_argument("--prune", action="store_true", help="the last prune's log")
    log.add_argument("-f", "--follow", action="store_true", help="keep streaming while it runs")
    return top


COMMANDS: dict[str, Callable[[Cluster, argparse.Namespace], int]] = {
    "status": status,
    "backup": backup,
    "list": listing,
    "restore": restore,
    "logs": logs,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        cluster = Cluster(args.context, args.namespace)
        return COMMANDS[args.command](cluster, args)
    except PgBackupError as exc:
        _err(str(exc))
        return EXIT_FAILED
    except KeyboardInterrupt:
        _err("interrupted; what was asked of the operator goes on")
        return EXIT_FAILED
    except BrokenPipeError:
        return EXIT_FAILED


def console() -> None:
    """The ``kubectl-pgbackup`` entry point."""
    sys.exit(main())
