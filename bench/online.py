"""Benchmark of the online move: the services' stop window of ``online: live`` + ``switch`` against the offline copy.

    python -m bench.online --scales 1,3 --readme      # throwaway cluster; table on stdout, bench/output/, README
    python -m bench.online --scales 0.05             # a quick run
    python -m bench.online --dir bench/output/pg-online --keep   # keep (or reuse) the cluster and its seeded data

Per scale, on the same legacy databases (``build_legacy(cluster, scale)``, seeded once per scale under the prefix
``s<scale>_``), one after the other:

* offline: no writer (the services are stopped), one ``postgres_db_to_schema`` task with the six ``services``
  and ``freeze_source: true`` into ``bench_off_<scale>``; the stop window is the wall time of ``ansible-playbook``;
* online: a writer inserts, updates and deletes ``certificates``, ``devices`` and ``dms`` at a steady rate and
  records what the server acknowledged; meanwhile ``online: live`` into ``bench_on_<scale>``, a pause, and
  ``online: live`` again (the apply of what came since); then the writer stops (the services are stopped) and
  ``online: switch`` runs; the stop window is writer stopped -> ``ansible-playbook`` of the switch done.
  Every 0.5 s a sampler reads the WAL the collection's slots retain and the server's active sessions.

Then: every acknowledged change must be in the schemas, each schema must equal its frozen source (row count and
an order-independent md5 of the rows per table, ``tests/harness/catalog.py`` ``data_checksums``), and no slot
``lamassu_move_*`` or publication may be left. Results: ``bench/output/online-<time>.json`` / ``.md`` and the
Ansible logs; ``--readme`` writes the table into ``bench/README.md`` ("Online move").
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import itertools
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tests.harness.collection import ROOT, ensure_collection_path

ensure_collection_path()

from psycopg2 import sql  # noqa: E402

from ansible_collections.lamassuiot.postgres.plugins.module_utils.lamassu import (  # noqa: E402
    MAINTENANCE_DATABASE,
    MOVE_PREFIX,
    SERVICES,
)
from bench.measure import machine_info  # noqa: E402
from bench.source import Source, check_copy, prepare_source  # noqa: E402
from tests.harness.ansible import ACTION_GROUP, ansible_env  # noqa: E402
from tests.harness.catalog import data_checksums  # noqa: E402
from tests.harness.pgcluster import Cluster, load_cluster, start_cluster, throwaway_cluster  # noqa: E402

OUTPUT = ROOT / "bench" / "output"
README = ROOT / "bench" / "README.md"
README_SECTION = "## Online move"
TABLE_BEGIN = "<!-- bench:online -->"
TABLE_END = "<!-- /bench:online -->"
SEEDED_FILE = ".seeded-online.json"
SLOT_LIKE = MOVE_PREFIX.replace("_", r"\_") + "%"
WAL_RETAINED = (
    "SELECT max(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn))::bigint FROM pg_replication_slots "
    "WHERE slot_name LIKE %s"
)
ACTIVE_SESSIONS = """
SELECT coalesce(nullif(application_name, ''), backend_type), coalesce(wait_event_type || ':' || wait_event, 'CPU'),
       left(regexp_replace(query, '\\s+', ' ', 'g'), 70)
FROM pg_stat_activity
WHERE pid <> pg_backend_pid() AND state = 'active' AND application_name NOT LIKE 'bench-%%'
"""
# Goals of the issue: the stop window at scale 3, its growth from scale 1 to 3, and the apply against the writes.
WINDOW_GOAL_S = 10.0
GROWTH_GOAL = 1.3
APPLY_GOAL = 5.0


@dataclass(frozen=True)
class Written:
    """A table the writer changes: its key, the text column whose last value it records, and a new row."""

    table: str
    key: str
    value: str
    insert: str  # parameters: key, value
    seeded: str  # keys of rows of the seed the writer may update and delete


WRITTEN = {
    "ca": Written(
        "certificates",
        "serial_number",
        "revocation_reason",
        "INSERT INTO certificates (serial_number, revocation_reason, status, certificate, metadata, valid_from, "
        "subject_common_name, type, is_ca) VALUES (%s, %s, 'ACTIVE', %s, '{\"issued\": \"bench-online\"}', now(), "
        "'bench-online', 'MANAGED', false)",
        "SELECT serial_number FROM certificates c TABLESAMPLE SYSTEM (2) WHERE NOT EXISTS "
        "(SELECT 1 FROM ca_certificates a WHERE a.serial_number = c.serial_number) LIMIT 2000",
    ),
    "devicemanager": Written(
        "devices",
        "id",
        "status",
        "INSERT INTO devices (id, status, tags, icon, icon_color, creation_timestamp, metadata, dms_owner, "
        "extra_slots, events) VALUES (%s, %s, '[]', 'Cg/CgSmartphoneChip', '#25ee32-#222222', now(), '{}', "
        "'dms-0001', '{}', %s)",
        "SELECT id FROM devices ORDER BY random() LIMIT 2000",
    ),
    "dmsmanager": Written(
        "dms",
        "id",
        "name",
        "INSERT INTO dms (id, name, metadata, creation_ts, settings) VALUES (%s, %s, '{}', now(), %s)",
        "SELECT id FROM dms ORDER BY random() LIMIT 2000",
    ),
}


def _payload(service: str) -> str:
    """The third insert parameter: a certificate's 1.5 kB of base64, or a small JSON document."""
    if service == "ca":
        return base64.b64encode(os.urandom(1100)).decode()
    return json.dumps({"bench": "online", "at": time.time()})


class Writer:
    """The services: transactions on ``certificates``, ``devices`` and ``dms`` in turn, paced at ``rate`` per
    second, each an insert, an update (of a row it inserted or of a seeded row) and, often, a delete. After each
    commit the server acknowledged, ``expected[(service, key)]`` is the row's last value (None: deleted)."""

    def __init__(self, cluster: Cluster, databases: dict[str, str], rate: float):
        self.rate = rate
        self.conns = {s: cluster.connect(databases[s], autocommit=False) for s in WRITTEN}
        for conn in self.conns.values():
            with conn.cursor() as cur:
                cur.execute("SET application_name = 'bench-writer'")
            conn.commit()
        self.seeded: dict[str, list[str]] = {}
        for service, written in WRITTEN.items():
            with self.conns[service].cursor() as cur:
                cur.execute(written.seeded)
                self.seeded[service] = [row[0] for row in cur.fetchall()]
            self.conns[service].commit()
        self.mine: dict[str, list[str]] = {s: [] for s in WRITTEN}
        self.expected: dict[tuple[str, str], str | None] = {}
        self.committed = 0
        self.changes = 0
        self.failed: list[str] = []
        self.latencies: list[float] = []
        self.started = self.stopped = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-writer", daemon=True)
        self._random = random.Random(7)

    def start(self) -> Writer:
        self.started = time.monotonic()
        self._thread.start()
        return self

    def stop(self) -> float:
        """Stop after the transaction under way; returns the moment the last one was acknowledged."""
        self._stop.set()
        self._thread.join()
        self.stopped = time.monotonic()
        for conn in self.conns.values():
            conn.close()
        return self.stopped

    def _run(self) -> None:
        for number, service in enumerate(itertools.cycle(WRITTEN)):
            if self._stop.is_set():
                return
            delay = self.started + number / self.rate - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return
            began = time.monotonic()
            try:
                done, changes = self._transaction(service, number)
            except Exception as exc:  # not acknowledged: nothing is recorded; say so in the report
                self.conns[service].rollback()
                self.failed.append(f"{service}: {type(exc).__name__}: {str(exc).strip()[:200]}")
                continue
            self.latencies.append(time.monotonic() - began)
            self.expected.update(done)
            self.committed += 1
            self.changes += changes

    def _transaction(self, service: str, number: int) -> tuple[dict[tuple[str, str], str | None], int]:
        written, conn = WRITTEN[service], self.conns[service]
        mine, seeded = self.mine[service], self.seeded[service]
        done: dict[tuple[str, str], str | None] = {}
        key = f"bench-{uuid.uuid4().hex}"
        update = f"b{number}u"
        table, key_column, value_column = (sql.Identifier(n) for n in (written.table, written.key, written.value))
        with conn.cursor() as cur:
            cur.execute(written.insert, (key, f"b{number}i", _payload(service)))
            changes = cur.rowcount
            done[(service, key)] = f"b{number}i"
            pool = mine if mine and (self._random.random() < 0.5 or len(seeded) < 10) else seeded
            updated = self._random.choice(pool) if pool else key
            cur.execute(
                sql.SQL("UPDATE {} SET {} = %s WHERE {} = %s").format(table, value_column, key_column),
                (update, updated),
            )
            changes += cur.rowcount
            done[(service, updated)] = update
            deleted = []
            if number % 2 == 0 and len(mine) > 10:
                deleted.append(mine[0])
            if number % 7 == 0 and len(seeded) > 10:
                deleted.append(seeded[self._random.randrange(len(seeded))])
            for gone in deleted:
                cur.execute(sql.SQL("DELETE FROM {} WHERE {} = %s").format(table, key_column), (gone,))
                changes += cur.rowcount
                done[(service, gone)] = None
        conn.commit()
        mine.append(key)
        for gone in deleted:
            (mine if gone in mine else seeded).remove(gone)
        return done, changes

    def summary(self, until: float | None = None) -> dict:
        seconds = (until or self.stopped or time.monotonic()) - self.started
        ordered = sorted(self.latencies) or [0.0]
        return {
            "seconds": round(seconds, 2),
            "transactions": self.committed,
            "changes": self.changes,
            "rate_tx": round(self.committed / seconds, 1) if seconds else None,
            "rate_changes": round(self.changes / seconds, 1) if seconds else None,
            "latency_ms": {
                "p50": round(1000 * statistics.median(ordered), 1),
                "p99": round(1000 * ordered[int(0.99 * (len(ordered) - 1))], 1),
                "max": round(1000 * ordered[-1], 1),
            },
            "failed": len(self.failed),
            "failures": self.failed[:5],
            "keys": len(self.expected),
        }


class Sampler:
    """Every ``interval`` seconds: the WAL the collection's slots retain and the server's active sessions, tagged
    with the phase the bench is in (``phase``, set by the caller)."""

    def __init__(self, cluster: Cluster, interval: float = 0.5):
        self.conn = cluster.connect(MAINTENANCE_DATABASE)
        with self.conn.cursor() as cur:
            cur.execute("SET application_name = 'bench-sampler'")
        self.interval = interval
        self.phase = "start"
        self.samples: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        began = time.monotonic()
        while not self._stop.is_set():
            with contextlib.suppress(Exception), self.conn.cursor() as cur:
                cur.execute(WAL_RETAINED, (SLOT_LIKE,))
                retained = cur.fetchone()[0]
                cur.execute(ACTIVE_SESSIONS)
                active = [list(row) for row in cur.fetchall()]
                self.samples.append(
                    {"t": round(time.monotonic() - began, 2), "phase": self.phase, "wal": retained, "active": active}
                )
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.conn.close()

    def peak_wal(self, phase: str | None = None) -> int:
        return max((s["wal"] or 0 for s in self.samples if phase in (None, s["phase"])), default=0)

    def profile(self, phase: str) -> list[tuple[str, float]]:
        """Seconds of server activity per session and wait (or query) during ``phase``, most first."""
        seen: Counter = Counter()
        for sample in self.samples:
            if sample["phase"] == phase:
                for application, wait, query in sample["active"]:
                    seen[f"{application} | {wait} | {query}"] += self.interval
        return seen.most_common(12)


@dataclass
class Play:
    began: float
    ended: float
    result: dict
    log: str

    @property
    def seconds(self) -> float:
        return self.ended - self.began

    @property
    def copies(self) -> list[dict]:
        return self.result.get("results", [])

    def module_seconds(self) -> float:
        return sum(c.get("duration_s") or 0 for c in self.copies)

    def applied(self) -> dict:
        """``online.applied`` summed over the services, with the seconds of each."""
        total = {"transactions": 0, "changes": 0, "skipped": 0, "seconds": 0.0, "lag_bytes": 0, "per_service": {}}
        for copy in self.copies:
            applied = (copy.get("online") or {}).get("applied") or {}
            for name in ("transactions", "changes", "skipped", "seconds", "lag_bytes"):
                total[name] += applied.get(name) or 0
            total["per_service"][copy.get("schema")] = {
                "duration_s": copy.get("duration_s"),
                "apply_s": applied.get("seconds"),
                "changes": applied.get("changes"),
                "rows_checked": (copy.get("online") or {}).get("rows_checked"),
            }
        total["seconds"] = round(total["seconds"], 3)
        return total


def run_play(cluster: Cluster, work: Path, out: Path, label: str, args: dict) -> Play:
    """One ``postgres_db_to_schema`` task through ``ansible-playbook`` (connection in ``module_defaults``); the
    result comes from Ansible's ``tree`` callback, so no other task runs in the timed play."""
    tree = work / f"tree-{label}"
    playbook = work / f"play-{label}.yml"
    playbook.write_text(
        json.dumps(
            [
                {
                    "hosts": "localhost",
                    "gather_facts": False,
                    "module_defaults": {ACTION_GROUP: cluster.module_defaults()},
                    "tasks": [{"name": label, "lamassuiot.postgres.postgres_db_to_schema": args}],
                }
            ]
        )
    )
    cmd = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), str(playbook), "-i", "localhost,"]
    env = ansible_env({"ANSIBLE_CALLBACKS_ENABLED": "ansible.builtin.tree", "ANSIBLE_CALLBACK_TREE_DIR": str(tree)})
    began = time.monotonic()
    proc = subprocess.run([*cmd, "-c", "local"], capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    ended = time.monotonic()
    log = out / f"ansible-{label}.log"
    log.write_text(proc.stdout + proc.stderr)
    saved = tree / "localhost"
    result = json.loads(saved.read_text()) if saved.exists() else {}
    if proc.returncode != 0 or result.get("failed"):
        raise RuntimeError(f"{label} failed (rc={proc.returncode}, see {log}): {str(result.get('msg'))[:2000]}")
    return Play(began, ended, result, str(log))


def _identifier(cluster: Cluster, *statements: sql.Composable) -> None:
    with contextlib.closing(cluster.connect(MAINTENANCE_DATABASE)) as conn, conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)


def fresh_database(cluster: Cluster, name: str) -> None:
    _identifier(
        cluster,
        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)),
        sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)),
    )


def drop_database(cluster: Cluster, name: str) -> None:
    _identifier(cluster, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def reset_freeze(cluster: Cluster, source: Source) -> None:
    _identifier(
        cluster,
        *(
            sql.SQL("ALTER DATABASE {} RESET default_transaction_read_only").format(sql.Identifier(database))
            for database in source.databases.values()
        ),
    )


_SLOTS = "SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE %s ORDER BY 1"


def leftovers(cluster: Cluster, source: Source) -> dict[str, list[str]]:
    """The collection's slots on the server and the publications in the sources."""
    slots = [row[0] for row in cluster.query(MAINTENANCE_DATABASE, _SLOTS, (SLOT_LIKE,))]
    publications = [
        f"{database}.{row[0]}"
        for database in source.databases.values()
        for row in cluster.query(database, "SELECT pubname FROM pg_publication")
    ]
    return {"slots": slots, "publications": publications}


def drop_leftovers(cluster: Cluster, source: Source) -> None:
    """What a failed run left: the slots (their WAL sender ended first) and the publications."""
    for name in leftovers(cluster, source)["slots"]:
        with contextlib.suppress(Exception):
            cluster.query(MAINTENANCE_DATABASE, _END_SLOT_SENDER, (name,))
            cluster.query(MAINTENANCE_DATABASE, "SELECT pg_drop_replication_slot(%s)", (name,))
    for database in source.databases.values():
        with contextlib.closing(cluster.connect(database)) as conn, conn.cursor() as cur:
            cur.execute("SELECT pubname FROM pg_publication")
            for (name,) in cur.fetchall():
                cur.execute(sql.SQL("DROP PUBLICATION {}").format(sql.Identifier(name)))


_END_SLOT_SENDER = (
    "SELECT pg_terminate_backend(active_pid), pg_sleep(0.5) FROM pg_replication_slots "
    "WHERE slot_name = %s AND active_pid IS NOT NULL"
)


def acknowledged_lost(cluster: Cluster, source: Source, target: str, expected: dict) -> dict:
    """Each key the writer changed, in the target schema (and, as a check of the writer itself, in the source):
    present with its last value, or absent when deleted last."""
    wrong: dict[str, list[str]] = {"target": [], "source": []}
    for service, written in WRITTEN.items():
        keys = {key: value for (s, key), value in expected.items() if s == service}
        for side, database, schema in (("target", target, service), ("source", source.databases[service], "public")):
            statement = sql.SQL("SELECT {key}, {value} FROM {table} WHERE {key} = ANY(%s)").format(
                key=sql.Identifier(written.key),
                value=sql.Identifier(written.value),
                table=sql.Identifier(schema, written.table),
            )
            with contextlib.closing(cluster.connect(database)) as conn, conn.cursor() as cur:
                cur.execute(statement, (list(keys),))
                found = dict(cur.fetchall())
            for key, value in keys.items():
                if found.get(key) != value or (value is None and key in found):
                    wrong[side].append(f"{service}.{written.table} {key}: {found.get(key, 'absent')} != {value}")
    return {
        "keys": len(expected),
        "lost": len(wrong["target"]),
        "examples": wrong["target"][:5],
        "source_mismatches": len(wrong["source"]),
    }


def compare_with_sources(cluster: Cluster, source: Source, target: str) -> list[str]:
    """Per service: each table's row count and md5 of its rows in the target schema and in the frozen source."""
    problems = []
    for service, database in source.databases.items():
        with (
            contextlib.closing(cluster.connect(database)) as source_conn,
            contextlib.closing(cluster.connect(target)) as target_conn,
        ):
            theirs, ours = data_checksums(source_conn, "public"), data_checksums(target_conn, service)
        for table in sorted(set(theirs) | set(ours)):
            if theirs.get(table) != ours.get(table):
                problems.append(
                    f"{service}.{table}: {ours.get(table)} in the schema, {theirs.get(table)} in the source"
                )
    return problems


def run_offline(cluster: Cluster, source: Source, work: Path, out: Path, tag: str, log) -> dict:
    target = f"bench_off_{tag}"
    fresh_database(cluster, target)
    cluster.execute(MAINTENANCE_DATABASE, "CHECKPOINT")
    load = _load()
    try:
        play = run_play(
            cluster,
            work,
            out,
            f"offline-{tag}",
            {
                "services": list(SERVICES),
                "source_prefix": source.prefix,
                "target_database": target,
                "freeze_source": True,
            },
        )
        problems = check_copy(cluster, source, lambda service: (target, service))
    finally:
        reset_freeze(cluster, source)
        drop_database(cluster, target)
    result = {
        "window_s": round(play.seconds, 2),
        "module_s": round(play.module_seconds(), 2),
        "load": load,
        "per_service_s": {c.get("schema"): c.get("duration_s") for c in play.copies},
        "problems": problems,
    }
    log(f"offline {tag}: window {result['window_s']} s (module {result['module_s']} s), check {problems or 'ok'}")
    return result


def run_online(cluster: Cluster, source: Source, work: Path, out: Path, tag: str, rate: float, gap: float, log) -> dict:
    target = f"bench_on_{tag}"
    fresh_database(cluster, target)
    cluster.execute(MAINTENANCE_DATABASE, "CHECKPOINT")
    args = {"services": list(SERVICES), "source_prefix": source.prefix, "target_database": target}
    writer = Writer(cluster, source.databases, rate)
    sampler = Sampler(cluster)
    result: dict = {}
    try:
        writer.start()
        time.sleep(2)  # the services write before the move starts
        loads = {"live": _load()}
        sampler.phase = "live"
        live = run_play(cluster, work, out, f"live-{tag}", {**args, "online": "live"})
        sampler.phase = "gap"
        at_live = writer.summary(live.ended)
        log(f"online {tag}: live {live.seconds:.1f} s, catch-up {live.applied()}, writer {at_live}")
        time.sleep(gap)
        sampler.phase = "resume"
        resume = run_play(cluster, work, out, f"resume-{tag}", {**args, "online": "live"})
        sampler.phase = "stopping"
        stopped = writer.stop()
        sampler.phase = "switch"
        loads["switch"] = _load()
        switch = run_play(cluster, work, out, f"switch-{tag}", {**args, "online": "switch"})
        sampler.phase = "after"
        window = switch.ended - stopped
        log(f"online {tag}: window {window:.2f} s (switch play {switch.seconds:.2f} s), applied {switch.applied()}")
        left = leftovers(cluster, source)
        lost = acknowledged_lost(cluster, source, target, writer.expected)
        problems = compare_with_sources(cluster, source, target)
        resumed = resume.applied()
        writes = writer.summary()
        result = {
            "window_s": round(window, 2),
            "load": loads,
            "switch_play_s": round(switch.seconds, 2),
            "switch_module_s": round(switch.module_seconds(), 2),
            "switch_applied": switch.applied(),
            "stop_to_switch_start_s": round(switch.began - stopped, 3),
            "live_s": round(live.seconds, 2),
            "live_module_s": round(live.module_seconds(), 2),
            "live_applied": live.applied(),
            "resume_s": round(resume.seconds, 2),
            "resume_applied": resumed,
            "apply_rate_changes": round(resumed["changes"] / resumed["seconds"], 1) if resumed["seconds"] else None,
            "writer": writes,
            "writer_at_live_end": at_live,
            "peak_wal_bytes": sampler.peak_wal(),
            "peak_wal_bytes_by_phase": {p: sampler.peak_wal(p) for p in ("live", "gap", "resume", "switch")},
            "switch_profile": sampler.profile("switch"),
            "lost": lost,
            "left": left,
            "problems": problems,
        }
        log(f"online {tag}: lost {lost}, left {left}, check {problems or 'ok'}")
    finally:
        with contextlib.suppress(Exception):
            if not writer.stopped:
                writer.stop()
        sampler.stop()
        result["samples"] = sampler.samples
        drop_leftovers(cluster, source)
        reset_freeze(cluster, source)
        drop_database(cluster, target)
    return result


def _load() -> float:
    """The 1-minute load average: the 2 cores are shared, the numbers are read with it."""
    return round(os.getloadavg()[0], 2)


def _commit() -> str:
    found = subprocess.run(
        ["git", "describe", "--always", "--dirty"], capture_output=True, text=True, cwd=ROOT, check=False
    )
    return found.stdout.strip() or "unknown"


def _tag(scale: float) -> str:
    return f"{scale:g}".replace(".", "_")


def run_scale(cluster: Cluster, scale: float, rebuild: bool, work: Path, out: Path, rate: float, gap: float, log):
    prefix = f"s{_tag(scale)}_"
    source, seed_seconds = prepare_source(cluster, scale, prefix, rebuild)
    log(
        f"scale {scale:g}: {source.database_bytes / 1e6:.0f} MB, {source.rows} rows "
        f"({'seeded' if rebuild else 'reused, vacuumed'} in {seed_seconds:.0f} s)"
    )
    reset_freeze(cluster, source)
    drop_leftovers(cluster, source)
    report = {
        "scale": scale,
        "prefix": prefix,
        "seeded": rebuild,
        "seed_s": round(seed_seconds, 1),
        "database_bytes": source.database_bytes,
        "rows": source.rows,
        "load_before": round(os.getloadavg()[0], 2),
    }
    report["offline"] = run_offline(cluster, source, work, out, _tag(scale), log)
    report["online"] = run_online(cluster, source, work, out, _tag(scale), rate, gap, log)
    return report


# ------------------------------------------------------------------------------------------------ the report
def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value / 1e6:.1f}"


def _met(ok: bool | None) -> str:
    return "-" if ok is None else ("yes" if ok else "**no**")


def targets(report: dict) -> list[tuple[str, str, str, str, str]]:
    """(target, offline, online, goal, met) rows: the issue's goals, from the largest scale and the smallest."""
    scales = sorted(report["scales"], key=lambda s: s["scale"])
    big, small = scales[-1], scales[0]
    on, off = big["online"], big["offline"]
    rows = [
        (
            f"stop window at scale {big['scale']:g}, s",
            f"{off['window_s']:.2f}",
            f"{on['window_s']:.2f}",
            f"online ≤ {WINDOW_GOAL_S:g}",
            _met(on["window_s"] <= WINDOW_GOAL_S),
        )
    ]
    if big is not small:
        growth_off = off["window_s"] / small["offline"]["window_s"]
        growth_on = on["window_s"] / small["online"]["window_s"]
        rows.append(
            (
                f"stop window scale {big['scale']:g} / scale {small['scale']:g}",
                f"{growth_off:.2f}",
                f"{growth_on:.2f}",
                f"offline ≈ {big['scale'] / small['scale']:g}, online ≤ {GROWTH_GOAL:g}",
                _met(growth_on <= GROWTH_GOAL),
            )
        )
    lost = sum(s["online"]["lost"]["lost"] for s in scales)
    keys = sum(s["online"]["lost"]["keys"] for s in scales)
    rows.append(("acknowledged changes lost", "-", f"{lost} of {keys} keys", "0", _met(lost == 0)))
    for s in scales:
        ratio = _apply_ratio(s["online"])
        rows.append(
            (
                f"apply throughput / write rate, scale {s['scale']:g}",
                "-",
                "-" if ratio is None else f"{ratio:.1f}x",
                f"≥ {APPLY_GOAL:g}x",
                _met(None if ratio is None else ratio >= APPLY_GOAL),
            )
        )
    left = sum(len(s["online"]["left"]["slots"]) for s in scales)
    publications = sum(len(s["online"]["left"]["publications"]) for s in scales)
    rows.append(
        ("slots left (publications left)", "-", f"{left} ({publications})", "0", _met(left + publications == 0))
    )
    for s in scales:
        rows.append((f"peak WAL retained, scale {s['scale']:g}, MB", "-", _mb(s["online"]["peak_wal_bytes"]), "-", "-"))
    ok = all(not s["offline"]["problems"] and not s["online"]["problems"] for s in scales)
    rows.append(("schemas equal the frozen sources (count + md5)", "-", "yes" if ok else "**no**", "yes", _met(ok)))
    return rows


def _apply_ratio(online: dict) -> float | None:
    rate, writes = online.get("apply_rate_changes"), online["writer"].get("rate_changes")
    return rate / writes if rate and writes else None


def markdown(report: dict) -> str:
    lines = [
        "| target | offline | online | goal | met |",
        "|---|---:|---:|---|---|",
        *(f"| {' | '.join(row)} |" for row in targets(report)),
        "",
        "| scale | MB | rows | offline window s (module s) | live s (copy + catch-up: tx, changes, s) "
        "| resume: changes in s = changes/s | writer tx/s, changes/s (commit p99 / max ms) "
        "| online window s (switch play s, module s, switch apply changes in s) | peak WAL MB (live / resume / switch) "
        "| load (offline / live / switch) | checks |",
        "|---:|---:|---:|---|---|---|---|---|---|---|---|",
    ]
    for s in sorted(report["scales"], key=lambda s: s["scale"]):
        off, on = s["offline"], s["online"]
        live, resume, switch, writer = on["live_applied"], on["resume_applied"], on["switch_applied"], on["writer"]
        wal = on["peak_wal_bytes_by_phase"]
        checks = "; ".join(
            [f"offline {'ok' if not off['problems'] else off['problems'][:2]}"]
            + [f"online {'ok' if not on['problems'] else on['problems'][:2]}"]
            + [f"lost {on['lost']['lost']} of {on['lost']['keys']}"]
            + ([f"writer failures {writer['failed']}"] if writer["failed"] else [])
        )
        lines.append(
            f"| {s['scale']:g} | {s['database_bytes'] / 1e6:.0f} | {s['rows']} "
            f"| {off['window_s']:.2f} ({off['module_s']:.2f}) "
            f"| {on['live_s']:.1f} ({live['transactions']}, {live['changes']}, {live['seconds']:.1f}) "
            f"| {resume['changes']} in {resume['seconds']:.2f} = {on['apply_rate_changes']} "
            f"| {writer['rate_tx']}, {writer['rate_changes']} ({writer['latency_ms']['p99']} / "
            f"{writer['latency_ms']['max']}) "
            f"| **{on['window_s']:.2f}** ({on['switch_play_s']:.2f}, {on['switch_module_s']:.2f}, "
            f"{switch['changes']} in {switch['seconds']:.2f}) "
            f"| {_mb(on['peak_wal_bytes'])} ({_mb(wal['live'])} / {_mb(wal['resume'])} / {_mb(wal['switch'])}) "
            f"| {off.get('load', '-')} / {on.get('load', {}).get('live', '-')} / {on.get('load', {}).get('switch', '-')} "
            f"| {checks} |"
        )
    lines.append("")
    for s in sorted(report["scales"], key=lambda s: s["scale"]):
        per = s["online"]["switch_applied"]["per_service"]
        parts = ", ".join(f"{name} {v['duration_s']} s (apply {v['apply_s']} s)" for name, v in per.items())
        seeded = "seeded" if s["seeded"] else "reused (seeded by an earlier run), vacuumed"
        lines.append(
            f"Scale {s['scale']:g}: {seeded} in {s['seed_s']:.0f} s; switch per service: {parts}; "
            f"writer stopped → switch started {s['online']['stop_to_switch_start_s']:.3f} s."
        )
        lines.append("")
    machine = report["machine"]
    settings = machine["postgres_settings"]
    lines.append(
        f"Finished {report['finished']} (code `{report.get('commit', 'unknown')}`); rate asked {report['rate']:g} tx/s, {report['gap']:g} s between the live "
        f"runs. Machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gb']} GB RAM; PostgreSQL "
        f"{settings['server_version']}, `wal_level={settings['wal_level']}`, `fsync={settings['fsync']}`, "
        f"`synchronous_commit={settings['synchronous_commit']}`."
    )
    return "\n".join(lines)


def write_readme(text: str, readme: Path = README) -> None:
    current = readme.read_text()
    if TABLE_BEGIN not in current:
        current = current.rstrip("\n") + f"\n\n{README_SECTION}\n\n{TABLE_BEGIN}\n{TABLE_END}\n"
    head, rest = current.split(TABLE_BEGIN, 1)
    _old, tail = rest.split(TABLE_END, 1)
    readme.write_text(f"{head}{TABLE_BEGIN}\n{text}\n{TABLE_END}{tail}")


# ------------------------------------------------------------------------------------------------ command line
@contextlib.contextmanager
def _cluster(directory: str | None, keep: bool):
    """(cluster, seeded): a throwaway cluster, or the one of ``directory`` with the prefixes seeded before."""
    if not directory:
        with throwaway_cluster() as cluster:
            yield cluster, {}
        return
    state, seeded_file = Path(directory, "cluster.json"), Path(directory, SEEDED_FILE)
    if state.exists():
        cluster = load_cluster(directory)
        if not os.path.exists(os.path.join(cluster.data_dir, "postmaster.pid")):
            cluster.start()
        seeded = json.loads(seeded_file.read_text()) if seeded_file.exists() else {}
    else:
        cluster, seeded = start_cluster(directory), {}
    try:
        yield cluster, seeded
        seeded_file.write_text(json.dumps(seeded))
    finally:
        if not keep:
            cluster.destroy()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.online", description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--scales", default="1,3", help="comma-separated fixture scales (1.0 is about 1.1 GB)")
    parser.add_argument("--rate", type=float, default=200.0, help="writer transactions per second")
    parser.add_argument("--gap", type=float, default=10.0, help="seconds of writes between the two live runs")
    parser.add_argument("--dir", help="cluster directory to keep (or reuse, with its seeded databases)")
    parser.add_argument("--keep", action="store_true", help="keep the cluster of --dir running afterwards")
    parser.add_argument("--readme", action="store_true", help="write the table into bench/README.md")
    parser.add_argument("--out", default=str(OUTPUT), help="output directory (default: %(default)s)")
    parser.add_argument("--render", metavar="JSON", help="only print (and with --readme write) a saved report")
    args = parser.parse_args(argv)
    command = "python -m bench.online " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.render:
        report = json.loads(Path(args.render).read_text())
    else:
        scales = [float(s) for s in args.scales.split(",") if s]
        out = Path(args.out).resolve()
        out.mkdir(parents=True, exist_ok=True)
        work = out / f"online-work-{time.strftime('%Y%m%d-%H%M%S')}"
        work.mkdir()
        report = {"command": command, "commit": _commit(), "rate": args.rate, "gap": args.gap, "scales": []}
        with _cluster(args.dir, args.keep) as (cluster, seeded):
            report["machine"] = machine_info(cluster)
            for scale in scales:
                prefix = f"s{_tag(scale)}_"
                rebuild = seeded.get(prefix) != scale
                seeded.pop(prefix, None)
                report["scales"].append(run_scale(cluster, scale, rebuild, work, out, args.rate, args.gap, print))
                seeded[prefix] = scale
                (work / "partial.json").write_text(json.dumps(report, indent=2))
        report["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
        stamp = time.strftime("%Y%m%d-%H%M%S")
        (out / f"online-{stamp}.json").write_text(json.dumps(report, indent=2))
        (out / f"online-{stamp}.md").write_text(markdown(report) + "\n")
    text = markdown(report)
    print(text)
    if args.readme:
        write_readme(f"Command: `{report['command']}`\n\n{text}")
    failed = any(
        s["offline"]["problems"] or s["online"]["problems"] or s["online"]["lost"]["lost"] for s in report["scales"]
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
