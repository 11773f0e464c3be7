"""What a split backup reads about a database's tables, on the leader's snapshot.

The schema archive decides *which* tables are in the backup (pg_dump applied the user's
``-t``/``-n``/``-T``/``-N`` and extension membership: ``pg.toc``); this module reads, by OID,
what the data streams and a later restore need about each of them:

- its schema, name and owner, whether it is unlogged, its size in pages (to cut a large table
  into ranges of pages), its columns (stored ones only: generated columns are computed again
  on load, as pg_dump leaves them out), and the root of its partition tree (for
  ``--load-via-partition-root``);
- the OIDs of what hangs on it, so that ``restore --table`` can pick exactly those entries out
  of the two schema archives: owned sequences and column defaults before the data; indexes,
  constraints, triggers, policies, rules and extended statistics after it; and its foreign keys,
  with the tables they point at, which are skipped (and named) when those are not restored;
- the sequences' values, and the configuration tables of the extensions in the backup with the
  filter their extension declared (``pg_extension_config_dump``), whose rows pg_dump dumps too.

Every query names only ``pg_catalog`` objects, in a session whose ``search_path`` is
``pg_catalog, pg_temp`` (``pg.target``); names come back as text and reach SQL elsewhere only
through ``sql.Identifier``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from psycopg2 import sql

from .snapshot import Leader

PG_ATTRDEF, PG_CONSTRAINT, PG_TRIGGER, PG_REWRITE, PG_POLICY, PG_STATISTIC_EXT = 2604, 2606, 2620, 2618, 3256, 3381
PG_CLASS = 1259


@dataclass
class Table:
    """One table whose rows a split backup stores."""

    oid: int
    schema: str
    name: str
    qualified: str  # as pg_dump writes it: "schema.name", each part quoted when needed
    owner: str
    unlogged: bool
    pages: int
    columns: tuple[str, ...]
    root: tuple[str, str] | None = None  # the partition tree's root, when it is a partition
    partitioned: bool = False  # a partitioned table: no rows of its own, its partitions hold them
    condition: str = ""  # an extension configuration table's filter
    pre: list[tuple[int, int]] = field(default_factory=list)
    post: list[tuple[int, int]] = field(default_factory=list)
    foreign_keys: list[tuple[int, int]] = field(default_factory=list)  # (constraint oid, referenced table oid)

    def describe(self) -> dict[str, Any]:
        """What the manifest records of it for ``restore --table``."""
        return {
            "oid": self.oid,
            "schema": self.schema,
            "name": self.name,
            "owner": self.owner,
            "pre": [list(p) for p in self.pre],
            "post": [list(p) for p in self.post],
            "foreign_keys": [list(f) for f in self.foreign_keys],
        }


_TABLES = """
SELECT c.oid, n.nspname, c.relname, pg_catalog.format('%%I.%%I', n.nspname, c.relname),
       pg_catalog.pg_get_userbyid(c.relowner), c.relpersistence OPERATOR(pg_catalog.=) 'u', c.relkind,
       (pg_catalog.pg_relation_size(c.oid) OPERATOR(pg_catalog./)
        pg_catalog.current_setting('block_size')::pg_catalog.int8)::pg_catalog.int8,
       ARRAY(SELECT a.attname FROM pg_catalog.pg_attribute a
             WHERE a.attrelid OPERATOR(pg_catalog.=) c.oid AND a.attnum OPERATOR(pg_catalog.>) 0
               AND NOT a.attisdropped {generated}
             ORDER BY a.attnum)::pg_catalog.text[]
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
WHERE c.oid OPERATOR(pg_catalog.=) ANY(%s::pg_catalog.oid[])
"""

_ROOT = """
SELECT c.oid, rn.nspname, r.relname
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_class r ON r.oid OPERATOR(pg_catalog.=) pg_catalog.pg_partition_root(c.oid)
JOIN pg_catalog.pg_namespace rn ON rn.oid OPERATOR(pg_catalog.=) r.relnamespace
WHERE c.oid OPERATOR(pg_catalog.=) ANY(%s::pg_catalog.oid[]) AND c.relispartition
"""

_HANGING = """
SELECT d.refobjid, 'pre', 1259, d.objid FROM pg_catalog.pg_depend d
  JOIN pg_catalog.pg_class s ON s.oid OPERATOR(pg_catalog.=) d.objid AND s.relkind OPERATOR(pg_catalog.=) 'S'
  WHERE d.classid OPERATOR(pg_catalog.=) 1259 AND d.refclassid OPERATOR(pg_catalog.=) 1259
    AND d.deptype IN ('a', 'i') AND d.refobjid OPERATOR(pg_catalog.=) ANY(%(t)s::pg_catalog.oid[])
UNION ALL SELECT adrelid, 'pre', 2604, oid FROM pg_catalog.pg_attrdef
  WHERE adrelid OPERATOR(pg_catalog.=) ANY(%(t)s::pg_catalog.oid[])
UNION ALL SELECT i.indrelid, 'post', 1259, i.indexrelid FROM pg_catalog.pg_index i
  WHERE i.indrelid OPERATOR(pg_catalog.=) ANY(%(t)s::pg_catalog.oid[])
UNION ALL SELECT conrelid, CASE WHEN contype OPERATOR(pg_catalog.=) 'f' THEN 'fk' ELSE 'post' END,
    2606, oid FROM pg_catalog.pg_constraint WHERE conrelid OPERATOR(pg_catalog.=) ANY(%(t)s::pg_catalog.oid[])
UNION ALL SELECT tgrelid, 'post', 2620, oid FROM pg_catalog.pg_trigger
  WHERE NOT tgisinternal AND tgrelid OPERATOR(pg_catalog.=) ANY(%(t)s::pg_catalog.oid[])
UNION ALL SELECT polrelid, 'post', 3256, oid FROM pg_catalog.pg_policy
  WHERE polrelid OPERATOR(pg_catalog.=) ANY(%(t)s::pg_catalog.oid[])
UNION ALL SELECT ev_class, 'post', 2618, oid FROM pg_catalog.pg_rewrite
  WHERE rulename OPERATOR(pg_catalog.<>) '_RETURN' AND ev_class OPERATOR(pg_catalog.=) ANY(%(t)s::pg_catalog.oid[])
UNION ALL SELECT stxrelid, 'post', 3381, oid FROM pg_catalog.pg_statistic_ext
  WHERE stxrelid OPERATOR(pg_catalog.=) ANY(%(t)s::pg_catalog.oid[])
"""

_FOREIGN_KEYS = """
SELECT conrelid, oid, confrelid FROM pg_catalog.pg_constraint
WHERE contype OPERATOR(pg_catalog.=) 'f' AND conrelid OPERATOR(pg_catalog.=) ANY(%s::pg_catalog.oid[])
"""

_EXTENSION_TABLES = """
SELECT x.config, COALESCE(x.condition, '')
FROM pg_catalog.pg_extension e,
     LATERAL ROWS FROM (pg_catalog.unnest(e.extconfig), pg_catalog.unnest(e.extcondition)) AS x(config, condition)
WHERE e.oid OPERATOR(pg_catalog.=) ANY(%s::pg_catalog.oid[])
"""


def read_tables(leader: Leader, oids: list[int], server_major: int) -> list[Table]:
    """The tables with these OIDs, as the snapshot sees them (partitioned ones marked: they hold
    no rows of their own, but rows may be loaded through them)."""
    if not oids:
        return []
    generated = "AND a.attgenerated OPERATOR(pg_catalog.=) ''" if server_major >= 12 else ""
    tables: dict[int, Table] = {}
    for row in leader.query(_TABLES.format(generated=generated), (oids,)):
        oid, schema, name, qualified, owner, unlogged, kind, pages, columns = row
        if kind not in ("r", "p"):
            continue
        tables[int(str(oid))] = Table(
            oid=int(str(oid)),
            schema=str(schema),
            name=str(name),
            qualified=str(qualified),
            owner=str(owner),
            unlogged=bool(unlogged),
            pages=int(str(pages)),
            columns=tuple(str(c) for c in columns),  # type: ignore[attr-defined]
            partitioned=kind == "p",
        )
    if server_major >= 12 and tables:
        for oid, schema, name in leader.query(_ROOT, (list(tables),)):
            tables[int(str(oid))].root = (str(schema), str(name))
    if tables:
        _hang(leader, tables)
    return list(tables.values())


def _hang(leader: Leader, tables: dict[int, Table]) -> None:
    for table_oid, where, catalog, oid in leader.query(_HANGING, {"t": list(tables)}):  # type: ignore[arg-type]
        table = tables[int(str(table_oid))]
        pair = (int(str(catalog)), int(str(oid)))
        if where == "pre":
            table.pre.append(pair)
        elif where == "post":
            table.post.append(pair)
    for table_oid, constraint, referenced in leader.query(_FOREIGN_KEYS, (list(tables),)):
        tables[int(str(table_oid))].foreign_keys.append((int(str(constraint)), int(str(referenced))))
    for table in tables.values():
        table.pre.insert(0, (PG_CLASS, table.oid))
        table.post.append((0, table.oid))  # its ROW SECURITY switch


def extension_tables(leader: Leader, extensions: list[int], server_major: int) -> list[Table]:
    """The configuration tables of these extensions, each with its extension's row filter."""
    if not extensions:
        return []
    found = {int(str(oid)): str(condition) for oid, condition in leader.query(_EXTENSION_TABLES, (extensions,))}
    tables = read_tables(leader, list(found), server_major)
    for table in tables:
        table.condition = found[table.oid]
        table.pre, table.post, table.foreign_keys = [], [], []
    return tables


def sequence_values(leader: Leader, oids: list[int]) -> list[dict[str, Any]]:
    """Each sequence's last value and whether it was called, as pg_dump's ``SEQUENCE SET``
    records them (sequences are not transactional: their value now, as in pg_dump)."""
    values: list[dict[str, Any]] = []
    if not oids:
        return values
    rows = leader.query(
        "SELECT c.oid, n.nspname, c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n"
        " ON n.oid OPERATOR(pg_catalog.=) c.relnamespace WHERE c.oid OPERATOR(pg_catalog.=) ANY(%s::pg_catalog.oid[])"
        " AND c.relkind OPERATOR(pg_catalog.=) 'S'",
        (oids,),
    )
    with leader.connection.cursor() as cursor:
        for oid, schema, name in rows:
            cursor.execute(
                sql.SQL("SELECT last_value, is_called FROM {}").format(sql.Identifier(str(schema), str(name)))
            )
            found = cursor.fetchone()
            assert found is not None
            values.append(
                {
                    "oid": int(str(oid)),
                    "schema": str(schema),
                    "name": str(name),
                    "last_value": int(found[0]),
                    "is_called": bool(found[1]),
                }
            )
    return values
