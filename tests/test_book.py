"""The book: toc and parameters contract, the runner on a miniature book, and the real book at `smoke`.

The real build runs once per session (module fixture, a few minutes on 2 cores); its chapter pages are then
opened in headless Chromium (Debian package `chromium`) to check what a reader sees: a table, a figure whose
file exists, and no broken local link. Screenshots are kept in the test's temporary folder.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
from pathlib import Path

import pytest

from ferd.book import runner as book
from ferd.book.params import chapter_parameters
from ferd.book.runner import BookError, chapters, run_book, toc_chapters

ROOT = book.ROOT
CHROMIUM = shutil.which("chromium") or (Path("/usr/bin/chromium") if Path("/usr/bin/chromium").exists() else None)

TINY = '''\
# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # {n}. Tiny chapter
#
# The profile was {{glue:text}}`ch{n:02d}_profile`.

# %% tags=["parameters"]
profile = "cpu"  # profile
seed = 0  # seed
device = "cpu"  # device

# %%
import matplotlib.pyplot as plt
import pandas as pd
from myst_nb import glue

glue("ch{n:02d}_profile", profile, display=False)
{fail}
pd.DataFrame({{"profile": [profile], "device": [device], "seed": [seed]}})

# %%
fig, ax = plt.subplots(figsize=(2, 1.5))
ax.plot([0, 1], [1, 0])
plt.show()
'''


def _tiny_root(path: Path) -> Path:
    """A miniature repository: two chapters, the real _config.yml, a toc of its own."""
    (path / "notebooks").mkdir(parents=True)
    (path / "book").mkdir()
    for n in (1, 2):
        (path / "notebooks" / f"{n:02d}_tiny.py").write_text(TINY.format(n=n, fail=""))
    shutil.copy2(ROOT / "_config.yml", path / "_config.yml")
    (path / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n"
                                   "  - file: book/executed/01_tiny\n  - file: book/executed/02_tiny\n"
                                   "  - file: book/status\n  - file: book/paper_numbers\n")
    (path / "book" / "intro.md").write_text("# Mini\n\nA miniature book for the runner's test.\n")
    return path


# ------------------------------------------------------------------------------------------------
# Fast checks of the contract between the toc and the notebooks
# ------------------------------------------------------------------------------------------------
def test_toc_lists_exactly_the_notebooks():
    listed = [Path(f).name for f in toc_chapters(ROOT / "_toc.yml")]
    present = [p.stem for p in chapters(ROOT)]
    assert listed == sorted(listed), "the toc lists the chapters in number order"
    assert listed == present, f"_toc.yml lists {listed}, notebooks/ holds {present}"


@pytest.mark.parametrize("source", chapters(ROOT), ids=lambda p: p.stem)
def test_notebook_has_parameters_cell(source):
    missing = {"profile", "seed", "device"} - set(chapter_parameters(source))
    assert not missing, f"{source.name}: parameters cell lacks {sorted(missing)}"


def test_select_chapters():
    sources = [Path("notebooks/01_a.py"), Path("notebooks/05_utae.py")]
    assert book.select_chapters(sources, None) == sources
    assert book.select_chapters(sources, "05") == book.select_chapters(sources, 5) == [sources[1]]
    assert book.select_chapters(sources, ["5", "01_a"]) == [sources[1], sources[0]]
    with pytest.raises(book.ConfigError, match="only"):
        book.select_chapters(sources, "07")


def test_cli_only_takes_several_chapters():
    """`--only 01 --only 04` executes both chapters (argparse would otherwise keep the last one silently)."""
    from ferd.cli import build_parser

    args = build_parser().parse_args(["book", "--only", "01", "--only", "04"])
    assert book.select_chapters([Path("notebooks/01_a.py"), Path("notebooks/04_b.py"), Path("notebooks/05_c.py")],
                                args.only) == [Path("notebooks/01_a.py"), Path("notebooks/04_b.py")]


# ------------------------------------------------------------------------------------------------
# The runner on a miniature book: execution, status, --only, a failing chapter, the build
# ------------------------------------------------------------------------------------------------
def test_runner_on_a_miniature_book(tmp_path, monkeypatch):
    monkeypatch.setenv("FERD_OUTPUT", str(tmp_path / "output"))
    root = _tiny_root(tmp_path / "repo")
    index = run_book(profile="smoke", root=root)
    assert index == root / "_build" / "html" / "index.html" and index.exists()
    for n in (1, 2):
        page = (root / "_build" / "html" / "book" / "executed" / f"{n:02d}_tiny.html").read_text()
        assert "The profile was" in page and "smoke" in page  # papermill parameter reached the glue
    status = (root / "book" / "status.csv").read_text().splitlines()
    assert status[0] == "chapter,seconds,profile,date" and len(status) == 3
    assert "01_tiny" in (root / "book" / "status.md").read_text()
    assert "t1.c10.rn18.ferd.aa.avg" in (root / "book" / "paper_numbers.md").read_text()

    # a failing chapter keeps the last good executed notebook and its status row; the partial one is kept aside
    good = (root / "book" / "executed" / "02_tiny.ipynb").read_bytes()
    (root / "notebooks" / "02_tiny.py").write_text(TINY.format(n=2, fail="raise RuntimeError('boom')"))
    with pytest.raises(BookError, match="02_tiny"):
        run_book(profile="cpu", only="02", root=root, build=False)
    assert (root / "book" / "executed" / "02_tiny.ipynb").read_bytes() == good
    assert (root / "book" / "failed" / "02_tiny.ipynb").exists()
    assert (root / "book" / "status.csv").read_text().splitlines() == status

    # an override reaches the kernel, and the page shows it (the injected cell is kept, not removed)
    run_book(profile="smoke", only="01", root=root, build=False, params={"01": {"seed": 7}})
    cells = json.loads((root / "book" / "executed" / "01_tiny.ipynb").read_text())["cells"]
    injected = next(c for c in cells if "injected-parameters" in c["metadata"]["tags"])
    assert "seed = 7" in "".join(injected["source"]) and "remove-cell" not in injected["metadata"]["tags"]
    assert "".join(injected["source"]).startswith("# Parameters of this run")
    assert any("<td>7</td>" in "".join(o.get("data", {}).get("text/html", "")) for c in cells
               for o in c.get("outputs", [])), "the kernel ran with seed 7"
    with pytest.raises(book.ConfigError, match="seed"):
        run_book(profile="smoke", root=root, build=False, params={"01": {"sede": 7}})


def test_runner_refuses_bad_arguments(tmp_path):
    root = _tiny_root(tmp_path)
    with pytest.raises(book.ConfigError, match="profile"):
        run_book(profile="gpu", root=root)
    with pytest.raises(book.ConfigError, match="only"):
        run_book(profile="smoke", only="09", root=root)


# ------------------------------------------------------------------------------------------------
# The real book at the smoke profile, built once, then read in a browser
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def smoke_book(tmp_path_factory):
    if not chapters(ROOT):
        pytest.skip("no chapter notebooks in notebooks/ yet")
    tmp = tmp_path_factory.mktemp("smoke_book")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FERD_OUTPUT", str(tmp / "output"))
        mp.setenv("FERD_ARTIFACTS", str(tmp / "artifacts"))
        index = run_book(profile="smoke", out=tmp / "book")
    return index


def test_smoke_book_has_every_chapter(smoke_book):
    html = smoke_book.parent
    assert smoke_book.exists()
    for source in chapters(ROOT):
        assert (html / "book" / "executed" / f"{source.stem}.html").exists(), source.stem
    for page in ("status", "paper_numbers", "reproduce", "references"):
        assert (html / "book" / f"{page}.html").exists(), page
    # the committed executed notebooks were not touched: the build ran in its own folder
    assert smoke_book.parents[2] != ROOT


def _render(page: Path, shot: Path, profile_dir: Path) -> str:
    """The DOM of `page` after Chromium rendered it (and a screenshot); network access is blocked."""
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile_dir}",
           "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost", "--window-size=1280,2000",
           "--virtual-time-budget=15000",  # let MathJax typeset before the DOM is dumped
           f"--screenshot={shot}", "--dump-dom", page.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def _local_target(page: Path, ref: str) -> Path | None:
    url = urllib.parse.urlparse(urllib.parse.urljoin(page.as_uri(), ref))
    if url.scheme != "file":
        return None
    return Path(urllib.parse.unquote(url.path))


def _check_image(path: Path) -> None:
    from PIL import Image

    assert path.exists() and path.stat().st_size > 0, f"missing or empty image {path}"
    if path.suffix == ".svg":
        assert b"<svg" in path.read_bytes()[:4096], path
        return
    with Image.open(path) as im:
        im.verify()


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (Debian: apt-get install chromium)")
def test_chapter_pages_in_a_browser(smoke_book, tmp_path):
    from bs4 import BeautifulSoup

    html = smoke_book.parent
    problems = []
    for source in chapters(ROOT):
        page = html / "book" / "executed" / f"{source.stem}.html"
        shot = tmp_path / f"{source.stem}.png"
        soup = BeautifulSoup(_render(page, shot, tmp_path / "chromium-profile"), "html.parser")
        assert shot.exists() and shot.stat().st_size > 0, f"no screenshot of {source.stem}"
        main = soup.find("main") or soup
        if not main.find("table"):
            problems.append(f"{source.stem}: no <table>")
        if not main.find("img"):
            problems.append(f"{source.stem}: no <img>")
        if "math notranslate" in page.read_text() and not soup.find("mjx-container"):
            problems.append(f"{source.stem}: maths not typeset (the bundled MathJax, vendor/mathjax, did not run)")
        for img in soup.find_all("img"):
            src = img.get("src", "")
            if src.startswith("data:"):
                continue
            target = _local_target(page, src)
            if target is None:
                problems.append(f"{source.stem}: external image {src} (the book must work offline)")
            else:
                _check_image(target)
        for a in soup.find_all("a", href=True):
            target = _local_target(page, a["href"])
            if target is not None and a["href"].split("#")[0] and not target.exists():
                problems.append(f"{source.stem}: broken link {a['href']}")
    assert not problems, "\n".join(problems)


WIDTH_PROBE = """<script>
window.addEventListener('load', () => setTimeout(() => {
  const measure = () => {
    const main = document.querySelector('main article') || document.querySelector('main') || document.body;
    const limit = main.getBoundingClientRect().right + 2;
    const tables = [...main.querySelectorAll('table')].map((t, i) => {
      const r = t.getBoundingClientRect();
      const cap = (t.querySelector('caption') || {}).textContent || t.textContent.slice(0, 60);
      return [i, Math.round(r.width), Math.round(r.right), Math.round(limit), cap.replace(/\\s+/g, ' ').slice(0, 80)];
    });
    const maths = [...main.querySelectorAll('mjx-container[display="true"]')].map((m, i) =>
      [i, m.scrollWidth, m.clientWidth, (m.getAttribute('aria-label') || m.textContent).slice(0, 80)]);
    const pre = document.createElement('pre'); pre.id = 'ferd-widths';
    pre.textContent = JSON.stringify({tables: tables, maths: maths}); document.body.appendChild(pre);
  };
  const typeset = window.MathJax && MathJax.startup && MathJax.startup.promise;
  (typeset || Promise.resolve()).then(measure);
}, 500));
</script>"""


def _widths(page: Path, tmp: Path) -> dict[str, list[list]]:
    """What Chromium lays out at 1280 px, once MathJax has typeset: `tables`, [index, width, right edge, page's
    right edge, caption] of every table, and `maths`, [index, content width, box width, text] of every display
    equation; from a copy of the page with a measuring script, rendered from the same folder (relative links)."""
    from bs4 import BeautifulSoup

    probe = page.with_name(f".probe-{page.name}")
    probe.write_text(page.read_text().replace("</body>", WIDTH_PROBE + "</body>"))
    try:
        dom = _render(probe, tmp / f"{page.stem}-widths.png", tmp / "chromium-profile")
    finally:
        probe.unlink()
    found = BeautifulSoup(dom, "html.parser").find(id="ferd-widths")
    assert found is not None, f"the width probe did not run on {page.name}"
    return json.loads(found.text)


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (Debian: apt-get install chromium)")
def test_landing_page_and_no_table_or_equation_wider_than_its_page(smoke_book, tmp_path):
    """The landing page renders the findings table, and no table or display equation of any page runs past the
    page's text column (a reader would need a horizontal scroll to see its end)."""
    from bs4 import BeautifulSoup

    html = smoke_book.parent
    intro = html / "book" / "intro.html"
    soup = BeautifulSoup(_render(intro, tmp_path / "intro.png", tmp_path / "chromium-profile"), "html.parser")
    text = soup.get_text(" ")
    assert "Findings" in text and ("verdict" in text or "No chapter has recorded a claim" in text)
    too_wide = []
    appendix = sorted(p for p in (html / "book").rglob("*.html") if "executed" not in p.parts and p != intro)
    assert any(p.parent.name == "spec" for p in appendix), "the appendix's spec pages were not built"
    for page in [intro, *(html / "book" / "executed" / f"{s.stem}.html" for s in chapters(ROOT)), *appendix]:
        widths = _widths(page, tmp_path)
        for i, width, right, limit, caption in widths["tables"]:
            if right > limit:
                too_wide.append(f"{page.stem} table {i} ({width} px, ends at {right} > {limit}): {caption}")
        for i, content, box, text in widths["maths"]:
            if content > box + 1:
                too_wide.append(f"{page.stem} equation {i} ({content} px in a {box} px column): {text}")
    assert not too_wide, "tables or equations wider than the page:\n" + "\n".join(too_wide)


def test_no_table_shows_a_bare_index(smoke_book):
    """A row label of 0, 1, 2, ... says nothing to a reader: every table has a named index or none."""
    from bs4 import BeautifulSoup

    html = smoke_book.parent
    bare = []
    for page in [html / "book" / "intro.html", *(html / "book" / "executed" / f"{s.stem}.html" for s in chapters(ROOT))]:
        main = BeautifulSoup(page.read_text(), "html.parser").find("main")
        for i, table in enumerate(main.find_all("table") if main else []):
            body = table.find("tbody") or table
            heads = [row.find("th") for row in body.find_all("tr")]
            labels = [h.get_text(strip=True) for h in heads if h is not None]
            if len(labels) >= 2 and labels == [str(k) for k in range(len(labels))]:
                bare.append(f"{page.stem} table {i}: " + table.get_text(" ", strip=True)[:80])
    assert not bare, "tables with a bare 0, 1, 2, ... index:\n" + "\n".join(bare)
