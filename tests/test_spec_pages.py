"""The specification lives in the book: every section citation in the repository resolves to one of its pages.

Code, notebooks, tests, benchmarks and pages cite the method's sections as "spec 5.6" (or "spec §5.6",
"method.md 4.4"), the baselines' sections as "baselines.md 7.2", and the differences between the paper, the
released code and the miniature by id (D1-D11, M1-M7). This file checks that

(a) every method citation names a label `(spec-N.M)=` of book/spec/method.md (a bare "spec N" may also be
    resolved by any `(spec-N.x)=`);
(b) every baselines citation names a label `(baselines-N.M)=` of book/spec/baselines.md;
(c) every difference id cited anywhere is a row of book/differences.md;
(d) README.md links nothing outside the repository;

and that the spec pages are well formed (each label sits on a heading carrying its number, headings do not skip a
level, labels are unique) and listed in _toc.yml.
"""
from __future__ import annotations

import itertools
import re
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
METHOD_PAGE = ROOT / "book" / "spec" / "method.md"
BASELINES_PAGE = ROOT / "book" / "spec" / "baselines.md"
NOTATION_PAGE = ROOT / "book" / "spec" / "notation.md"
DIFFERENCES_PAGE = ROOT / "book" / "differences.md"
LIMITATIONS_PAGE = ROOT / "book" / "limitations.md"
README = ROOT / "README.md"

SCANNED_DIRS = ("ferd", "notebooks", "tests", "benchmarks")
SCANNED_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".sh", ".txt", ".toml", ".cfg"}

# A section number, and a list or range of them: "5.6", "4.1, §4.3", "2 and 8", "11.2-11.10".
NUM = r"\d+(?:\.\d+)*"
NUMS = rf"§?\s*{NUM}(?:\s*(?:,|and|/|-|–)\s*§?\s*{NUM})*"
METHOD_RE = re.compile(rf"(?:\bspec\s*|\bmethod\.md`?,?\s*(?:sections?\s+)?)(?=§|\d)({NUMS})", re.IGNORECASE)
BASELINES_RE = re.compile(rf"\bbaselines(?:\.md)?`?,?\s*(?:sections?\s+)?(?=§|\d)({NUMS})", re.IGNORECASE)
# D1..D11 and M1..M7, not inside a longer word ("MD5", "D2x"), not an assignment target ("D2 = ...").
DIFF_RE = re.compile(r"(?<![\w.])([DM]\d+)(?![\w])(?!\s*=(?!=))")
LABEL_RE = re.compile(r"^\(([\w.-]+)\)=\s*$", re.MULTILINE)


def _sources() -> list[Path]:
    """Every text file whose citations must resolve: the library, notebooks, tests, benchmarks, pages, README."""
    files = [p for d in SCANNED_DIRS for p in sorted((ROOT / d).rglob("*"))
             if p.is_file() and p.suffix in SCANNED_SUFFIXES and "__pycache__" not in p.parts]
    files += [p for p in sorted((ROOT / "book").rglob("*.md")) if "executed" not in p.relative_to(ROOT).parts]
    files.append(README)
    return [p for p in files if p.resolve() != Path(__file__).resolve()]


def _numbers(group: str) -> list[str]:
    return re.findall(NUM, group)


def _citations(pattern: re.Pattern[str]) -> dict[str, list[str]]:
    """Cited section number -> the files (with line numbers) that cite it."""
    found: dict[str, list[str]] = defaultdict(list)
    for path in _sources():
        text = path.read_text(errors="ignore")
        for m in pattern.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            for number in _numbers(m.group(1)):
                found[number].append(f"{path.relative_to(ROOT)}:{line}")
    return found


def _labels(page: Path, prefix: str) -> set[str]:
    return {name[len(prefix) + 1:] for name in LABEL_RE.findall(page.read_text()) if name.startswith(prefix + "-")}


def _unresolved(cited: dict[str, list[str]], labels: set[str]) -> dict[str, list[str]]:
    """Citations without a label: "N.M" needs its own label; a bare "N" is also resolved by any "N.x"."""
    def resolves(number: str) -> bool:
        return number in labels or ("." not in number and any(lab.startswith(number + ".") for lab in labels))
    return {number: where for number, where in sorted(cited.items()) if not resolves(number)}


def _headings(text: str) -> list[tuple[int, int, str]]:
    """(line index, level, title) of every Markdown heading outside fenced code blocks."""
    out, fenced = [], False
    for i, line in enumerate(text.splitlines()):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        m = re.match(r"^(#{1,6})\s+(.*)$", line)
        if m and not fenced:
            out.append((i, len(m.group(1)), m.group(2)))
    return out


# ------------------------------------------------------------------------------------------------
# (a), (b): section citations
# ------------------------------------------------------------------------------------------------
def test_method_citations_resolve():
    cited = _citations(METHOD_RE)
    assert len(cited) >= 20, f"the citation scan found too little ({sorted(cited)}): is the pattern broken?"
    for must in ("5.6", "2.1", "8.0", "10.10"):
        assert must in cited, f"'spec {must}' is cited in the code but the scan missed it"
    missing = _unresolved(cited, _labels(METHOD_PAGE, "spec"))
    assert not missing, ("citations of the method spec with no (spec-N.M)= label in book/spec/method.md:\n  "
                         + "\n  ".join(f"{n}: {', '.join(w[:4])}" for n, w in missing.items()))


def test_baselines_citations_resolve():
    cited = _citations(BASELINES_RE)
    assert len(cited) >= 8, f"the citation scan found too little ({sorted(cited)}): is the pattern broken?"
    for must in ("4", "7.2", "11.11"):
        assert must in cited, f"'baselines.md {must}' is cited in the code but the scan missed it"
    missing = _unresolved(cited, _labels(BASELINES_PAGE, "baselines"))
    assert not missing, ("citations of the baselines spec with no (baselines-N.M)= label in "
                         "book/spec/baselines.md:\n  "
                         + "\n  ".join(f"{n}: {', '.join(w[:4])}" for n, w in missing.items()))


def test_citation_patterns():
    """The scan reads the forms the repository uses, and not words that merely contain 'spec'."""
    def method(s: str) -> list[str]:
        return [n for m in METHOD_RE.finditer(s) for n in _numbers(m.group(1))]

    def baselines(s: str) -> list[str]:
        return [n for m in BASELINES_RE.finditer(s) for n in _numbers(m.group(1))]

    assert method("(spec 5.8, D10)") == ["5.8"]
    assert method("spec §4.1, §4.3") == ["4.1", "4.3"]
    assert method("Spec §4.2 and §10.1: head") == ["4.2", "10.1"]
    assert method("spec 8: 0.1") == ["8"]
    assert method("spec 5.4(a)") == ["5.4"]
    assert method("baselines.md 9; method.md 4.4") == ["4.4"]
    assert method("kernelspec: 3") == [] and method("SPEC_5_10") == [] and method("the spec's 10 steps") == []
    assert baselines("baselines.md, sections 9 and 11.2-11.10") == ["9", "11.2", "11.10"]
    assert baselines("Baselines.md section 3.") == ["3"]
    assert baselines("[5.9, baselines 8]") == ["8"]
    assert baselines("seven baselines") == []


# ------------------------------------------------------------------------------------------------
# (c): difference ids
# ------------------------------------------------------------------------------------------------
def test_difference_ids_are_rows_of_the_differences_page():
    rows = set(re.findall(r"^\|\s*([DM]\d+)\s*\|", DIFFERENCES_PAGE.read_text(), re.MULTILINE))
    assert rows == {f"D{i}" for i in range(1, 12)} | {f"M{i}" for i in range(1, 8)}, sorted(rows)
    cited: dict[str, list[str]] = defaultdict(list)
    for path in _sources():
        text = path.read_text(errors="ignore")
        for m in DIFF_RE.finditer(text):
            cited[m.group(1)].append(f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, m.start()) + 1}")
    assert {"D1", "D4", "M1", "M7"} <= set(cited), f"the scan missed known citations: {sorted(cited)}"
    missing = {i: w for i, w in sorted(cited.items()) if i not in rows}
    assert not missing, "difference ids cited but absent from book/differences.md: " + repr(missing)


# ------------------------------------------------------------------------------------------------
# (d): the README stays inside the repository
# ------------------------------------------------------------------------------------------------
def test_readme_links_nothing_outside_the_repository():
    text = README.read_text()
    assert "../shared" not in text and "shared/spec" not in text, "README points at the shared spec folder"
    assert not re.search(r"(?<![\w.])/work\b", text), "README names an absolute /work path"
    assert not re.search(r"\b[a-z][a-z0-9+.-]*://", text, re.IGNORECASE), "README links an outside URL"
    for target in re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", text):
        path = target.split("#", 1)[0]
        assert not target.startswith(("/", "..", "~")) and ":" not in path, f"README link leaves the repo: {target}"
        if path:
            resolved = (ROOT / path).resolve()
            assert ROOT in resolved.parents or resolved == ROOT, f"README link leaves the repo: {target}"
            assert resolved.exists(), f"README links a missing file: {target}"


# ------------------------------------------------------------------------------------------------
# The pages themselves
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("page,prefix", [(METHOD_PAGE, "spec"), (BASELINES_PAGE, "baselines")])
def test_each_label_sits_on_the_heading_of_its_number(page, prefix):
    lines = page.read_text().splitlines()
    names = LABEL_RE.findall(page.read_text())
    assert len(names) == len(set(names)), "duplicate labels"
    for i, line in enumerate(lines):
        m = re.match(rf"^\({prefix}-([\d.]+)\)=\s*$", line)
        if not m:
            continue
        heading = lines[i + 1] if i + 1 < len(lines) else ""
        hm = re.match(r"^#{2,6}\s+([\d.]+)\s", heading)
        assert hm and hm.group(1).rstrip(".") == m.group(1), \
            f"{page.name}:{i + 1}: label {m.group(0)} is not followed by the heading '## {m.group(1)} ...'"


@pytest.mark.parametrize("page", [METHOD_PAGE, BASELINES_PAGE, NOTATION_PAGE, LIMITATIONS_PAGE])
def test_headings_start_at_one_title_and_skip_no_level(page):
    heads = _headings(page.read_text())
    assert heads and heads[0][1] == 1, f"{page.name} must start with a '#' title"
    assert sum(1 for _, level, _ in heads if level == 1) == 1, f"{page.name} has more than one '#' title"
    for (_, prev, _), (i, level, title) in itertools.pairwise(heads):
        assert level <= prev + 1, f"{page.name}:{i + 1}: '{title}' skips a heading level"


RAW_HTML = re.compile(r"<(?:/?[a-zA-Z][a-zA-Z0-9]*)(?:\s[^<>]*)?/?>")


def test_no_raw_html_in_the_spec_pages():
    assert RAW_HTML.search("a <b>bold</b> word")  # the pattern catches raw HTML
    for page in (METHOD_PAGE, BASELINES_PAGE, NOTATION_PAGE, LIMITATIONS_PAGE):
        text = re.sub(r"\{doc\}`[^`]*`", "", page.read_text())  # a link's explicit target, {doc}`text <page>`, is MyST
        assert not RAW_HTML.search(text), page.name


def test_the_spec_pages_are_in_the_toc():
    from ferd.book.runner import toc_files

    files = toc_files(ROOT / "_toc.yml")
    for page in (NOTATION_PAGE, METHOD_PAGE, BASELINES_PAGE, LIMITATIONS_PAGE):
        entry = page.relative_to(ROOT).with_suffix("").as_posix()
        assert entry in files, f"_toc.yml does not list {entry}"
