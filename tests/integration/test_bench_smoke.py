"""bench/ at scale 0.01: every approach runs on the same legacy databases and its result is checked.

The harness checks each result itself (every table of every service with its row count and primary key);
this test makes sure that it does, and that the report can be rendered. Approaches whose tools are missing
(pgcopydb, or pg_dump of the server's version) are skipped, not failed.
"""

from __future__ import annotations

import uuid

from bench.approaches import APPROACHES, client_tool
from bench.report import markdown
from bench.run import run_bench
from bench.source import check_copy, describe_source


def test_every_approach_copies_every_table_with_its_rows_and_primary_key(pg, tmp_path):
    prefix = f"s{uuid.uuid4().hex[:6]}_"
    report = run_bench(
        pg, scale=0.01, approaches=APPROACHES, out=tmp_path, prefix=prefix, naive_budget=0, log=lambda _: None
    )
    runs = {approach: measurements[0] for approach, measurements in report["runs"].items()}
    assert set(runs) == {*APPROACHES, "a_rerun"}
    failed = {a: m["problems"] for a, m in runs.items() if not (m["ok"] or m["skipped"])}
    assert not failed, failed
    dump_tools = all(client_tool(pg, name) for name in ("pg_dump", "pg_restore", "psql"))
    for approach in ("a_default", "a_count", "a_jobs1", "d_naive", "f_server", "b_dump_psql", "c_dump_restore"):
        assert runs[approach]["skipped"] is (approach[0] in "bc" and not dump_tools), approach
        assert runs[approach]["seconds"] > 0 or runs[approach]["skipped"], approach
    assert runs["a_default"]["peak_rss_mb"], "the module's memory was not sampled"
    assert set(runs["a_rerun"]["detail"]["changed"].values()) == {False}
    assert set(runs["a_default"]["detail"]["changed"].values()) == {True}
    text = markdown(report)
    assert "| a_default |" in text and "| target |" in text


def test_the_check_notices_a_missing_row_and_a_missing_primary_key(pg):
    prefix = f"s{uuid.uuid4().hex[:6]}_"
    from tests.harness.fixture import build_legacy

    build_legacy(pg, scale=0.001, prefix=prefix)
    source = describe_source(pg, 0.001, prefix)
    assert check_copy(pg, source, lambda service: (source.databases[service], "public")) == []
    database = source.databases["kms"]
    pg.execute(database, "DELETE FROM public.kms_keys WHERE ctid = (SELECT min(ctid) FROM public.kms_keys)")
    pg.execute(database, "ALTER TABLE public.goose_db_version DROP CONSTRAINT goose_db_version_pkey")
    problems = check_copy(pg, source, lambda service: (source.databases[service], "public"))
    assert any("kms_keys" in p and "rows" in p for p in problems), problems
    assert any("goose_db_version" in p and "primary key" in p for p in problems), problems
