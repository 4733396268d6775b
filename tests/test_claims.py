"""The findings table: claims are validated, merged from every chapter, and rendered with links."""
import pytest

from ferd.book import claims
from ferd.book.verdicts import compare_paired
from ferd.errors import ConfigError


def test_a_claim_names_a_known_paper_record_and_a_known_verdict():
    with pytest.raises(ConfigError, match="verdict"):
        claims.Claim("x", "06_main_table", "+1", "probably", "eyeballed")
    with pytest.raises(ConfigError, match="paper_key"):
        claims.Claim("x", "06_main_table", "+1", "supported", "t", paper_key="no.such.key")


def test_comparison_claims_merge_across_chapters_and_render(tmp_path, monkeypatch):
    monkeypatch.setenv("FERD_OUTPUT", str(tmp_path))
    c = compare_paired([5.0, 6.0, 7.0], [4.0, 4.5, 5.5])
    row = claims.comparison_claim("FERD raises the weakest class", "06_main_table", c,
                                  paper_key="gain.c10.mnv2.pgd.worst", resolution="0.1 points")
    assert row.verdict == "supported" and row.paper.startswith("+5.7 points (CIFAR-10, MN-V2")
    claims.save_claims([row], "06_main_table", "cpu")
    claims.save_claims([claims.Claim("the teacher's weakest class is Shirt", "01_teacher", "Shirt, 54.7 %",
                                     "supported", "direct measurement", origin="book")], "01_teacher", "cpu")
    merged = claims.merged_claims("cpu")
    assert list(merged["chapter"]) == ["01_teacher", "06_main_table"]
    text = claims.claims_markdown(merged)
    assert "{doc}`executed/06_main_table`" in text and "**supported**" in text and "added by this book" in text
    assert "paired t interval over 3 seeds" in text


def test_no_claims_yet_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("FERD_OUTPUT", str(tmp_path))
    assert "No chapter has recorded a claim" in claims.claims_markdown(claims.merged_claims("cpu"))
