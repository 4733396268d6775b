"""The findings table of the landing page: each claim, the paper's number, ours with its interval, the verdict.

A chapter that tests a claim calls `save_claims(rows, chapter, profile)`, which writes
`results/claims_<chapter>.csv`; after the chapters ran, the book runner merges every such file into
`results/claims.csv` and renders it as `book/claims.md`, which the landing page includes. Chapters run in
parallel, so each writes its own file and only the runner writes the merged one.

A row's verdict comes from `ferd.book.verdicts` (paired seed intervals) or, for a claim that is not a
comparison over seeds (the teacher's weakest class, say), from the chapter's stated rule; `test` says which.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Iterable

import pandas as pd

from ferd.book import tables
from ferd.book.paths import output_dir
from ferd.book.verdicts import VERDICTS, PairedComparison
from ferd.errors import ConfigError

CLAIM_FILE = "claims"


@dataclass(frozen=True)
class Claim:
    """One line of the findings table."""

    claim: str  # the claim in words, e.g. "FERD raises the weakest class under PGD-20 (fmnist-resnet)"
    chapter: str  # the chapter that shows it, e.g. "06_main_table"
    ours: str  # our number in words, e.g. "+1.20 points [-0.40, +2.80], 5 seeds"
    verdict: str  # supported | not supported | inconclusive
    test: str  # how the verdict was reached, e.g. "paired t interval over 5 seeds, 95 %"
    paper: str = "—"  # the paper's number in words, or "—" where the paper states none
    paper_key: str = ""  # the record of ferd/book/paperdata/paper_numbers.yaml the paper's number comes from
    resolution: str = ""  # the smallest step of the metric, e.g. "0.1 points (1,000 images per class)"
    origin: str = "paper"  # "paper" (a claim of the paper) or "book" (a claim this book adds)

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ConfigError("verdict", self.verdict, VERDICTS)
        if self.origin not in ("paper", "book"):
            raise ConfigError("origin", self.origin, ("paper", "book"))
        if self.paper_key and not tables.has_paper_key(self.paper_key):
            raise ConfigError("paper_key", self.paper_key, "a key of ferd/book/paperdata/paper_numbers.yaml")


def comparison_claim(claim: str, chapter: str, c: PairedComparison, *, unit: str = " points", digits: int = 2,
                     paper_key: str = "", resolution: str = "", origin: str = "paper") -> Claim:
    """A claim whose verdict is a paired comparison over seeds (`ferd.book.verdicts.compare_paired`)."""
    paper = paper_text(paper_key, unit) if paper_key else "—"
    return Claim(claim=claim, chapter=chapter, ours=f"{c.interval_text(digits, unit)}, {c.n} seed{'s' * (c.n != 1)}",
                 verdict=c.verdict, test=f"paired t interval over {c.n} seeds, {100 * c.confidence:.0f} %",
                 paper=paper, paper_key=paper_key, resolution=resolution, origin=origin)


def paper_text(key: str, unit: str = " points") -> str:
    """The paper's number of record `key` with what it compares, e.g. '+5.7 points (CIFAR-10, MN-V2, FERD minus best
    baseline)'; 'n/r' where the value was not recovered."""
    record = next(r for r in tables.load_paper_numbers().to_dict("records") if r["key"] == key)
    value = record["value"]
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/r"
    dataset = "CIFAR-10" if ".c10." in key else "CIFAR-100" if ".c100." in key else ""
    where = ", ".join(x for x in (dataset, str(record.get("student") or ""), str(record.get("method") or "")) if x)
    return f"{value:+g}{unit} ({where})"


def save_claims(rows: Iterable[Claim], chapter: str, profile: str) -> Path:
    """Write this chapter's claims as `results/claims_<chapter>.csv` (replacing its earlier ones)."""
    df = pd.DataFrame([asdict(r) for r in rows], columns=[f.name for f in fields(Claim)])
    return tables.save_results(df, f"{CLAIM_FILE}_{chapter}", profile)


def merged_claims(profile: str = "cpu") -> pd.DataFrame:
    """Every chapter's claims, in chapter order (empty when no chapter wrote any)."""
    folder = output_dir("results", profile)
    frames = [pd.read_csv(p, keep_default_na=False) for p in sorted(folder.glob(f"{CLAIM_FILE}_[0-9][0-9]_*.csv"))]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[f.name for f in fields(Claim)])


def claims_markdown(df: pd.DataFrame) -> str:
    """The findings table as Markdown: claim, paper, ours, verdict, where to read it (a link to the chapter)."""
    if df.empty:
        return ("No chapter has recorded a claim yet: the findings table is written when the results chapters "
                "run (`ferd book`).\n")
    lines = ["| claim | paper | ours (seed comparisons: mean difference [95 % interval]) | verdict | chapter |",
             "|---|---|---|---|---|"]
    for r in df.itertuples():
        mark = " *(added by this book)*" if r.origin == "book" else ""
        verdict = f"**{r.verdict}**"
        ours = r.ours + (f"; resolution {r.resolution}" if r.resolution else "")
        lines.append(f"| {r.claim}{mark} | {r.paper} | {ours} | {verdict} | {{doc}}`executed/{r.chapter}` |")
    tests = sorted(set(df["test"]))
    return "\n".join(lines) + "\n\nHow each verdict was reached: " + "; ".join(tests) + ".\n"
