"""Appendix pages written from data (so the book build needs no execution): chapter status and the paper's
numbers, as Markdown tables."""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Sequence

from ferd.book import claims, health, tables
from ferd.book.paths import ROOT

STATUS_COLUMNS = ("chapter", "seconds", "profile", "date")


def _md_cell(value: object) -> str:
    return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def update_status(path: Path, timings: dict[str, float], profile: str) -> list[dict[str, str]]:
    """Merge this run's chapter times into `status.csv` (one row per chapter, newest run wins)."""
    import csv

    rows: dict[str, dict[str, str]] = {}
    if path.exists():
        with path.open(newline="") as fh:
            rows = {r["chapter"]: r for r in csv.DictReader(fh)}
    date = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    for chapter, seconds in timings.items():
        rows[chapter] = {"chapter": chapter, "seconds": f"{seconds:.1f}", "profile": profile, "date": date}
    ordered = [rows[k] for k in sorted(rows)]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=STATUS_COLUMNS)
        writer.writeheader()
        writer.writerows(ordered)
    return ordered


def _last_seconds(path: Path, profile: str) -> dict[str, float]:
    """Each chapter's last recorded execution time at `profile` (empty when there is no status file)."""
    import csv

    if not path.exists():
        return {}
    with path.open(newline="") as fh:
        return {r["chapter"]: float(r["seconds"]) for r in csv.DictReader(fh) if r.get("profile") == profile}


def status_markdown(rows: Sequence[dict[str, str]]) -> str:
    """The `book/status.md` page: per-chapter execution time, profile and date."""
    text = ["# Execution status\n",
            "Each chapter is executed by the book runner (`ferd book`, see *Reproducing the book*) before the build; the "
            "build itself runs no code. This table is written by the runner from `book/status.csv`: the wall-clock "
            "time of each chapter's last execution, with the profile it ran at. Times include training runs that "
            "were not yet in the artifact store; a re-execution that finds them cached is much faster. What the whole "
            "`cpu` book costs from an empty artifact store (the run queue that trains every run, then these chapters) "
            "is recorded in `benchmarks/results/book_cpu.md` (`benchmarks/queue/book_cost.py`).\n"]
    if not rows:
        text.append("No chapter has been executed yet.\n")
    else:
        total = sum(float(r["seconds"]) for r in rows)
        text.append(markdown_table(["chapter", "seconds", "profile", "executed"],
                                   [(r["chapter"], r["seconds"], r["profile"], r["date"]) for r in rows]))
        text.append(f"\nTotal: {total:.1f} s over {len(rows)} chapter{'s' if len(rows) != 1 else ''}.\n")
    return "\n".join(text)


def _paper_cell(record: dict) -> str:
    if record["metric"] == "note":
        return "(qualitative)"
    value = record["value"]
    return tables.fmt_paper(None if value != value else value, tables.record_kind(record["metric"]))


def paper_numbers_markdown() -> str:
    """The `book/paper_numbers.md` page: every record of the paper-numbers file, grouped by table."""
    df = tables.load_paper_numbers()
    text = ["# The paper's numbers\n",
            "Every number the book prints as \"paper\" comes from one record of `ferd/book/paperdata/paper_numbers.yaml`, "
            "shown here grouped by table. **n/r** means *not recovered*: the cell exists in the paper but its value "
            "is unknown to us; it is never filled from another table. Accuracies and gains are in percent, NSD with "
            "three decimals. `confidence` says how the number reached us: *paper* (an abstract), *write-up* (a public "
            "secondary write-up of the camera-ready, taken as exact), *reviews* (OpenReview), *released code*, "
            "*our reading* (an inference) or *unverified*.\n",
            "There are no paper numbers for Fashion-MNIST, the dataset of the `cpu` profile.\n"]
    for table, group in df.groupby("table", sort=False):
        text.append(f"## {table}\n")
        shared = [c for c in ("source", "confidence") if group[c].nunique() == 1]
        if shared:
            text.append("; ".join(f"**{c}**: {group[c].iloc[0]}" for c in shared) + "\n")
        columns = ["key", "student", "method", "attack", "metric", "value"] + [c for c in ("confidence", "source")
                                                                               if c not in shared]
        rows = [[f"`{r['key']}`" if c == "key" else
                 _paper_cell(r) if c == "value" else r[c] for c in columns] for r in group.to_dict("records")]
        text.append(markdown_table(["model" if c == "student" else c for c in columns], rows))
        notes = [(r["key"], r["note"]) for r in group.to_dict("records") if isinstance(r["note"], str)]
        if notes:
            text.append("Notes:\n\n" + "\n".join(f"- `{k}`: {n}" for k, n in notes) + "\n")
    return "\n".join(text)


def write_appendix(out: Path = ROOT, timings: dict[str, float] | None = None, profile: str = "cpu") -> None:
    """Merge `timings` into `book/status.csv`, then write `book/status.md`, `book/paper_numbers.md` and the
    findings table (`results/claims.csv` from every chapter's claims, rendered as `book/claims.md`)."""
    rows = update_status(Path(out) / "book" / "status.csv", timings or {}, profile)
    (Path(out) / "book" / "status.md").write_text(status_markdown(rows))
    (Path(out) / "book" / "paper_numbers.md").write_text(paper_numbers_markdown())
    found = claims.merged_claims(profile)
    if not found.empty:
        tables.save_results(found, claims.CLAIM_FILE, profile)
    runs = health.merged_health(profile)
    if not runs.empty:
        tables.save_results(runs, health.HEALTH_FILE, profile)
    (Path(out) / "book" / "claims.md").write_text(claims.claims_markdown(found) + health.health_summary_markdown(runs))

