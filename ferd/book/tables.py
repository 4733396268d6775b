"""Our numbers beside the paper's: the paper-numbers file, result tables and their provenance labels.

The paper's numbers live in `ferd/book/paperdata/paper_numbers.yaml`, one record per number (spec baselines.md
11.1). A chapter prints a table as

    table = side_by_side(summary_df, "t1.c10.rn18.ferd.{attack}.{metric}", rows="preset", cols="attack")
    display(table); print(provenance_caption(profile, cfg.dataset, seeds, hashes))

Our accuracies are fractions (as `ferd.toolkit.evaluate.summarize` returns them) and print in percent with 2
decimals; the paper's are already percentages. NSD prints with 3 decimals. An unknown paper value prints
"n/r" (not recovered), never a blank and never a number taken from another table.
"""
from __future__ import annotations

import difflib
import functools
import math
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import yaml

from ferd.book.paths import output_dir
from ferd.errors import ConfigError
from ferd.toolkit import artifacts
from ferd.toolkit.attacks import ATTACK_LABELS  # noqa: F401 (the chapters' table headers)

PAPER_NUMBERS = Path(__file__).resolve().parent / "paperdata" / "paper_numbers.yaml"
FIELDS = ("key", "table", "student", "method", "attack", "metric", "value", "source", "confidence", "note")
REQUIRED = FIELDS[:-1]
CONFIDENCE = ("paper", "write-up", "reviews", "released code", "our reading", "unverified")
NOT_RECOVERED = "n/r"
MISSING = "—"  # our value is absent (e.g. an attack the profile does not run)

METRIC_LABELS = {"avg": "Avg", "worst": "Worst", "worst10": "Worst-10%", "nsd": "NSD"}
DATASET_LABELS = {"fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100",
                  "tiny_imagenet": "Tiny-ImageNet"}


# ------------------------------------------------------------------------------------------------
# The paper-numbers file
# ------------------------------------------------------------------------------------------------
def _check_records(records: Any, path: Path) -> list[dict[str, Any]]:
    """Refuse a malformed file: every required field, known confidence labels, unique keys, numeric values."""
    if not isinstance(records, list) or not records:
        raise ConfigError(f"{path.name}: records", type(records).__name__, "a non-empty list of records")
    seen: set[str] = set()
    for i, r in enumerate(records):
        missing = [f for f in REQUIRED if not isinstance(r, dict) or f not in r]
        if missing:
            raise ConfigError(f"{path.name}: record {i} ({r.get('key') if isinstance(r, dict) else r!r})",
                              missing, f"the fields {REQUIRED}")
        extra = set(r) - set(FIELDS)
        if extra:
            raise ConfigError(f"{path.name}: record {r['key']}", sorted(extra), f"only the fields {FIELDS}")
        if r["key"] in seen:
            raise ConfigError(f"{path.name}: key", r["key"], "a key used once")
        seen.add(r["key"])
        if r["confidence"] not in CONFIDENCE:
            raise ConfigError(f"{path.name}: {r['key']}.confidence", r["confidence"], CONFIDENCE)
        v = r["value"]
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise ConfigError(f"{path.name}: {r['key']}.value", v, "a number or null")
        if r["metric"] == "note" and v is not None:
            raise ConfigError(f"{path.name}: {r['key']}.value", v, "null for a qualitative `note` record")
    return records


@functools.lru_cache(maxsize=4)
def _records(path: Path = PAPER_NUMBERS) -> tuple[dict[str, Any], ...]:
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    records = data.get("records") if isinstance(data, dict) else None
    return tuple(_check_records(records, Path(path)))


def load_paper_numbers(path: str | Path = PAPER_NUMBERS) -> pd.DataFrame:
    """Every paper-reported number as one row (columns `FIELDS`; `value` NaN where not recovered)."""
    df = pd.DataFrame([dict(r) for r in _records(Path(path))], columns=list(FIELDS))
    df["value"] = pd.to_numeric(df["value"], errors="coerce").astype(float)
    return df


def paper_value(key: str) -> float | None:
    """The paper's value of `key` (e.g. "t1.c10.rn18.ferd.aa.avg"), or None where it was not recovered.

    A key that is not in the file raises ConfigError listing the closest keys (a typo must not print n/r).
    """
    by_key = {r["key"]: r for r in _records(PAPER_NUMBERS)}
    if key not in by_key:
        close = difflib.get_close_matches(str(key), list(by_key), n=3, cutoff=0.6)
        raise ConfigError("paper key", key, f"a key of {PAPER_NUMBERS.name}" +
                          (f" (closest: {', '.join(close)})" if close else ""))
    v = by_key[key]["value"]
    return None if v is None else float(v)


def has_paper_key(key: str) -> bool:
    return any(r["key"] == key for r in _records(PAPER_NUMBERS))


# ------------------------------------------------------------------------------------------------
# Number formats (spec baselines.md 11.1: percentages with 2 decimals, NSD with 3)
# ------------------------------------------------------------------------------------------------
def _missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def fmt_pct(x: float | None, digits: int = 2) -> str:
    """Our accuracy, a fraction in [-1, 1] (a difference may be negative), as a percentage: 0.40123 -> "40.12"."""
    if _missing(x):
        return MISSING
    if abs(float(x)) > 1 + 1e-9:
        raise ConfigError("fmt_pct(x)", x, "a fraction in [-1, 1] (our accuracies are fractions; "
                          "paper values are percentages: use fmt_paper)")
    return f"{100 * float(x):.{digits}f}"


def plural(n: int, word: str) -> str:
    """'1 run', '3 runs': a count in a sentence the chapters write for any number of seeds."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def resolution_digits(images: float | None) -> int:
    """Decimals a percentage measured on `images` images deserves: its step is 100 / images points, so 1,000 images
    (step 0.1) give 1 decimal, 50 (step 2) give none; unknown: 2."""
    if _missing(images) or not images:
        return 2
    return max(0, math.ceil(-math.log10(100.0 / float(images)) - 1e-9))


def fmt_nsd(x: float | None) -> str:
    """NSD with 3 decimals: 0.32512 -> "0.325"."""
    return MISSING if _missing(x) else f"{float(x):.3f}"


PAPER_KINDS = ("pct", "nsd", "delta", "raw")


def fmt_paper(v: float | None, kind: str = "pct") -> str:
    """A paper value: "n/r" when not recovered; `kind` "pct" (already in %, 2 decimals), "nsd" (3 decimals),
    "delta" (signed, as stated) or "raw" (as stated)."""
    if kind not in PAPER_KINDS:
        raise ConfigError("kind", kind, PAPER_KINDS)
    if _missing(v):
        return NOT_RECOVERED
    v = float(v)
    return {"pct": f"{v:.2f}", "nsd": f"{v:.3f}", "delta": f"{v:+g}", "raw": f"{v:g}"}[kind]


def record_kind(metric: str) -> str:
    """The print format of a paper record from its `metric` field."""
    if metric in ("Avg", "Worst", "Worst-10%"):
        return "pct"
    if metric == "NSD":
        return "nsd"
    return "delta" if metric == "delta" else "raw"


# ------------------------------------------------------------------------------------------------
# Tables: our value beside the paper's
# ------------------------------------------------------------------------------------------------
PaperKeys = str | Mapping[tuple, "str | None"] | Callable[..., "str | None"]


def _paper_key(paper_keys: PaperKeys | None, fields: dict[str, Any]) -> str | None:
    """The record key for one cell. A template skips keys not in the file (n/r); a mapping must name real keys."""
    if paper_keys is None:
        return None
    if isinstance(paper_keys, str):
        try:
            key = paper_keys.format(**fields)
        except KeyError as err:
            raise ConfigError("paper_keys_map", paper_keys, f"a template using only the fields {list(fields)}"
                              f" (not {err})") from None
        return key if has_paper_key(key) else None
    if callable(paper_keys):
        key = paper_keys(**fields)
    else:
        key = paper_keys.get(tuple(v for k, v in fields.items()), None)
    if key is not None:
        paper_value(key)  # raises on a key that is not in the file
    return key


def _ours(values: pd.Series, metric: str, images: float | None = None) -> str:
    """One cell of ours; an accuracy gets the precision its number of images allows (`resolution_digits`)."""
    digits = resolution_digits(images)

    def fmt(x: float) -> str:
        return fmt_nsd(x) if metric == "nsd" else fmt_pct(x, digits)

    values = values.dropna()
    if values.empty:
        return MISSING
    if len(values) == 1:
        return fmt(values.iloc[0])
    return f"{fmt(values.mean())} ± {fmt(values.std(ddof=1))}"  # mean ± sd over seeds


def side_by_side(ours_summary: pd.DataFrame, paper_keys_map: PaperKeys | None = None, *,
                 rows: str | Sequence[str] = "preset", cols: str | None = "attack",
                 metrics: Sequence[str] = ("avg", "worst", "nsd"), cell: str = "{ours} ({paper})",
                 labels: Mapping[str, str] | None = None) -> pd.DataFrame:
    """A table of strings, one cell per (row, column, metric): our value and the paper's, e.g. "38.12 (40.12)".

    Args:
        ours_summary: long frame with the `rows` (and `cols`) columns and the `metrics` columns, as
            `ferd.book.experiments.summary` returns it (accuracies as fractions). Several rows for one cell
            (seeds) print as "mean ± sd". With its `n_per_class` / `n_total` columns, each accuracy is printed
            to the precision its number of images allows (Worst on 1,000 images per class: one decimal).
        paper_keys_map: which paper record belongs to a cell, given the cell's fields (the `rows` and `cols`
            values, then `metric`): a template such as "t1.c10.rn18.ferd.{attack}.{metric}" (keys not in
            the file print n/r), a mapping from the tuple of those values to a key or None, or a callable
            taking them as keywords. None: no paper column (n/r everywhere).
        rows, cols: the columns that index the table's rows and (optionally) its column groups.
        metrics: summary columns to show, among avg, worst, worst10, nsd.
        cell: how one cell reads; fields `ours` and `paper`.
        labels: display names of row/column values; default: attack names (clean -> Clean, cw -> CW∞).
    Returns:
        DataFrame of strings; columns are the metric labels, or (column value, metric label) pairs.
    """
    rows = [rows] if isinstance(rows, str) else list(rows)
    bad = [m for m in metrics if m not in METRIC_LABELS]
    if bad:
        raise ConfigError("metrics", bad, tuple(METRIC_LABELS))
    need = rows + ([cols] if cols else []) + list(metrics)
    missing = [c for c in need if c not in ours_summary.columns]
    if missing:
        raise ConfigError("ours_summary columns", missing, f"a summary frame with columns {need}")
    labels = {**ATTACK_LABELS, **(labels or {})}
    row_values = list(dict.fromkeys(map(tuple, ours_summary[rows].itertuples(index=False, name=None))))
    col_values = list(dict.fromkeys(ours_summary[cols])) if cols else [None]
    table: dict[Any, list[str]] = {}
    for col in col_values:
        for metric in metrics:
            out = []
            for row in row_values:
                mask = (ours_summary[rows] == pd.Series(row, index=rows)).all(axis=1)
                if cols:
                    mask &= ours_summary[cols] == col
                fields = dict(zip(rows, row)) | ({cols: col} if cols else {}) | {"metric": metric}
                key = _paper_key(paper_keys_map, fields)
                paper = fmt_paper(paper_value(key) if key else None, "nsd" if metric == "nsd" else "pct")
                size = {"avg": "n_total"}.get(metric, "n_per_class")  # Avg pools the classes, Worst is one class
                images = ours_summary.loc[mask, size].min() if size in ours_summary else None
                out.append(cell.format(ours=_ours(ours_summary.loc[mask, metric], metric, images), paper=paper))
            name = METRIC_LABELS[metric]
            table[(labels.get(col, col), name) if cols else name] = out
    index = [labels.get(r[0], r[0]) if len(rows) == 1 else tuple(labels.get(v, v) for v in r) for r in row_values]
    df = pd.DataFrame(table, index=pd.Index(index, name=rows[0]) if len(rows) == 1
                      else pd.MultiIndex.from_tuples(index, names=rows))
    if cols:
        df.columns = pd.MultiIndex.from_tuples(df.columns, names=[cols, "metric"])
    return df


def provenance_caption(profile: str, dataset: str, seeds: Sequence[int] | int,
                       config_hashes: Sequence[str] | str, commit: str | None = None,
                       paper_dataset: str | None = "cifar10") -> str:
    """One line printed under every table: what produced our numbers, and what the paper's numbers are.

    E.g. "Ours: profile cpu, Fashion-MNIST, seeds 0, 1, 2, config 3f2a9c01d4e5, ferd 1a2b3c4. Cells: ours
    (paper). Paper values: CIFAR-10, for orientation only; n/r = not recovered."
    """
    seeds = [seeds] if isinstance(seeds, int) else list(dict.fromkeys(seeds))
    hashes = [config_hashes] if isinstance(config_hashes, str) else list(dict.fromkeys(config_hashes))
    shown = ", ".join(hashes[:3]) + (f" (+{len(hashes) - 3} more)" if len(hashes) > 3 else "")
    commit = commit or artifacts.git_commit()
    text = (f"Ours: profile {profile}, {DATASET_LABELS.get(dataset, dataset)}, "
            f"seed{'s' if len(seeds) != 1 else ''} {', '.join(map(str, seeds))}, "
            f"config {shown or 'n/a'}, ferd {commit}.")
    if paper_dataset is None:  # a table without paper numbers
        return text
    text += " Cells: ours (paper)."
    if paper_dataset != dataset:
        return (text + f" Paper values: {DATASET_LABELS.get(paper_dataset, paper_dataset)}, for orientation only "
                f"(no paper numbers exist for {DATASET_LABELS.get(dataset, dataset)}); n/r = not recovered.")
    return text + " Paper values: n/r = not recovered."


def save_results(df: pd.DataFrame, name: str, profile: str) -> Path:
    """Write a result table as `<results dir>/<name>.csv` (atomically; no checksum sidecar: it is git-tracked)."""
    path = output_dir("results", profile) / f"{name}.csv"
    artifacts.write_atomic(path, df.to_csv(index=False).encode())
    path.with_name(path.name + ".sha256").unlink(missing_ok=True)
    return path


def column_decimals(values: pd.Series, most: int = 4) -> int:
    """The fewest decimals (at most `most`) that show every value of a float column as it is: 0.1152 and 0.113
    both get 4 (0.1152, 0.1130), 75.2 and 74.16 get 2, so a column lines up without padding to pandas' six."""
    finite = values[np.isfinite(values.to_numpy(dtype=float))].to_numpy(dtype=float)
    for digits in range(most + 1):
        if np.allclose(np.round(finite, digits), finite, rtol=0, atol=10.0 ** -(most + 2)):
            return digits
    return most


def frame_html(df: pd.DataFrame) -> str:
    """A table as the book shows it: without an index that is only 0, 1, 2, ... (it tells a reader nothing), a
    named index as the first column (so the header is one row, not the column names over a row holding only the
    index's name), and each float column with the decimals its values need (`column_decimals`) instead of
    pandas' six. Text is HTML-escaped: a message such as "set <root>/cifar-10-batches-py" must not lose its
    "<root>" to the browser as an unknown tag."""
    if not df.columns.is_unique or len(df) > pd.get_option("display.max_rows"):
        return df._repr_html_()  # pandas' own (it truncates long frames)
    if df.index.nlevels == 1 and df.index.name is not None and df.index.name not in df.columns:
        df = df.reset_index()
    styler = df.style.format({c: f"{{:,.{column_decimals(df[c])}f}}" for c in df.columns
                              if pd.api.types.is_float_dtype(df[c])}, na_rep="–", escape="html")
    if df.index.nlevels == 1 and pd.api.types.is_float_dtype(df.index):  # a tau or gamma index: 1, not 1.000000
        styler.format_index(f"{{:,.{column_decimals(df.index.to_series())}f}}", axis="index")
    return styler_html(styler)


def styler_html(styler: Any) -> str:
    """A pandas Styler's HTML, without a 0, 1, 2, ... index."""
    if isinstance(styler.data.index, pd.RangeIndex):
        styler.hide(axis="index")
    return styler.to_html()


def use_book_display() -> None:
    """In a notebook kernel, show DataFrames as `frame_html` and Stylers as `styler_html` do. Called by
    `ferd.book.plots.set_style`."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return
    from pandas.io.formats.style import Styler

    html = shell.display_formatter.formatters["text/html"]
    html.for_type(pd.DataFrame, frame_html)
    html.for_type(Styler, styler_html)
