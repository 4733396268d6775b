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

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from ferd.book.pages import _last_seconds, markdown_table, write_appendix
from ferd.book.params import chapter_number, resolve_params
from ferd.book.paths import ROOT, output_dir  # noqa: F401 (re-exported for chapters and tests)
from ferd.errors import ConfigError, FerdError
from ferd.toolkit.runtime import environ

KERNEL = "python3"
# Folders _config.yml copies into the HTML: _static (html_static_path: the CSS; Jupyter Book adds every .css/.js
# there to each page) and vendor (html_extra_path: the bundled MathJax, loaded once through mathjax_path)
STATIC_DIRS = ("_static", "vendor")
CHAPTER_RE = re.compile(r"^(\d\d)_\w+\.py$")


class BookError(FerdError, RuntimeError):
    """A chapter failed to execute or the book failed to build; the message says which and where to look."""


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
        match = [p for p in sources if p.name.startswith(chapter_number(w) + "_")]
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
                    timeout: float | None = None, overrides: dict | None = None, progress: bool = False) -> float:
    """Convert `source` with jupytext, execute it with papermill into `target`; return the seconds it took.
    `overrides` are further papermill parameters (`ferd.book.params`; the page then shows them). `progress` shows
    papermill's per-cell bar (chapters in turn; parallel chapters would interleave bars).

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
        papermill.execute_notebook(nb, str(tmp), parameters={"profile": profile, "device": device, **(overrides or {})},
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
    scrub_paths(tmp, root, {tmp.name: target.name})
    fold_plumbing(tmp, show_injected=bool(overrides))
    os.replace(tmp, target)
    return time.perf_counter() - start


def machine_paths(root: Path) -> list[tuple[str, str]]:
    """(absolute prefix, placeholder) pairs of this machine, longest first: the repository, the artifact store,
    the dataset folders, the temporary folder and the home folder."""
    from ferd.toolkit.artifacts import default_root
    from ferd.toolkit.data import SYSTEM_DIRS, _search_bases

    pairs = [(str(Path(root).resolve()), "."), (str(default_root().resolve()), "$FERD_ARTIFACTS"),
             (tempfile.gettempdir(), "$TMPDIR"), (str(Path.home()), "~")]
    bases = _search_bases(None) + [d for dirs in SYSTEM_DIRS.values() for d in dirs]
    pairs += [(str(base), "$DATASETS") for base in bases if base.is_absolute()]
    pairs = [(a, b) for a, b in pairs if len(a) > 1]
    return sorted(set(pairs), key=lambda ab: -len(ab[0]))


BINARY_MIMES = ("image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf")


def scrub_paths(path: Path, root: Path, renames: dict[str, str] | None = None) -> None:
    """Replace this machine's absolute paths in an executed notebook (papermill's input and output paths, a data
    folder in a message) by placeholders, so a committed chapter names no machine (issue 12). Base64 payloads
    (a figure, glued or shown) are left alone: "/tmp" or a home folder can occur in them by chance, and replacing
    it there corrupts the image."""
    import json

    pairs = [*machine_paths(root), *(renames or {}).items()]

    def scrub(node: object, key: str = "") -> object:
        if key.endswith(BINARY_MIMES):  # also papermill's "application/papermill.record/image/png"
            return node
        if isinstance(node, str):
            for prefix, placeholder in pairs:
                node = node.replace(prefix, placeholder)
            return node
        if isinstance(node, list):
            return [scrub(item, key) for item in node]
        if isinstance(node, dict):
            return {scrub(k): scrub(v, k) for k, v in node.items()}
        return node

    nb = scrub(json.loads(path.read_text(encoding="utf-8")))
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def fold_plumbing(path: Path, show_injected: bool = False) -> None:
    """Show a reader the prose, the outputs and one parameters cell: papermill's injected-parameters cell is
    removed from the page (shown instead when `show_injected`: the chapter ran with overridden parameters, which
    a reader must see), and every other code cell is folded (hide-input: one click shows it) unless it is the
    parameters cell or tagged `show-input`."""
    import json

    nb = json.loads(path.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if "injected-parameters" in tags:
            tags.append("show-input" if show_injected else "remove-cell")
            if show_injected and cell["source"]:  # papermill's "# Parameters" header, said for a reader
                lines = "".join(cell["source"]).splitlines(keepends=True)
                cell["source"] = ["# Parameters of this run: they replace the defaults above\n", *lines[1:]]
        elif not {"parameters", "show-input", "hide-input", "remove-input", "remove-cell"} & set(tags):
            tags.append("hide-input")
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def _execute_or_error(*args: object) -> float | str:
    """`execute_chapter` for a worker process: the seconds, or the BookError's message."""
    try:
        return execute_chapter(*args)  # type: ignore[arg-type]
    except BookError as err:
        return str(err)


# ------------------------------------------------------------------------------------------------
# The build
# ------------------------------------------------------------------------------------------------
def toc_files(toc_path: Path) -> list[str]:
    """Every `file:` entry of a Jupyter Book table of contents, in order."""
    import yaml

    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("file"), str):
                found.append(node["file"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(yaml.safe_load(Path(toc_path).read_text()))
    return found


def toc_chapters(toc_path: Path) -> list[str]:
    """The `book/executed/...` entries of a `_toc.yml`, in order."""
    return [f for f in toc_files(toc_path) if f.startswith("book/executed/")]


def _prepare_out(root: Path, out: Path) -> None:
    """Copy the book's sources (config, toc, pages, status, executed chapters) into a separate output root."""
    (out / "book" / "executed").mkdir(parents=True, exist_ok=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(root / name, out / name)
    for static in STATIC_DIRS:
        if (root / static).is_dir():
            shutil.copytree(root / static, out / static, dirs_exist_ok=True)
    book = root / "book"
    for page in [*book.rglob("*.md"), *book.glob("status.csv")]:  # pages in sub-folders too (book/spec/)
        rel = page.relative_to(book)
        if rel.parts[0] in ("executed", "_build"):
            continue
        (out / "book" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(page, out / "book" / rel)
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
             device: str | None = None, root: str | Path | None = None, jobs: int = 1,
             params: Mapping[str, Mapping[str, Any]] | None = None) -> Path:
    """Execute the chapters, write the appendix pages, build the book; return the HTML index path.

    Args:
        profile: "smoke", "cpu" or "paper", passed to every chapter as the papermill parameter `profile`.
        only: execute just these chapters ("05", 5 or a list); the other executed chapters stay as they are.
        out: output root (default: the repository). A different root receives copies of `_config.yml`,
            `_toc.yml`, the pages under `book/` and the committed executed chapters first, so a throw-away build never
            touches the repository; its chapters then also write figures and results under `out` (unless
            `$FERD_OUTPUT` says otherwise).
        build: run `jupyter-book build -W -n --keep-going` after executing.
        timeout: seconds allowed per notebook cell (None: no limit).
        device: papermill parameter `device`; default "auto" for the paper profile, "cpu" otherwise.
        root: the repository holding `notebooks/` (tests point it at a miniature book).
        jobs: chapters executed at once, each kernel with its share of the cores (`OMP_NUM_THREADS`). The
            default (1) runs chapters in turn with all cores; each chapter then trains its missing runs side
            by side, one single-threaded worker per core (`ferd.book.experiments.prefetch`), which uses a CPU
            better than parallel chapters that wait for each other's runs on the store's locks.
        params: parameter overrides {chapter: {name: value}} ("*" for every chapter declaring the name),
            checked against the chapters' `parameters` cells before anything runs (`ferd.book.params`).
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
    overrides = resolve_params(sources, params or {}, book=chapters(root))
    if out != root:
        _prepare_out(root, out)
    ensure_kernel()
    executed = out / "book" / "executed"
    timings: dict[str, float] = {}
    failures: list[str] = []
    scratch = str(out) if out != root and not os.environ.get("FERD_OUTPUT") else None
    threads = str(max(1, (os.cpu_count() or 1) // jobs)) if jobs > 1 else None  # torch reads it at start-up
    with environ(FERD_OUTPUT=scratch, OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "PASSIVE"),
                  OMP_NUM_THREADS=threads):
        args = [(source, executed / f"{source.stem}.ipynb", profile, device, root, timeout, overrides[source])
                for source in sources]
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
    with environ(FERD_OUTPUT=scratch):  # the chapters' results (claims, health) are where they wrote them
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
