"""The approaches the bench compares, each a method of ``Bench`` that copies the six databases and checks the copy."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.harness.collection import ROOT, ensure_collection_path

ensure_collection_path()

import psycopg2.extras  # noqa: E402
from psycopg2 import sql  # noqa: E402

from ansible_collections.lamassuiot.postgres.plugins.module_utils.lamassu import (  # noqa: E402
    MAINTENANCE_DATABASE,
    SERVICES,
)
from bench.measure import (  # noqa: E402
    RSS_FILE_ENV,
    TIME,
    Measurement,
    RssSampler,
    peak_from_time,
    timed_interpreter,
    tool_version,
)
from bench.source import Source, check_copy  # noqa: E402
from tests.harness.ansible import ansible_env  # noqa: E402
from tests.harness.pgcluster import Cluster  # noqa: E402

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
            MAINTENANCE_DATABASE,
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)).as_string(self._conn()),
            sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)).as_string(self._conn()),
        )

    def drop_database(self, name: str) -> None:
        self.cluster.execute(
            MAINTENANCE_DATABASE,
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)).as_string(self._conn()),
        )

    def _conn(self):
        if not hasattr(self, "_quote_conn"):
            self._quote_conn = self.cluster.connect(MAINTENANCE_DATABASE)
        return self._quote_conn

    def settle(self) -> float:
        """A checkpoint so no approach pays for the previous one's dirty buffers; returns the 1-minute load."""
        self.cluster.execute(MAINTENANCE_DATABASE, "CHECKPOINT")
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
            settings["ANSIBLE_PYTHON_INTERPRETER"] = str(timed_interpreter(self.work))
            settings[RSS_FILE_ENV] = str(rss_file)
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ansible_env(settings), cwd=ROOT
        )
        sampler = None if timed else RssSampler(proc.pid)
        output = proc.communicate()[0]
        seconds = time.monotonic() - began
        peak = sampler.stop() if sampler else peak_from_time(rss_file)
        saved = tree / "localhost"
        results = json.loads(saved.read_text()) if saved.exists() else {}
        log_file = self.out / f"ansible-{target}.log"
        log_file.write_text(output)
        if proc.returncode != 0:
            failed = [line for line in output.splitlines() if line.startswith(("fatal:", "failed:"))]
            raise RuntimeError(f"ansible-playbook failed (rc={proc.returncode}), see {log_file}: {failed[:3]}")
        return seconds, peak, results, output

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
    words = tool_version([path, "--version"], "(PostgreSQL)").split()
    major = words[1].split(".")[0] if len(words) > 1 else ""
    return path if major.isdigit() and int(major) >= cluster.version else None


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
