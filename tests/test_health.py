"""Run health (spec 8.0): the checks name what a run misses, and a smoke run yields a complete row."""
from __future__ import annotations

import math

import pytest

from ferd.book.health import failed_checks, run_health, setting
from ferd.config import make_config

HEALTHY = {"agree_pool": 0.9, "agree_pool_worst": 0.7, "nonrobust_mean": 0.6, "max_p_above": 0.0,
           "clean": 0.80, "clean_worst": 0.5, "pgd": 0.6, "pgd_worst": 0.3, "teacher_clean": 0.88,
           "teacher_pgd": 0.72}


def test_a_healthy_row_passes():
    assert failed_checks(HEALTHY) == []


@pytest.mark.parametrize("change, words", [
    ({"agree_pool": 0.057}, "pool agreement 5.7% < 80%"),
    ({"agree_pool_worst": 0.0}, "worst-class agreement 0.0% < 50%"),
    ({"nonrobust_mean": 1.0}, "FAE mask degenerate (100% non-robust)"),
    ({"nonrobust_mean": 0.0}, "FAE mask degenerate (0% non-robust)"),
    ({"max_p_above": 0.9}, "class weights collapsed"),
    ({"clean": 0.5}, "clean 50.0% < 74.8% (85% of the teacher's 88.0%)"),
    ({"pgd": 0.3}, "PGD 30.0% < 54.0% (75% of the teacher's 72.0%)"),
    ({"clean_worst": 0.0}, "a class at 0.0% clean (bar: above 20%)"),
])
def test_each_precondition_is_named_when_missed(change, words):
    failed = failed_checks({**HEALTHY, **change})
    assert len(failed) == 1 and failed[0].startswith(words)


def test_a_narrow_miss_prints_enough_decimals_to_show_it():
    failed = failed_checks({**HEALTHY, "teacher_pgd": 0.7067, "pgd": 0.5297})  # bar 53.0025 %
    assert failed == ["PGD 52.97% < 53.00% (75% of the teacher's 70.7%)"]


def test_data_available_methods_skip_the_synthesis_checks():
    row = {**HEALTHY, "agree_pool": math.nan, "agree_pool_worst": math.nan, "nonrobust_mean": math.nan}
    assert failed_checks(row, uses_generator=False) == []
    assert len(failed_checks(row, uses_generator=True)) == 2  # NaN agreement fails where a generator ran


def test_run_health_of_a_smoke_run(smoke_store, smoke_teacher):
    cfg = make_config("smoke", "ferd", overrides={"attack.attacks": ("clean", "pgd")})
    row = run_health(cfg, smoke_store)
    assert row["preset"] == "ferd" and 0 <= row["agree_pool"] <= 1 and 0 <= row["nonrobust_mean"] <= 1
    assert 0 <= row["pgd"] <= row["clean"] <= 1 and 0 <= row["teacher_clean"] <= 1
    assert isinstance(row["failed"], str)  # a smoke run is not healthy: its failures are listed, not hidden
    assert "agreement" in row["failed"] or row["agree_pool"] >= 0.8
    assert 0.1 <= row["max_p_mean"] <= 1  # smoke data has 10 classes: the largest weight is at least uniform


def test_run_health_has_no_class_weights_for_a_run_that_draws_classes_uniformly(smoke_store, smoke_teacher):
    """Chapter 2 printed "0.0 % of epochs with max p > 0.6" for plain DFRD and RSLAD, a check that cannot apply."""
    cfg = make_config("smoke", "dfrd_plain", overrides={"attack.attacks": ("clean", "pgd")})
    row = run_health(cfg, smoke_store)
    assert math.isnan(row["max_p_mean"]) and math.isnan(row["max_p_above"]) and "class weights" not in row["failed"]


def test_chapter_health_files_merge_into_one_row_per_run(tmp_path, monkeypatch):
    import pandas as pd

    from ferd.book import health, tables

    monkeypatch.setenv("FERD_OUTPUT", str(tmp_path))
    row = {"preset": "ferd", "student": "fmnist-resnet", "seed": 0, "run": "abc", "failed": ""}
    tables.save_results(pd.DataFrame([row]), "health_06_main_table", "cpu")
    tables.save_results(pd.DataFrame([row, {**row, "run": "def", "preset": "dfhl", "failed": "pool agreement 5 % < 80 %"}]),
                        "health_07_ablations", "cpu")
    tables.save_results(pd.DataFrame([{**row, "run": "old"}]), "health_cpu", "cpu")  # not a chapter's file
    merged = health.merged_health("cpu")
    assert sorted(merged["run"]) == ["abc", "def"]
    text = health.health_summary_markdown(merged)
    assert "1 of 2 runs" in text and "| dfhl | fmnist-resnet | 0 | `def` | pool agreement" in text


def test_setting_names_what_a_run_changes_from_its_preset():
    assert setting(make_config("cpu", "ferd", seed=3, student="fmnist-mobilenet")) == ""
    assert setting(make_config("cpu", "ferd", overrides={"distill.gamma": 0.5})) == "distill.gamma=0.5"
    two = setting(make_config("cpu", "ferd", overrides={"class_weight_tau": 2.0, "attack.eps": 0.2}))
    assert "distill.class_weight_tau=2" in two and "attack.eps=0.2" in two


def test_the_landing_page_names_a_variant_run(tmp_path, monkeypatch):
    import pandas as pd

    from ferd.book import health, tables

    monkeypatch.setenv("FERD_OUTPUT", str(tmp_path))
    row = {"preset": "ferd", "setting": "distill.class_weight_tau=2", "student": "fmnist-resnet", "seed": 0,
           "run": "abc", "failed": "PGD 52.4% < 53.0% (75% of the teacher's 70.7%)"}
    tables.save_results(pd.DataFrame([row]), "health_03_reweighting", "cpu")
    tables.save_results(pd.DataFrame([{**row, "run": "old", "failed": "x"}]).drop(columns="setting"),
                        "health_02_diagnosis", "cpu")  # written before the column existed
    text = health.health_summary_markdown(health.merged_health("cpu"))
    assert "| ferd (`distill.class_weight_tau=2`) | fmnist-resnet | 0 | `abc` |" in text
    assert "| ferd | fmnist-resnet | 0 | `old` |" in text
