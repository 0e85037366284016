"""Benchmark: the six legacy databases into schemas of one database, every way, on the same data, in one run.

    python -m bench.run                      # scale 1.0 on a throwaway cluster, table on stdout + bench/output/
    python -m bench.run --scale 0.1 --repeat 3 --readme
    python -m bench.run --dir bench/output/pg --keep   # keep (or reuse) the cluster and its legacy databases

Approaches (``--approaches``, comma-separated, default all):

* ``a_default``, ``a_count``, ``a_jobs1``: ``lamassuiot.postgres.postgres_db_to_schema`` through
  ``ansible-playbook``, one task per database (a loop, as the ``db_to_schema`` role runs it) into a database
  made beforehand, default settings, ``verify: count``, ``jobs: 1``; ``a_rerun`` runs the same play again on
  the copy of ``a_default`` (nothing to do);
* ``b_dump_psql``: ``pg_dump -n public X | psql --single-transaction`` with the rename-``public`` trick;
* ``c_dump_restore``: ``pg_dump -Fc -n public`` to a file, then ``pg_restore -j 2``, same trick;
* ``d_naive``: row by row (CREATE TABLE from the column list, one prepared INSERT per row, one commit per
  table, then the primary key), time-boxed by ``--naive-budget`` and extrapolated beyond it;
* ``e_pgcopydb``: ``pgcopydb clone`` of each database into a database of its own;
* ``f_server``: inside each source database, ``CREATE TABLE ... AS SELECT`` of every table into a scratch schema
  plus the same constraint and index builds: no client transfer at all.

Every approach gets a fresh target database (dropped after its check) and its result is checked: every
table of every source schema, with the same row count and the same primary key columns. A ``CHECKPOINT``
runs before each measurement. The peak RSS of the module processes is sampled with psutil (``VmHWM`` of
each ``AnsiballZ_postgres_db_to_schema`` process); ``--rss-scale`` (default 0.1) repeats the default run
on a second, smaller copy of the legacy databases to show that memory does not grow with the data.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tests.harness.collection import ROOT, ensure_collection_path

ensure_collection_path()

import psutil  # noqa: E402
import psycopg2.extras  # noqa: E402
from psycopg2 import sql  # noqa: E402

from ansible_collections.lamassuiot.postgres.plugins.module_utils.lamassu import SERVICES  # noqa: E402
from tests.harness.ansible import ansible_env  # noqa: E402
from tests.harness.fixture import build_legacy  # noqa: E402
from tests.harness.pgcluster import Cluster, load_cluster, start_cluster, throwaway_cluster  # noqa: E402

OUTPUT = ROOT / "bench" / "output"
README = ROOT / "bench" / "README.md"
TABLE_BEGIN = "<!-- bench:results -->"
TABLE_END = "<!-- /bench:results -->"
MODULE_PROCESS = "AnsiballZ_postgres_db_to_schema"
TIME = "/usr/bin/time"  # GNU time: the module's peak RSS without polling; psutil sampling when missing
RSS_FILE_ENV = "LAMASSU_BENCH_RSS_FILE"
SAVED_PUBLIC = "bench_saved_public"
SCRATCH_SCHEMA = "bench_f"
# The wait of the db_to_schema role for copies started at once (roles/db_to_schema/tasks/main.yml).
AT_ONCE_WAIT = {
    "name": "Wait for the copies running at once",
    "ansible.builtin.async_status": {"jid": "{{ item.ansible_job_id }}"},
    "loop": "{{ started.results | reverse | list }}",
    "register": "waited",
    "until": "waited is finished",
    "retries": 172800,
    "delay": 1,
}
APPROACHES = (
    "a_default",
    "a_count",
    "a_jobs1",
    "a_parallel",
    "a_parallel_count",
    "b_dump_psql",
    "c_dump_restore",
    "d_naive",
    "e_pgcopydb",
    "f_server",
)
DESCRIPTIONS = {
    "a_default": "the module through Ansible, defaults (verify: checksum, jobs: 2)",
    "a_count": "the module through Ansible, verify: count",
    "a_jobs1": "the module through Ansible, jobs: 1",
    "a_rerun": "the module through Ansible, again on the copied databases",
    "a_parallel": "the module through Ansible, the six databases at once (db_to_schema_parallel), defaults",
    "a_parallel_count": "the module through Ansible, the six databases at once, verify: count",
    "b_dump_psql": "pg_dump -n public | psql --single-transaction, rename trick",
    "c_dump_restore": "pg_dump -Fc -n public + pg_restore -j 2, rename trick",
    "d_naive": "row by row: one prepared INSERT per row, commit per table",
    "e_pgcopydb": "pgcopydb clone --table-jobs 2 --index-jobs 2, database per database",
    "f_server": "server side: CREATE TABLE AS SELECT + same index/constraint builds",
}
SETTINGS_SHOWN = (
    "server_version",
    "shared_buffers",
    "work_mem",
    "maintenance_work_mem",
    "max_parallel_maintenance_workers",
    "max_parallel_workers",
    "max_worker_processes",
    "wal_level",
    "fsync",
    "synchronous_commit",
    "full_page_writes",
    "max_wal_size",
    "checkpoint_timeout",
)


# ------------------------------------------------------------------ source description and checks
@dataclass
class SourceTable:
    rows: int
    primary_key: list[str] | None
    bytes: int


@dataclass
class Source:
    """The legacy databases as built: per service, its database and its tables."""

    scale: float
    prefix: str
    databases: dict[str, str]  # service -> database
    tables: dict[str, dict[str, SourceTable]]  # service -> table -> facts
    database_bytes: int
    table_bytes: int

    @property
    def rows(self) -> int:
        return sum(t.rows for tables in self.tables.values() for t in tables.values())


_TABLES = """
SELECT c.relname, pg_table_size(c.oid),
       (SELECT array_agg(a.attname::text ORDER BY k.n)
          FROM pg_constraint co CROSS JOIN LATERAL unnest(co.conkey) WITH ORDINALITY AS k(attnum, n)
          JOIN pg_attribute a ON a.attrelid = co.conrelid AND a.attnum = k.attnum
         WHERE co.conrelid = c.oid AND co.contype = 'p')
FROM pg_class c WHERE c.relnamespace = %s::regnamespace AND c.relkind = 'r' ORDER BY c.relname
"""


def describe_tables(cluster: Cluster, database: str, schema: str) -> dict[str, tuple[int, list[str] | None, int]]:
    """``{table: (rows, primary key columns, table bytes)}`` of one schema, rows counted exactly."""
    with contextlib.closing(cluster.connect(database)) as conn, conn.cursor() as cur:
        cur.execute(_TABLES, (schema,))
        found = {}
        for name, size, key in cur.fetchall():
            cur.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, name)))
            found[name] = (cur.fetchone()[0], list(key) if key else None, size)
        return found


def describe_source(cluster: Cluster, scale: float, prefix: str) -> Source:
    databases = {service: prefix + service for service in SERVICES}
    tables = {}
    database_bytes = 0
    for service, database in databases.items():
        tables[service] = {
            name: SourceTable(rows, key, size)
            for name, (rows, key, size) in describe_tables(cluster, database, "public").items()
        }
        database_bytes += cluster.query(database, "SELECT pg_database_size(current_database())")[0][0]
    table_bytes = sum(t.bytes for ts in tables.values() for t in ts.values())
    return Source(scale, prefix, databases, tables, database_bytes, table_bytes)


def check_copy(cluster: Cluster, source: Source, where: Callable[[str], tuple[str, str]]) -> list[str]:
    """Problems of a copy: ``where(service)`` gives the (database, schema) holding that service's tables."""
    problems = []
    for service, expected in source.tables.items():
        database, schema = where(service)
        try:
            found = describe_tables(cluster, database, schema)
        except Exception as exc:  # a missing database is a problem to report, not a crash
            problems.append(f"{database}.{schema}: {str(exc).strip()}")
            continue
        for name, table in expected.items():
            if name not in found:
                problems.append(f"{database}.{schema}.{name}: missing")
                continue
            rows, key, _size = found[name]
            if rows != table.rows:
                problems.append(f"{database}.{schema}.{name}: {rows} rows, expected {table.rows}")
            if key != table.primary_key:
                problems.append(f"{database}.{schema}.{name}: primary key {key}, expected {table.primary_key}")
        extra = sorted(set(found) - set(expected))
        if extra:
            problems.append(f"{database}.{schema}: unexpected tables {extra}")
    return problems


# ------------------------------------------------------------------ measurements
@dataclass
class Measurement:
    approach: str
    seconds: float
    ok: bool
    problems: list[str] = field(default_factory=list)
    estimated: bool = False
    skipped: bool = False
    peak_rss_mb: float | None = None
    load_before: float = 0.0
    notes: str = ""
    detail: dict = field(default_factory=dict)


class RssSampler:
    """Peak resident set (``VmHWM``) of the module processes under ``ansible-playbook``, sampled in a thread.

    A module process is a Python interpreter under ``ansible-playbook`` that is not one of its own workers:
    ``python AnsiballZ_postgres_db_to_schema.py``, or a bare ``python`` reading the module from its standard
    input when Ansible pipelines.
    """

    def __init__(self, root_pid: int, interval: float = 0.25):
        self.root = psutil.Process(root_pid)
        self.interval = interval
        self.peak_kb = 0
        self.processes = 0
        self._seen: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error):
                for proc in self.root.children(recursive=True):
                    with contextlib.suppress(psutil.Error, OSError, ValueError):
                        if not _is_module_process(proc.cmdline()):
                            continue
                        self._seen.add(proc.pid)
                        self.peak_kb = max(self.peak_kb, _high_water_kb(proc.pid))
            self._stop.wait(self.interval)

    def stop(self) -> float | None:
        self._stop.set()
        self._thread.join()
        self.processes = len(self._seen)
        return round(self.peak_kb / 1024, 1) if self.peak_kb else None


def _peak_from_time(path: Path) -> float | None:
    """The largest maximum RSS (kB, GNU time's %M) of the module processes recorded in ``path``, in MB."""
    if not path.exists():
        return None
    peaks = [int(line.split()[0]) for line in path.read_text().splitlines() if MODULE_PROCESS in line]
    return round(max(peaks) / 1024, 1) if peaks else None


def _is_module_process(cmdline: list[str]) -> bool:
    if not cmdline or not os.path.basename(cmdline[0]).startswith("python"):
        return False
    return not any("ansible-playbook" in part for part in cmdline[1:]) and (
        len(cmdline) == 1 or MODULE_PROCESS in cmdline[1]
    )


def _high_water_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


class Bench:
    def __init__(
        self,
        cluster: Cluster,
        source: Source,
        out: Path,
        target_prefix: str,
        naive_budget: float,
        pipelining: bool = False,
    ):
        self.cluster = cluster
        self.pipelining = pipelining
        self.source = source
        self.out = out
        self.target_prefix = target_prefix
        self.naive_budget = naive_budget
        self.work = Path(tempfile.mkdtemp(prefix="work-", dir=out))

    # ---------------------------------------------------------- helpers
    def name(self, suffix: str) -> str:
        return f"{self.target_prefix}bench_{suffix}"

    def tool(self, name: str) -> str | None:
        return client_tool(self.cluster, name)

    def client_args(self) -> list[str]:
        return ["-h", self.cluster.host, "-p", str(self.cluster.port), "-U", self.cluster.user]

    def client_env(self) -> dict:
        return {**os.environ, **self.cluster.env(), "PGOPTIONS": ""}

    def fresh_database(self, name: str) -> None:
        self.cluster.execute(
            "postgres",
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)).as_string(self._conn()),
            sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)).as_string(self._conn()),
        )

    def drop_database(self, name: str) -> None:
        self.cluster.execute(
            "postgres",
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)).as_string(self._conn()),
        )

    def _conn(self):
        if not hasattr(self, "_quote_conn"):
            self._quote_conn = self.cluster.connect("postgres")
        return self._quote_conn

    def settle(self) -> float:
        """A checkpoint so no approach pays for the previous one's dirty buffers; returns the 1-minute load."""
        self.cluster.execute("postgres", "CHECKPOINT")
        return round(os.getloadavg()[0], 2)

    def run(self, approach: str) -> Measurement:
        load = self.settle()
        method = getattr(self, approach)
        try:
            measurement = method()
        except Exception as exc:
            measurement = Measurement(approach, 0.0, False, [f"{type(exc).__name__}: {str(exc).strip()[:2000]}"])
            if approach not in ("a_default", "f_server"):
                for suffix in (
                    "a_count",
                    "a_jobs1",
                    "a_parallel",
                    "a_parallel_count",
                    "b",
                    "c",
                    "d",
                    *(f"e_{s}" for s in SERVICES),
                ):
                    self.drop_database(self.name(suffix))
        measurement.load_before = load
        return measurement

    # ---------------------------------------------------------- (a) the module through Ansible
    def _playbook(
        self, target: str, prefix: str = "", at_once: bool = False, **module_args
    ) -> tuple[float, float | None, dict, str]:
        """One ``postgres_db_to_schema`` task per database (a loop) into ``target``: one after the other, or
        with ``at_once`` all started as asynchronous jobs and then waited for, the first last, as the
        ``db_to_schema`` role does by default.

        Returns (wall seconds of ``ansible-playbook``, peak RSS MB of the module processes, the task's result,
        output). The result is saved by Ansible's ``tree`` callback, so no extra task runs in the timed play.
        """
        tree = self.work / f"tree-{target}-{time.monotonic_ns()}"
        args = {
            "source_database": prefix + "{{ item }}",
            "target_database": target,
            "target_schema": "{{ item }}",
            **module_args,
        }
        play = [
            {
                "hosts": "localhost",
                "gather_facts": False,
                "module_defaults": {"group/lamassuiot.postgres.all": self.cluster.module_defaults()},
                "tasks": [
                    {
                        "name": "Copy each legacy database into its schema",
                        "lamassuiot.postgres.postgres_db_to_schema": args,
                        "loop": list(SERVICES),
                        **({"async": 86400, "poll": 0, "register": "started"} if at_once else {}),
                    },
                    *([AT_ONCE_WAIT] if at_once else []),
                ],
            }
        ]
        playbook = self.work / f"play-{target}.yml"
        playbook.write_text(json.dumps(play))
        cmd = [
            os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
            str(playbook),
            "-i",
            "localhost,",
            "-c",
            "local",
        ]
        began = time.monotonic()
        settings = {
            "ANSIBLE_CALLBACKS_ENABLED": "ansible.builtin.tree",
            "ANSIBLE_CALLBACK_TREE_DIR": str(tree),
            "ANSIBLE_PIPELINING": "1" if self.pipelining else "0",
        }
        rss_file = self.work / f"rss-{target}-{time.monotonic_ns()}.txt"
        timed = os.path.exists(TIME) and not self.pipelining and not at_once
        if timed:
            # The module runs under GNU time, which writes its peak RSS when it exits: nothing polls meanwhile.
            settings["ANSIBLE_PYTHON_INTERPRETER"] = str(self._timed_interpreter())
            settings[RSS_FILE_ENV] = str(rss_file)
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ansible_env(settings), cwd=ROOT
        )
        sampler = None if timed else RssSampler(proc.pid)
        output = proc.communicate()[0]
        seconds = time.monotonic() - began
        peak = sampler.stop() if sampler else _peak_from_time(rss_file)
        saved = tree / "localhost"
        results = json.loads(saved.read_text()) if saved.exists() else {}
        log_file = self.out / f"ansible-{target}.log"
        log_file.write_text(output)
        if proc.returncode != 0:
            failed = [line for line in output.splitlines() if line.startswith(("fatal:", "failed:"))]
            raise RuntimeError(f"ansible-playbook failed (rc={proc.returncode}), see {log_file}: {failed[:3]}")
        return seconds, peak, results, output

    def _timed_interpreter(self) -> Path:  # (the module of an async job is not a child of ``time``)
        wrapper = self.work / "python-timed"
        if not wrapper.exists():
            wrapper.write_text(
                f'#!/bin/sh\nexec {TIME} -a -o "${RSS_FILE_ENV}" -f "%M %C" {shlex.quote(sys.executable)} "$@"\n'
            )
            wrapper.chmod(0o755)
        return wrapper

    def _module(self, approach: str, target: str, check: bool = True, keep: bool = False, **args) -> Measurement:
        if not keep:
            self.fresh_database(target)
        seconds, peak, results, _output = self._playbook(target, self.source.prefix, **args)
        # The results of a wait for async jobs have the job's start as their item: take the service from it.
        copies = [
            {**c, "item": c["item"].get("item")} if isinstance(c.get("item"), dict) else c
            for c in results.get("results", [])
        ]
        detail = {
            "module_seconds": {c["item"]: c.get("duration_s") for c in copies},
            "changed": {c["item"]: c.get("changed") for c in copies},
            "tables": {
                c["item"]: {t["name"]: t["seconds"] for t in c.get("tables", []) if t.get("seconds")} for c in copies
            },
        }
        problems = check_copy(self.cluster, self.source, lambda service: (target, service)) if check else []
        if approach != "a_default":  # a_rerun runs again on a_default's copy, then drops it
            self.drop_database(target)
        m = Measurement(approach, seconds, not problems, problems, peak_rss_mb=peak, detail=detail)
        return m

    def a_default(self) -> Measurement:
        return self._module("a_default", self.name("a_default"))

    def a_rerun(self) -> Measurement:
        """Again on the copy a_default made (its database is kept for this)."""
        target = self.name("a_default")
        m = self._module("a_rerun", target, keep=True)
        if any(m.detail["changed"].values()):
            m.ok = False
            m.problems.append(f"re-run changed something: {m.detail['changed']}")
        return m

    def a_count(self) -> Measurement:
        return self._module("a_count", self.name("a_count"), verify="count")

    def a_jobs1(self) -> Measurement:
        return self._module("a_jobs1", self.name("a_jobs1"), jobs=1)

    def a_parallel(self) -> Measurement:
        return self._module("a_parallel", self.name("a_parallel"), at_once=True)

    def a_parallel_count(self) -> Measurement:
        return self._module("a_parallel_count", self.name("a_parallel_count"), at_once=True, verify="count")

    # ---------------------------------------------------------- (b), (c) pg_dump
    def _rename_back(self, target: str, service: str) -> list[str]:
        return [
            "-c",
            f"ALTER SCHEMA public RENAME TO {_quote(service)}",
            "-c",
            f"ALTER SCHEMA {SAVED_PUBLIC} RENAME TO public",
        ]

    def b_dump_psql(self) -> Measurement:
        pg_dump, psql = self.tool("pg_dump"), self.tool("psql")
        if not pg_dump or not psql:
            return Measurement("b_dump_psql", 0.0, False, ["pg_dump or psql missing"], skipped=True)
        target = self.name("b")
        self.fresh_database(target)
        env = self.client_env()
        began = time.monotonic()
        for service, database in self.source.databases.items():
            dump = subprocess.Popen(
                [pg_dump, *self.client_args(), "-n", "public", database], stdout=subprocess.PIPE, env=env
            )
            restore = subprocess.run(
                [
                    psql,
                    *self.client_args(),
                    "-d",
                    target,
                    "-X",
                    "-q",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "--single-transaction",
                    "-c",
                    f"ALTER SCHEMA public RENAME TO {SAVED_PUBLIC}",
                    "-f",
                    "-",
                    *self._rename_back(target, service),
                ],
                stdin=dump.stdout,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env=env,
                check=False,
            )
            dump.stdout.close()
            if dump.wait() != 0 or restore.returncode != 0:
                raise RuntimeError(f"{database}: pg_dump rc={dump.returncode}, psql: {restore.stderr.decode()[-2000:]}")
        seconds = time.monotonic() - began
        return self._checked("b_dump_psql", seconds, target)

    def c_dump_restore(self) -> Measurement:
        pg_dump, pg_restore, psql = self.tool("pg_dump"), self.tool("pg_restore"), self.tool("psql")
        if not (pg_dump and pg_restore and psql):
            return Measurement("c_dump_restore", 0.0, False, ["pg_dump, pg_restore or psql missing"], skipped=True)
        target = self.name("c")
        self.fresh_database(target)
        env = self.client_env()
        psql_args = [psql, *self.client_args(), "-d", target, "-X", "-q", "-v", "ON_ERROR_STOP=1"]
        began = time.monotonic()
        for service, database in self.source.databases.items():
            dump_file = self.work / f"{database}.dump"
            subprocess.run(
                [pg_dump, *self.client_args(), "-Fc", "-n", "public", "-f", str(dump_file), database],
                env=env,
                check=True,
            )
            subprocess.run([*psql_args, "-c", f"ALTER SCHEMA public RENAME TO {SAVED_PUBLIC}"], env=env, check=True)
            subprocess.run(
                [pg_restore, *self.client_args(), "-d", target, "-j", "2", "--exit-on-error", str(dump_file)],
                env=env,
                check=True,
            )
            subprocess.run(
                [*psql_args, "--single-transaction", *self._rename_back(target, service)], env=env, check=True
            )
            dump_file.unlink()
        seconds = time.monotonic() - began
        return self._checked("c_dump_restore", seconds, target)

    def _checked(self, approach: str, seconds: float, target: str) -> Measurement:
        problems = check_copy(self.cluster, self.source, lambda service: (target, service))
        self.drop_database(target)
        return Measurement(approach, seconds, not problems, problems)

    # ---------------------------------------------------------- (d) row by row
    def d_naive(self) -> Measurement:
        target = self.name("d")
        self.fresh_database(target)
        began = time.monotonic()
        deadline = began + self.naive_budget if self.naive_budget > 0 else None
        copied_bytes = 0.0
        stopped = False
        with contextlib.closing(self.cluster.connect(target, autocommit=False)) as out:
            for service, database in self.source.databases.items():
                if stopped:
                    break
                with contextlib.closing(self.cluster.connect(database, autocommit=False)) as src:
                    psycopg2.extras.register_default_json(src, loads=lambda text: text)
                    psycopg2.extras.register_default_jsonb(src, loads=lambda text: text)
                    with out.cursor() as cur:
                        cur.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(service)))
                    out.commit()
                    for table, facts in self.source.tables[service].items():
                        done, stopped = self._naive_table(src, out, service, table, deadline)
                        copied_bytes += facts.bytes * (done / facts.rows if facts.rows else 1.0)
                        if stopped:
                            break
                    src.rollback()
        seconds = time.monotonic() - began
        if stopped:
            estimate = seconds * self.source.table_bytes / max(copied_bytes, 1.0)
            self.drop_database(target)
            return Measurement(
                "d_naive",
                estimate,
                True,
                estimated=True,
                notes=f"time-boxed: {seconds:.0f} s copied {copied_bytes / self.source.table_bytes:.0%} "
                "of the table bytes; extrapolated by bytes",
            )
        return self._checked("d_naive", seconds, target)

    def _naive_table(self, src, out, service: str, table: str, deadline: float | None) -> tuple[int, bool]:
        with src.cursor() as cur:
            cur.execute(
                """SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
                   WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum""",
                (sql.Identifier("public", table).as_string(src),),
            )
            columns = cur.fetchall()
            cur.execute(
                """SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
                   WHERE conrelid = %s::regclass AND contype = 'p'""",
                (sql.Identifier("public", table).as_string(src),),
            )
            key = cur.fetchone()
        qualified = sql.Identifier(service, table)
        with out.cursor() as cur:
            cur.execute(
                sql.SQL("CREATE TABLE {} ({})").format(
                    qualified,
                    sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t)) for n, t in columns),
                )
            )
            cur.execute(
                sql.SQL("PREPARE bench_insert AS INSERT INTO {} VALUES ({})").format(
                    qualified, sql.SQL(", ").join(sql.SQL(f"${i + 1}") for i in range(len(columns)))
                )
            )
            execute = "EXECUTE bench_insert (" + ", ".join(["%s"] * len(columns)) + ")"
            done = 0
            stopped = False
            with src.cursor(name="bench_naive") as rows:
                rows.itersize = 2000
                rows.execute(
                    sql.SQL("SELECT {} FROM {}").format(
                        sql.SQL(", ").join(sql.Identifier(n) for n, _t in columns), sql.Identifier("public", table)
                    )
                )
                for row in rows:
                    cur.execute(execute, row)
                    done += 1
                    if deadline and done % 1000 == 0 and time.monotonic() > deadline:
                        stopped = True
                        break
            cur.execute("DEALLOCATE bench_insert")
            if key and not stopped:
                cur.execute(
                    sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
                        qualified, sql.Identifier(key[0]), sql.SQL(key[1])
                    )
                )
        out.commit()
        return done, stopped

    # ---------------------------------------------------------- (e) pgcopydb
    def e_pgcopydb(self) -> Measurement:
        pgcopydb = shutil.which("pgcopydb")
        if not pgcopydb:
            return Measurement("e_pgcopydb", 0.0, False, ["pgcopydb missing (apt-get install pgcopydb)"], skipped=True)
        if self.cluster.version > 15:
            return Measurement("e_pgcopydb", 0.0, False, ["pgcopydb 0.10 supports PostgreSQL <= 15"], skipped=True)
        env = self.client_env()
        pg_config = self.tool("pg_config")
        if pg_config:  # pgcopydb finds pg_dump and pg_restore of the server's version through it
            env["PG_CONFIG"] = pg_config
        targets = {service: self.name(f"e_{service}") for service in self.source.databases}
        for target in targets.values():
            self.fresh_database(target)
        began = time.monotonic()
        for service, database in self.source.databases.items():
            work = self.work / f"pgcopydb-{database}"
            shutil.rmtree(work, ignore_errors=True)
            proc = subprocess.run(
                [
                    pgcopydb,
                    "clone",
                    "--source",
                    self._uri(database),
                    "--target",
                    self._uri(targets[service]),
                    "--dir",
                    str(work),
                    "--table-jobs",
                    "2",
                    "--index-jobs",
                    "2",
                ],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                raise RuntimeError(f"pgcopydb {database}: rc={proc.returncode}\n{proc.stderr[-3000:]}")
        seconds = time.monotonic() - began
        problems = check_copy(self.cluster, self.source, lambda service: (targets[service], "public"))
        for target in targets.values():
            self.drop_database(target)
        return Measurement("e_pgcopydb", seconds, not problems, problems)

    def _uri(self, database: str) -> str:
        password = f":{self.cluster.password}" if self.cluster.password else ""
        return f"postgres://{self.cluster.user}{password}@{self.cluster.host}:{self.cluster.port}/{database}"

    # ---------------------------------------------------------- (f) server side
    def f_server(self) -> Measurement:
        began = time.monotonic()
        try:
            for database in self.source.databases.values():
                self._server_side(database)
            seconds = time.monotonic() - began
            problems = check_copy(
                self.cluster, self.source, lambda service: (self.source.databases[service], SCRATCH_SCHEMA)
            )
        finally:
            for database in self.source.databases.values():
                self.cluster.execute(database, f"DROP SCHEMA IF EXISTS {SCRATCH_SCHEMA} CASCADE")
        return Measurement("f_server", seconds, not problems, problems)

    def _server_side(self, database: str) -> None:
        scratch = sql.Identifier(SCRATCH_SCHEMA)
        with contextlib.closing(self.cluster.connect(database)) as conn, conn.cursor() as cur:
            cur.execute("SET search_path TO public")
            cur.execute(
                """SELECT c.relname,
                          coalesce((SELECT array_agg(format('ALTER TABLE %s ADD CONSTRAINT %I %s', '{T}', co.conname,
                                            pg_get_constraintdef(co.oid)) ORDER BY co.conname)
                                    FROM pg_constraint co WHERE co.conrelid = c.oid AND co.contype IN ('p', 'u', 'x')), '{}'),
                          coalesce((SELECT array_agg(replace(pg_get_indexdef(i.indexrelid),
                                                              format(' ON %I.%I USING ', 'public', c.relname),
                                                              ' ON {T} USING ') ORDER BY i.indexrelid)
                                    FROM pg_index i WHERE i.indrelid = c.oid
                                      AND NOT EXISTS (SELECT 1 FROM pg_constraint co WHERE co.conindid = i.indexrelid
                                                      AND co.contype IN ('p', 'u', 'x'))), '{}'),
                          coalesce((SELECT array_agg(format('ALTER TABLE %s ADD CONSTRAINT %I %s', '{T}', co.conname,
                                            pg_get_constraintdef(co.oid)) ORDER BY co.conname)
                                    FROM pg_constraint co WHERE co.conrelid = c.oid AND co.contype = 'f'), '{}')
                   FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'
                   ORDER BY pg_table_size(c.oid) DESC"""
            )
            tables = cur.fetchall()
            cur.execute(sql.SQL("CREATE SCHEMA {}").format(scratch))
            cur.execute(sql.SQL("SET search_path TO {}").format(scratch))
            foreign = []
            for name, constraints, indexes, fks in tables:
                here = sql.Identifier(SCRATCH_SCHEMA, name).as_string(conn)
                cur.execute(
                    sql.SQL("CREATE TABLE {} AS SELECT * FROM {}").format(
                        sql.Identifier(SCRATCH_SCHEMA, name), sql.Identifier("public", name)
                    )
                )
                for statement in constraints:
                    cur.execute(statement.replace("{T}", here, 1))
                for statement in indexes:
                    if " ON {T} USING " not in statement:  # never build anything on the source tables
                        raise RuntimeError(f"unexpected index definition: {statement}")
                    cur.execute(statement.replace("{T}", here, 1))
                foreign.extend(statement.replace("{T}", here, 1) for statement in fks)
            for statement in foreign:
                cur.execute(statement)


def client_tool(cluster: Cluster, name: str) -> str | None:
    """A client program of the server's version or newer (an older pg_dump refuses the server), else None."""
    path = cluster.tool(name)
    path = path if os.path.isabs(path) else shutil.which(path)
    if not path:
        return None
    words = _version([path, "--version"], "(PostgreSQL)").split()
    major = words[1].split(".")[0] if len(words) > 1 else ""
    return path if major.isdigit() and int(major) >= cluster.version else None


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


# ------------------------------------------------------------------ orchestration
def machine_info(cluster: Cluster) -> dict:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    settings = {}
    with contextlib.closing(cluster.connect("postgres")) as conn, conn.cursor() as cur:
        for name in SETTINGS_SHOWN:
            cur.execute(f"SHOW {name}")
            settings[name] = cur.fetchone()[0]
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgres_settings": settings,
        "pgcopydb": _version([shutil.which("pgcopydb") or "pgcopydb", "--version"], "pgcopydb version"),
    }


def _version(cmd: list[str], marker: str) -> str:
    with contextlib.suppress(OSError):
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        found = [line for line in (proc.stdout + proc.stderr).splitlines() if marker in line]
        return found[0][found[0].index(marker) :].split(" from ")[0] if found else "unknown version"
    return "missing"


def prepare_source(cluster: Cluster, scale: float, prefix: str, rebuild: bool) -> tuple[Source, float]:
    """Build (or keep) the legacy databases, vacuum them (hint bits, visibility map) and describe them."""
    began = time.monotonic()
    build_legacy(cluster, scale=scale, prefix=prefix, drop_existing=rebuild)
    for service in SERVICES:
        cluster.execute(prefix + service, "VACUUM (ANALYZE)")
    cluster.execute("postgres", "CHECKPOINT")
    return describe_source(cluster, scale, prefix), time.monotonic() - began


def run_bench(
    cluster: Cluster,
    scale: float = 1.0,
    approaches: tuple[str, ...] = APPROACHES,
    repeat: int = 1,
    out: Path = OUTPUT,
    prefix: str = "",
    naive_budget: float = 0.0,
    rss_scale: float = 0.0,
    rebuild: bool = True,
    pipelining: bool = False,
    log: Callable[[str], None] = print,
) -> dict:
    """Seed, run every approach ``repeat`` times (round robin), check each result; return the report data."""
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    source, seed_seconds = prepare_source(cluster, scale, prefix, rebuild)
    log(
        f"legacy databases at scale {scale:g}: {source.database_bytes / 1e6:.0f} MB in the databases, "
        f"{source.table_bytes / 1e6:.0f} MB of tables, {source.rows} rows (seeded in {seed_seconds:.0f} s)"
    )
    bench = Bench(cluster, source, out, prefix, naive_budget, pipelining)
    runs: dict[str, list[Measurement]] = {}
    order = []
    for approach in approaches:
        order.append(approach)
        if approach == "a_default":
            order.append("a_rerun")
    for round_number in range(repeat):
        for approach in order:
            if approach == "d_naive" and round_number > 0:
                continue  # slow and far away: once is enough
            m = bench.run(approach)
            runs.setdefault(approach, []).append(m)
            status = "ok" if m.ok else "FAILED: " + "; ".join(m.problems[:5])
            rss = f", peak RSS {m.peak_rss_mb} MB" if m.peak_rss_mb else ""
            log(f"[{round_number + 1}/{repeat}] {approach}: {m.seconds:.2f} s{rss} (load {m.load_before}) {status}")
            if approach == "a_rerun":
                bench.drop_database(bench.name("a_default"))
    rss_small = None
    if rss_scale and "a_default" in approaches:
        small_prefix = f"{prefix}small_"
        small = prepare_source(cluster, rss_scale, small_prefix, True)[0]
        small_bench = Bench(cluster, small, out, f"{prefix}small_", naive_budget, pipelining)
        m = small_bench.run("a_default")
        small_bench.drop_database(small_bench.name("a_default"))
        shutil.rmtree(small_bench.work, ignore_errors=True)
        for service in SERVICES:
            bench.drop_database(small_prefix + service)
        rss_small = {"scale": rss_scale, "seconds": m.seconds, "peak_rss_mb": m.peak_rss_mb, "ok": m.ok}
        log(f"a_default at scale {rss_scale:g}: {m.seconds:.2f} s, peak RSS {m.peak_rss_mb} MB")
    shutil.rmtree(bench.work, ignore_errors=True)
    return {
        "scale": scale,
        "repeat": repeat,
        "source": {
            "database_bytes": source.database_bytes,
            "table_bytes": source.table_bytes,
            "rows": source.rows,
            "tables": {s: {n: asdict(t) for n, t in ts.items()} for s, ts in source.tables.items()},
        },
        "machine": machine_info(cluster),
        "runs": {a: [asdict(m) for m in ms] for a, ms in runs.items()},
        "rss_small": rss_small,
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


# ------------------------------------------------------------------ report
def _median(values: list[dict]) -> dict:
    """The run with the median time (lower median), so its other figures belong to the same run."""
    ordered = sorted(values, key=lambda m: m["seconds"])
    return ordered[(len(ordered) - 1) // 2]


def summarize(report: dict) -> dict:
    return {a: _median(ms) for a, ms in report["runs"].items()}


TARGETS = (
    ("a_default / b_dump_psql", "a_default", "b_dump_psql", 1.0),
    ("a_parallel / b_dump_psql", "a_parallel", "b_dump_psql", 1.0),
    ("a_count / b_dump_psql", "a_count", "b_dump_psql", 0.75),
    ("a_parallel_count / b_dump_psql", "a_parallel_count", "b_dump_psql", 0.75),
    ("a_count / e_pgcopydb", "a_count", "e_pgcopydb", 0.65),
    ("a_parallel_count / e_pgcopydb", "a_parallel_count", "e_pgcopydb", 0.65),
    ("a_count / f_server", "a_count", "f_server", 1.2),
    ("a_parallel_count / f_server", "a_parallel_count", "f_server", 1.2),
    ("a_default / d_naive", "a_default", "d_naive", 1 / 6),
    ("a_rerun / a_default", "a_rerun", "a_default", 0.02),
)


def targets(report: dict) -> list[tuple[str, float | None, float, bool | None]]:
    best = summarize(report)
    rows = []
    for label, mine, theirs, limit in TARGETS:
        if mine in best and theirs in best and best[theirs]["seconds"] > 0 and best[theirs]["ok"]:
            ratio = best[mine]["seconds"] / best[theirs]["seconds"]
            rows.append((label, ratio, limit, ratio <= limit and best[mine]["ok"]))
        else:
            rows.append((label, None, limit, None))
    default = best.get("a_default", {})
    rerun = best.get("a_rerun", {})
    if default.get("seconds") and rerun.get("detail", {}).get("module_seconds"):
        inside = sum(v or 0 for v in rerun["detail"]["module_seconds"].values())
        ratio = inside / default["seconds"]
        rows.append(("a_rerun, time inside the module / a_default", ratio, 0.02, ratio <= 0.02 and rerun["ok"]))
    peak = default.get("peak_rss_mb")
    rows.append(("module peak RSS MB (scale 1.0 limit)", peak, 150.0, peak is not None and peak <= 150))
    small = report.get("rss_small") or {}
    if peak and small.get("peak_rss_mb"):
        growth = peak / small["peak_rss_mb"]
        rows.append((f"peak RSS / peak RSS at scale {small['scale']:g}", growth, 1.2, growth <= 1.2))
    return rows


def markdown(report: dict) -> str:
    best = summarize(report)
    module = best.get("a_default")
    mb = report["source"]["database_bytes"] / 1e6
    lines = [
        f"Scale {report['scale']:g}: {mb:.0f} MB in the six databases "
        f"({report['source']['table_bytes'] / 1e6:.0f} MB of tables), {report['source']['rows']} rows; "
        f"median of {report['repeat']} run(s) per approach (d once); finished {report['finished']}.",
        "",
        "| approach | what | wall s | MB/s | x module default | runs (s) | load | check |",
        "|---|---|---:|---:|---:|---|---:|---|",
    ]
    for approach, m in best.items():
        seconds = m["seconds"]
        rate = f"{mb / seconds:.1f}" if seconds and approach != "a_rerun" else "-"
        ratio = f"{seconds / module['seconds']:.2f}" if module and module["seconds"] and seconds else "-"
        all_runs = ", ".join(f"{r['seconds']:.1f}" for r in report["runs"][approach])
        check = "skipped: " + "; ".join(m["problems"]) if m.get("skipped") else ("ok" if m["ok"] else "FAILED")
        if m.get("estimated"):
            check += " (estimated: " + m["notes"] + ")"
        elif m.get("detail", {}).get("module_seconds"):
            check += f" (module time {sum(v or 0 for v in m['detail']['module_seconds'].values()):.2f} s)"
        elif m["notes"]:
            check += f" ({m['notes']})"
        lines.append(
            f"| {approach} | {DESCRIPTIONS.get(approach, '').replace('|', '&#124;')} | {seconds:.2f}{'*' if m.get('estimated') else ''} "
            f"| {rate} | {ratio} | {all_runs} | {m['load_before']} | {check} |"
        )
    lines += ["", "| target | measured | limit | met |", "|---|---:|---:|---|"]
    for label, value, limit, met in targets(report):
        shown = "-" if value is None else f"{value:.3f}"
        lines.append(f"| {label} | {shown} | {limit:.3f} | {'yes' if met else ('no' if met is False else '-')} |")
    if module and module.get("peak_rss_mb"):
        lines += ["", f"Module peak RSS (largest module process): {module['peak_rss_mb']} MB"]
        if report.get("rss_small"):
            small = report["rss_small"]
            lines[-1] += f"; at scale {small['scale']:g}: {small['peak_rss_mb']} MB ({small['seconds']:.1f} s)."
    machine = report["machine"]
    lines += [
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gb']} GB RAM, "
        f"Linux {machine['kernel']}, Python {machine['python']}, {machine['pgcopydb']}.",
        "",
        "PostgreSQL settings: " + ", ".join(f"`{k}={v}`" for k, v in machine["postgres_settings"].items()) + ".",
    ]
    return "\n".join(lines)


def write_readme(text: str, readme: Path = README) -> None:
    current = readme.read_text() if readme.exists() else f"{TABLE_BEGIN}\n{TABLE_END}\n"
    if TABLE_BEGIN not in current:
        current += f"\n{TABLE_BEGIN}\n{TABLE_END}\n"
    head, rest = current.split(TABLE_BEGIN, 1)
    _old, tail = rest.split(TABLE_END, 1)
    readme.write_text(f"{head}{TABLE_BEGIN}\n{text}\n{TABLE_END}{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--scale", type=float, default=1.0, help="legacy fixture scale, 1.0 is about 1 GB")
    parser.add_argument("--repeat", type=int, default=1, help="runs per approach, the median is reported")
    parser.add_argument("--approaches", default=",".join(APPROACHES), help="comma-separated subset")
    parser.add_argument("--dir", help="cluster directory to keep (or reuse, with its legacy databases)")
    parser.add_argument("--keep", action="store_true", help="keep the cluster of --dir running afterwards")
    parser.add_argument("--naive-budget", type=float, default=240.0, help="seconds before d_naive extrapolates")
    parser.add_argument("--rss-scale", type=float, default=0.1, help="second scale for the module's RSS (0: none)")
    parser.add_argument("--pipelining", action="store_true", help="run Ansible with pipelining (measured: no gain)")
    parser.add_argument("--no-install", action="store_true", help="do not apt-get install a missing pgcopydb")
    parser.add_argument("--readme", action="store_true", help="write the table into bench/README.md")
    parser.add_argument("--out", default=str(OUTPUT), help="output directory (default: %(default)s)")
    parser.add_argument("--render", metavar="JSON", help="only print (and with --readme write) a saved report")
    args = parser.parse_args(argv)
    if args.render:
        report = json.loads(Path(args.render).read_text())
        text = markdown(report)
        print(text)
        if args.readme:
            write_readme(f"Command: `{report['command']}`\n\n{text}")
        return 0
    approaches = tuple(a for a in args.approaches.split(",") if a)
    unknown = sorted(set(approaches) - set(APPROACHES))
    if unknown:
        parser.error(f"unknown approaches {unknown}; known: {', '.join(APPROACHES)}")
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if "e_pgcopydb" in approaches and not args.no_install:
        install_pgcopydb()
    with _cluster(args.dir, args.keep, args.scale) as (cluster, reused):
        report = run_bench(
            cluster,
            scale=args.scale,
            approaches=approaches,
            repeat=args.repeat,
            out=out,
            naive_budget=args.naive_budget,
            rss_scale=args.rss_scale,
            rebuild=not reused,
            pipelining=args.pipelining,
        )
    report["command"] = "python -m bench.run " + " ".join(argv if argv is not None else sys.argv[1:])
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (out / f"bench-{stamp}.json").write_text(json.dumps(report, indent=2))
    text = markdown(report)
    (out / f"bench-{stamp}.md").write_text(text + "\n")
    print(text)
    if args.readme:
        write_readme(f"Command: `{report['command']}`\n\n{text}")
    failed = [a for a, ms in report["runs"].items() if not all(m["ok"] or m["skipped"] for m in ms)]
    return 1 if failed else 0


def install_pgcopydb() -> None:
    """pgcopydb from Debian when it is missing and apt-get can run (root); otherwise e_pgcopydb is skipped."""
    if shutil.which("pgcopydb") or os.geteuid() != 0 or not shutil.which("apt-get"):
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "pgcopydb"]
    if subprocess.run(install, env=env, capture_output=True, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, check=False)
        subprocess.run(install, env=env, capture_output=True, check=False)


@contextlib.contextmanager
def _cluster(directory: str | None, keep: bool, scale: float):
    """(cluster, reused): a throwaway cluster, or the one of ``directory`` (started or reused)."""
    if not directory:
        with throwaway_cluster() as cluster:
            yield cluster, False
        return
    state = Path(directory, "cluster.json")
    seeded = Path(directory, ".seeded")
    reused = state.exists() and seeded.exists() and seeded.read_text() == repr(scale)
    if state.exists():
        cluster = load_cluster(directory)
        if not os.path.exists(os.path.join(cluster.data_dir, "postmaster.pid")):
            cluster.start()
    else:
        cluster = start_cluster(directory)
    try:
        yield cluster, reused
        seeded.write_text(repr(scale))
    finally:
        if not keep:
            cluster.destroy()


if __name__ == "__main__":
    sys.exit(main())
