"""Config: precedence, presets (spec 7.3, 10.12), validation errors naming field/value, stable hash."""
import dataclasses

import pytest

from ferd.config import ABLATION_PRESETS, PRESETS, PROFILES, config_from_dict, make_config
from ferd.errors import ConfigError


def test_default_is_cpu_fashion_mnist():
    cfg = make_config()
    assert (cfg.profile, cfg.dataset, cfg.preset) == ("cpu", "fashion_mnist", "ferd")
    assert cfg.distill.class_weight_rule == "softmax" and cfg.distill.gamma == 0.3
    assert cfg.attack.eps == 0.1 and cfg.attack.alpha == 0.025


def test_precedence_profile_preset_override():
    cfg = make_config("smoke", "ferd_no_utae", overrides={"gamma": 0.5})
    assert cfg.distill.batch_size == PROFILES["smoke"]["distill.batch_size"]  # profile
    assert cfg.distill.gamma == 0.5  # explicit override beats the preset's 0
    assert make_config("smoke", "ferd_no_utae").distill.gamma == 0.0


def test_paper_profile_per_dataset_values():
    c10 = make_config("paper", overrides={"device": "cpu"})
    c100 = make_config("paper", overrides={"device": "cpu", "dataset": "cifar100"})
    assert (c10.distill.batch_size, c10.distill.epochs, c10.distill.lr) == (256, 220, 0.1)
    assert (c100.distill.batch_size, c100.distill.epochs, c100.distill.lr) == (512, 320, 0.2)
    assert c10.attack.eps == pytest.approx(8 / 255) and c10.teacher.arch == "wrn-34-10"


def test_dfrd_plain_differs_from_ferd_only_in_three_switches():
    """Spec 10.12 / baselines.md 2: reweighting off, FAE off, gamma 0, nothing else changed."""
    a = dataclasses.asdict(make_config(preset="ferd"))
    b = dataclasses.asdict(make_config(preset="dfrd_plain"))
    diff = {k for k in a["distill"] if a["distill"][k] != b["distill"][k]}
    assert diff == {"use_reweighting", "use_fae", "gamma"}
    assert {k for k in a if k not in ("distill", "preset") and a[k] != b[k]} == set()


def test_released_preset():
    d = make_config(preset="ferd_released").distill
    assert (d.class_weight_rule, d.gamma, d.probe_teacher_mode, d.ikl_mode) == ("minmax", 0.0, "train_leak", "onehot")


@pytest.mark.parametrize("key,value,needle", [
    ("dataset", "mnist", "dataset='mnist'"),
    ("student", "vgg", "student='vgg'"),
    ("eps", 0.0, "attack.eps=0.0"),
    ("eps", 1.5, "attack.eps=1.5"),
    ("pgd_steps", -1, "attack.pgd_steps=-1"),
    ("gamma", -0.1, "distill.gamma=-0.1"),
    ("class_weight_rule", "sqrt", "distill.class_weight_rule='sqrt'"),
    ("device", "cuda:7", "device='cuda:7'"),
    ("device", "tpu", "device='tpu'"),
    ("epochs", "10", "distill.epochs='10'"),
    ("teacher.epochs", 0, "teacher.epochs=0"),
    ("use_fae", 1, "distill.use_fae=1"),
    ("no_such_field", 1, "no_such_field"),
])
def test_bad_values_raise_one_clear_error(key, value, needle):
    with pytest.raises(ConfigError) as err:
        make_config(overrides={key: value})
    assert needle in str(err.value) and "expected" in str(err.value)


def test_unknown_profile_and_preset_list_the_allowed():
    with pytest.raises(ConfigError, match="'cpu'"):
        make_config("laptop")
    with pytest.raises(ConfigError, match="ferd_no_fae"):
        make_config(preset="ferd_no_magic")


def test_hash_is_stable_and_sensitive():
    from ferd.method.methods import eval_key, run_key

    a, b = make_config(), make_config()
    assert run_key(a) == run_key(b) and len(run_key(a)) == 12
    assert run_key(make_config(overrides={"gamma": 0.5})) != run_key(a)
    assert make_config(overrides={"gamma": 0.5}).key("teacher") == a.key("teacher")  # teacher is shared
    assert run_key(make_config(overrides={"device": "auto"})) == run_key(a)  # device not in the hash
    assert eval_key(make_config(overrides={"pgd_steps": 10})) != eval_key(a)
    assert run_key(make_config(overrides={"pgd_steps": 10})) == run_key(a)
    with pytest.raises(ValueError, match="run_key"):
        a.key("run")  # a run key needs its method's field groups


def test_roundtrip_from_dict():
    cfg = make_config("smoke", "ferd_released", overrides={"seed": 3})
    assert config_from_dict(cfg.to_dict()) == cfg


def test_every_preset_builds_for_every_profile():
    for profile in PROFILES:
        for preset in PRESETS:
            make_config(profile, preset, overrides={"device": "cpu"})
    assert set(ABLATION_PRESETS) <= set(PRESETS)


def test_generator_reset_choices():
    assert make_config("paper").distill.generator_reset == "every_round"  # the release (spec 5.2)
    with pytest.raises(ConfigError, match="generator_reset"):
        make_config("cpu", overrides={"generator_reset": "sometimes"})


def test_every_departure_of_the_miniature_is_listed_and_the_paper_profile_keeps_the_release():
    """Issue 10: each departure from the released code is a switch, labelled in the book's list of differences."""
    from pathlib import Path

    from ferd.config.profiles import MINIATURE

    page = (Path(__file__).resolve().parent.parent / "book" / "differences.md").read_text()
    paper, cpu = make_config("paper"), make_config("cpu")
    for key, value in MINIATURE.items():
        field = key.split(".")[-1]
        assert f"`{field}`" in page, f"{key} is not in book/differences.md"
        section, name = key.split(".")
        assert getattr(getattr(cpu, section), name) == value
        assert getattr(getattr(paper, section), name) != value  # the paper profile keeps the release's value


def test_the_differences_page_states_the_cpu_budgets_of_the_code():
    """book/differences.md (M5) prints the cpu schedule in words; it must be the one make_config builds."""
    from pathlib import Path

    page = (Path(__file__).resolve().parent.parent / "book" / "differences.md").read_text()
    row = next(line for line in page.splitlines() if line.startswith("| M5 "))
    cpu = make_config("cpu").distill
    for text in (f"$B = {cpu.batch_size}$", f"{cpu.epochs} epochs", f"$N_G = {cpu.n_g}$", f"$N_S = {cpu.n_s}$",
                 f"generator width {cpu.ngf}", f"UTAE keeps its {cpu.utae_steps} steps"):
        assert text in row, text
