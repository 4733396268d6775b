"""The book runner: execute every chapter notebook with papermill, then build the Jupyter Book.

    python -m ferd book --profile cpu               # whole book, into the repository
    python -m ferd book --only 05 --profile cpu     # one chapter; the others stay as they are
    python -m ferd book --profile smoke --out /tmp/b  # a throw-away build that touches no committed file

Each `notebooks/NN_name.py` (jupytext percent format) is converted to a notebook and executed by papermill
(kernel `python3`, cwd = the repository, parameters `profile` and `device`) into
`<out>/book/executed/NN_name.ipynb`. A chapter that fails leaves its partial notebook in `<out>/book/failed/`
and the previously executed one in place. The runner writes `book/status.csv` (execution times) and renders it,
and the paper-numbers file, as the appendix pages `book/status.md` and `book/paper_numbers.md`; then
`jupyter-book build -W -n --keep-going <out>` renders what the notebooks produced (execution is off in
`_config.yml`). This module imports no notebook and no chapter code (the one-way rule of the style guide).
"""
from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

from ferd.errors import ConfigError, FerdError
from ferd.runtime import environ

ROOT = Path(__file__).resolve().parent.parent
KERNEL = "python3"
# Folders _config.yml copies into the HTML: _static (html_static_path: the CSS; Jupyter Book adds every .css/.js
# there to each page) and vendor (html_extra_path: the bundled MathJax, loaded once through mathjax_path)
STATIC_DIRS = ("_static", "vendor")
STATUS_COLUMNS = ("chapter", "seconds", "profile", "date")
CHAPTER_RE = re.compile(r"^(\d\d)_\w+\.py$")


class BookError(FerdError, RuntimeError):
    """A chapter failed to execute or the book failed to build; the message says which and where to look."""


def output_dir(kind: str, profile: str) -> Path:
    """Where a chapter writes `figures` or `results`: the repo folders for cpu/paper, a scratch folder for smoke.

    `$FERD_OUTPUT` overrides the root (the tests point it at a temporary folder).
    """
    base = os.environ.get("FERD_OUTPUT")
    if base:
        root = Path(base)
    elif profile == "smoke":
        root = Path(tempfile.gettempdir()) / "ferd-smoke"
    else:
        root = ROOT
    # not created here: writers create it (atomically) when they first save, so a chapter whose parameters
    # fail validation leaves nothing on disk
    return root / kind / "paper" if profile == "paper" else root / kind


# ------------------------------------------------------------------------------------------------
# Chapters
# ------------------------------------------------------------------------------------------------
def chapters(root: Path = ROOT) -> list[Path]:
    """The chapter sources `notebooks/NN_name.py`, in chapter order."""
    return sorted(p for p in (Path(root) / "notebooks").glob("*.py") if CHAPTER_RE.match(p.name))


def select_chapters(sources: Sequence[Path], only: str | int | Sequence[str | int] | None) -> list[Path]:
    """The chapters `only` names ("05", 5, "05_utae" or a list of them); all of them when `only` is None."""
    if only is None:
        return list(sources)
    wanted = [only] if isinstance(only, (str, int)) else list(only)
    picked = []
    for w in wanted:
        text = str(w).strip()
        number = f"{int(text):02d}" if text.isdigit() else text.split("_")[0]
        match = [p for p in sources if p.name.startswith(number + "_")]
        if not match:
            raise ConfigError("only", w, "a chapter number such as 05; chapters: "
                              + ", ".join(p.stem for p in sources))
        picked += [p for p in match if p not in picked]
    return picked


def ensure_kernel(name: str = KERNEL) -> None:
    """Install an ipykernel spec called `name` into this environment when Jupyter cannot find one."""
    from jupyter_client.kernelspec import KernelSpecManager

    if name in KernelSpecManager().find_kernel_specs():
        return
    subprocess.run([sys.executable, "-m", "ipykernel", "install", "--sys-prefix", "--name", name],
                   check=True, capture_output=True, text=True)


def execute_chapter(source: Path, target: Path, profile: str, device: str, root: Path = ROOT,
                    timeout: float | None = None, progress: bool = False) -> float:
    """Convert `source` with jupytext, execute it with papermill into `target`; return the seconds it took.
    `progress` shows papermill's per-cell bar (chapters in turn; parallel chapters would interleave bars).

    The notebook is written to a temporary file first and moved into place only when every cell ran, so a
    failure never replaces a good executed chapter; the partial notebook goes to `<target>/../../failed/`.
    """
    import jupytext
    import papermill

    nb = jupytext.read(source)
    nb.metadata["kernelspec"] = {"name": KERNEL, "display_name": "Python 3", "language": "python"}
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.stem}.running.ipynb")
    start = time.perf_counter()
    try:
        papermill.execute_notebook(nb, str(tmp), parameters={"profile": profile, "device": device},
                                   kernel_name=KERNEL, language="python", cwd=str(root), progress_bar=progress,
                                   log_output=False, execution_timeout=timeout)
    except Exception as err:  # papermill's execution error, a timeout, a dead kernel
        failed = target.parent.parent / "failed" / target.name
        failed.parent.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            os.replace(tmp, failed)
        raise BookError(f"chapter {source.stem} failed after {time.perf_counter() - start:.1f} s: "
                        f"{type(err).__name__}: {str(err).strip().splitlines()[-1] if str(err).strip() else ''} "
                        f"(partial notebook: {failed})") from err
    os.replace(tmp, target)
    return time.perf_counter() - start


def _execute_or_error(*args: object) -> float | str:
    """`execute_chapter` for a worker process: the seconds, or the BookError's message."""
    try:
        return execute_chapter(*args)  # type: ignore[arg-type]
    except BookError as err:
        return str(err)


# ------------------------------------------------------------------------------------------------
# Appendix pages written from data (so the build needs no execution)
# ------------------------------------------------------------------------------------------------
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
            "were not yet in the artifact store; a re-execution that finds them cached is much faster. The whole book "
            "timed from an empty artifact store (`benchmarks/bench_book.py`) is recorded in "
            "`benchmarks/results/book_cpu.md`.\n"]
    if not rows:
        text.append("No chapter has been executed yet.\n")
    else:
        total = sum(float(r["seconds"]) for r in rows)
        text.append(markdown_table(["chapter", "seconds", "profile", "executed"],
                                   [(r["chapter"], r["seconds"], r["profile"], r["date"]) for r in rows]))
        text.append(f"\nTotal: {total:.1f} s over {len(rows)} chapter{'s' if len(rows) != 1 else ''}.\n")
    return "\n".join(text)


def _paper_cell(record: dict) -> str:
    from ferd import tables

    if record["metric"] == "note":
        return "(qualitative)"
    value = record["value"]
    return tables.fmt_paper(None if value != value else value, tables.record_kind(record["metric"]))


def paper_numbers_markdown() -> str:
    """The `book/paper_numbers.md` page: every record of the paper-numbers file, grouped by table."""
    from ferd import tables

    df = tables.load_paper_numbers()
    text = ["# The paper's numbers\n",
            "Every number the book prints as \"paper\" comes from one record of `ferd/paperdata/paper_numbers.yaml`, "
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
    """Merge `timings` into `book/status.csv`, then write `book/status.md` and `book/paper_numbers.md`."""
    rows = update_status(Path(out) / "book" / "status.csv", timings or {}, profile)
    (Path(out) / "book" / "status.md").write_text(status_markdown(rows))
    (Path(out) / "book" / "paper_numbers.md").write_text(paper_numbers_markdown())


# ------------------------------------------------------------------------------------------------
# The build
# ------------------------------------------------------------------------------------------------
def toc_chapters(toc_path: Path) -> list[str]:
    """The `book/executed/...` entries of a `_toc.yml`, in order."""
    import yaml

    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("file"), str) and node["file"].startswith("book/executed/"):
                found.append(node["file"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(yaml.safe_load(Path(toc_path).read_text()))
    return found


def _prepare_out(root: Path, out: Path) -> None:
    """Copy the book's sources (config, toc, pages, status, executed chapters) into a separate output root."""
    (out / "book" / "executed").mkdir(parents=True, exist_ok=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(root / name, out / name)
    for static in STATIC_DIRS:
        if (root / static).is_dir():
            shutil.copytree(root / static, out / static, dirs_exist_ok=True)
    for page in list((root / "book").glob("*.md")) + list((root / "book").glob("status.csv")):
        shutil.copy2(page, out / "book" / page.name)
    for nb in (root / "book" / "executed").glob("*.ipynb"):
        if not (out / "book" / "executed" / nb.name).exists():
            shutil.copy2(nb, out / "book" / "executed" / nb.name)


def _prune_toc(out: Path) -> list[str]:
    """In a separate output root, drop toc entries whose executed chapter does not exist (return them)."""
    import yaml

    toc_path = out / "_toc.yml"
    missing = [f for f in toc_chapters(toc_path) if not (out / f"{f}.ipynb").exists()]
    if not missing:
        return []

    def prune(node: object) -> object:
        if isinstance(node, dict):
            return {k: prune(v) for k, v in node.items()}
        if isinstance(node, list):
            kept = [prune(v) for v in node if not (isinstance(v, dict) and v.get("file") in missing)]
            return [v for v in kept if not (isinstance(v, dict) and v.get("chapters") == [])]
        return node

    toc_path.write_text(yaml.safe_dump(prune(yaml.safe_load(toc_path.read_text())), sort_keys=False))
    return missing


def build_book(out: Path) -> Path:
    """`jupyter-book build -W -n --keep-going <out>`; return `_build/html/index.html` or raise BookError."""
    for static in STATIC_DIRS:  # named in _config.yml (Sphinx warns on a missing one); a miniature book has none
        (out / static).mkdir(exist_ok=True)
    exe = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(exe) if exe.exists() else "jupyter-book", "build", "-W", "-n", "--keep-going", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    index = out / "_build" / "html" / "index.html"
    if proc.returncode != 0 or not index.exists():
        log = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr).splitlines()
        warnings = [line for line in log if "WARNING" in line or "ERROR" in line]
        raise BookError(f"jupyter-book build failed (exit {proc.returncode}); "
                        + ("warnings:\n  " + "\n  ".join(warnings[:40]) if warnings else
                           "last lines:\n  " + "\n  ".join(log[-30:])))
    return index


def _say(line: str) -> None:
    from tqdm import tqdm

    tqdm.write(line)


def run_book(profile: str = "cpu", only: str | int | Sequence[str | int] | None = None,
             out: str | Path | None = None, build: bool = True, timeout: float | None = None,
             device: str | None = None, root: str | Path | None = None, jobs: int = 1) -> Path:
    """Execute the chapters, write the appendix pages, build the book; return the HTML index path.

    Args:
        profile: "smoke", "cpu" or "paper", passed to every chapter as the papermill parameter `profile`.
        only: execute just these chapters ("05", 5 or a list); the other executed chapters stay as they are.
        out: output root (default: the repository). A different root receives copies of `_config.yml`,
            `_toc.yml`, `book/*.md` and the committed executed chapters first, so a throw-away build never
            touches the repository; its chapters then also write figures and results under `out` (unless
            `$FERD_OUTPUT` says otherwise).
        build: run `jupyter-book build -W -n --keep-going` after executing.
        timeout: seconds allowed per notebook cell (None: no limit).
        device: papermill parameter `device`; default "auto" for the paper profile, "cpu" otherwise.
        root: the repository holding `notebooks/` (tests point it at a miniature book).
        jobs: chapters executed at once, each kernel with its share of the cores (`FERD_THREADS`). The
            default (1) runs chapters in turn with all cores; each chapter then trains its missing runs side
            by side, one single-threaded worker per core (`ferd.experiments.prefetch`), which uses a CPU
            better than parallel chapters that wait for each other's runs on the store's locks.
    Returns:
        `<out>/_build/html/index.html` (or `<out>/book/executed` when `build` is False).
    """
    from ferd.config import PROFILES_ALLOWED

    if profile not in PROFILES_ALLOWED:
        raise ConfigError("profile", profile, PROFILES_ALLOWED)
    root = Path(root).resolve() if root else ROOT
    out = Path(out).resolve() if out else root
    device = device or ("auto" if profile == "paper" else "cpu")
    sources = select_chapters(chapters(root), only)
    if out != root:
        _prepare_out(root, out)
    ensure_kernel()
    executed = out / "book" / "executed"
    timings: dict[str, float] = {}
    failures: list[str] = []
    scratch = str(out) if out != root and not os.environ.get("FERD_OUTPUT") else None
    threads = str(max(1, (os.cpu_count() or 1) // jobs)) if jobs > 1 else os.environ.get("FERD_THREADS")
    with environ(FERD_OUTPUT=scratch, OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "PASSIVE"),
                  FERD_THREADS=threads):
        args = [(source, executed / f"{source.stem}.ipynb", profile, device, root, timeout) for source in sources]
        results: dict[Path, float | str] = {}

        def report(source: Path, value: float | str) -> None:  # one line per chapter, as soon as it ends
            results[source] = value
            line = "FAILED" if isinstance(value, str) else f"{value:7.1f} s  ({profile})"
            _say(f"[{len(results)}/{len(sources)}] {source.stem:<22} {line}")

        if jobs > 1:  # longest chapter first (by the last recorded times), so no worker idles at the end
            last = _last_seconds(out / "book" / "status.csv", profile)
            args.sort(key=lambda a: -last.get(a[0].stem, float("inf")))
            import concurrent.futures as cf
            import multiprocessing as mp

            with cf.ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as pool:
                futures = {pool.submit(_execute_or_error, *a): a[0] for a in args}
                for f in cf.as_completed(futures):
                    report(futures[f], f.result())
        else:
            for a in args:
                _say(f"executing {a[0].stem} ...")
                report(a[0], _execute_or_error(*a, True))
        for source in sources:  # in chapter order
            value = results[source]
            if isinstance(value, str):
                failures.append(value)
            else:
                timings[source.stem] = value
        if len(sources) > 1:
            _say("\n" + markdown_table(["chapter", "seconds"], [(k, f"{v:.1f}") for k, v in timings.items()])
                 + f"\ntotal {sum(timings.values()):.1f} s")
    write_appendix(out, timings, profile)
    if failures:
        raise BookError(f"{len(failures)} of {len(sources)} chapters failed:\n" + "\n".join(failures))
    if not build:
        return executed
    if out != root:
        for missing in _prune_toc(out):
            _say(f"left out of this build (never executed): {missing}")
    start = time.perf_counter()
    index = build_book(out)
    _say(f"book built in {time.perf_counter() - start:.1f} s: {index}")
    return index
