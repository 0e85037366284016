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
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from tests.harness.collection import ROOT, ensure_collection_path

ensure_collection_path()

from ansible_collections.lamassuiot.postgres.plugins.module_utils.lamassu import SERVICES  # noqa: E402
from bench.approaches import APPROACHES, Bench  # noqa: E402
from bench.measure import Measurement, machine_info  # noqa: E402
from bench.report import markdown, write_readme  # noqa: E402
from bench.source import prepare_source  # noqa: E402
from tests.harness.pgcluster import Cluster, load_cluster, start_cluster, throwaway_cluster  # noqa: E402

OUTPUT = ROOT / "bench" / "output"


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
