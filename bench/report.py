"""The bench report: the median run of each approach, the targets, the Markdown table and bench/README.md."""

from __future__ import annotations

from pathlib import Path

from bench.approaches import DESCRIPTIONS
from tests.harness.collection import ROOT

README = ROOT / "bench" / "README.md"
TABLE_BEGIN = "<!-- bench:results -->"
TABLE_END = "<!-- /bench:results -->"


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
