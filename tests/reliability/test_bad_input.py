"""Bad input gets one clear error naming the bad value and what is allowed, and writes nothing to the store."""
from __future__ import annotations

import math
import shutil

import pytest
import torch

from ferd.cli import main
from ferd.config import FIELD_TYPES, PRESETS, make_config
from ferd.errors import CheckpointError, ConfigError, DataError
from ferd.toolkit import artifacts

from .support import REPO, ferd_cmd, run_cli, weights

# Wrong type, out of range, not finite: every field gets every value of its type (None = the type's default
# is kept, i.e. the value must be rejected whatever the field).
BAD = {int: ["x", 1.5, True, -1], float: ["x", True, -1.0, math.nan, math.inf], str: [5, "bogus"],
       bool: [1, "yes"], tuple: [5, ("bogus",)]}
CLI_BAD = {int: "-1", float: "-1.0", str: "bogus", bool: "maybe", tuple: "bogus"}


@pytest.mark.parametrize("name", sorted(FIELD_TYPES))
def test_every_config_field_rejects_bad_values(name):
    for value in BAD[FIELD_TYPES[name]]:
        with pytest.raises(ConfigError) as err:
            make_config("smoke", "ferd", {name: value})
        msg = str(err.value)
        assert msg.startswith(f"{name}={value!r} is not allowed; expected "), msg


def _cli(args, capsys, root):
    rc = main(args)
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ferd: error: "), err
    assert not root.exists(), "bad input must not touch the artifact store"
    return lines[0]


def test_every_config_field_via_cli_exits_2_with_one_line(tmp_path, capsys):
    root = tmp_path / "store"
    for name, typ in sorted(FIELD_TYPES.items()):
        line = _cli(["distill", "--profile", "smoke", "--artifacts", str(root), "--set", f"{name}={CLI_BAD[typ]}"],
                    capsys, root)
        assert line.startswith(f"ferd: error: {name}="), line


@pytest.mark.parametrize("overrides, needle", [
    ({"student": "resnet-1000"}, "student='resnet-1000' is not allowed; expected a registered model: "),
    ({"teacher.arch": "vgg"}, "teacher.arch='vgg' is not allowed; expected a registered model: "),
    ({"dataset": "mnist"}, "dataset='mnist' is not allowed; expected one of 'fashion_mnist', 'cifar10'"),
    ({"preset": "nope"}, "preset='nope' is not allowed; expected 'ferd': choose the preset with"),
    ({"profile": "paper"}, "profile='paper' is not allowed; expected 'smoke': choose the profile with"),
    ({"gama": 0.5}, "config key='gama' is not allowed; expected a field of ferd.config.Config"),
    ({"device": "tpu"}, "device='tpu' is not allowed; expected 'auto', 'cpu', 'cuda' or 'cuda:N'"),
])
def test_unknown_names_are_refused(overrides, needle, tmp_path, capsys):
    with pytest.raises(ConfigError, match="^" + needle.replace("(", r"\(").replace(".", r"\.")):
        make_config("smoke", "ferd", overrides)
    root = tmp_path / "store"
    (k, v), = overrides.items()
    assert needle in _cli(["distill", "--profile", "smoke", "--artifacts", str(root), "--set", f"{k}={v}"], capsys,
                          root)


def test_unknown_preset_and_profile_name_the_allowed():
    with pytest.raises(ConfigError, match=r"^preset='ferd_no_magic' is not allowed; expected one of 'ferd', "):
        make_config("smoke", "ferd_no_magic")
    with pytest.raises(ConfigError, match=r"^profile='huge' is not allowed; expected one of 'cpu', 'smoke', "):
        make_config("huge")


def test_cli_choice_errors_exit_2_naming_value_and_choices(tmp_path, capsys):
    """argparse checks --profile/--preset itself: exit 2 and one error line, like ferd's own errors."""
    root = tmp_path / "store"
    for flag, value in (("--preset", "nope"), ("--profile", "huge")):
        with pytest.raises(SystemExit) as exc:
            main(["distill", flag, value, "--artifacts", str(root)])
        assert exc.value.code == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1, lines
        assert lines[0].startswith(f"ferd distill: error: argument {flag}: invalid choice: '{value}' (choose from")
    assert not root.exists()


def test_cli_subprocess_exit_code_and_single_line(tmp_path):
    root = tmp_path / "store"
    p = run_cli(ferd_cmd("distill", "--profile", "smoke", "--artifacts", str(root), "--set", "epochs=0"))
    assert p.returncode == 2
    assert p.stderr == "ferd: error: distill.epochs=0 is not allowed; expected an integer >= 1\n"
    assert p.stdout == "" and not root.exists()


# ------------------------------------------------------------------ papermill
def _chapter_with_parameters():
    for path in sorted((REPO / "notebooks").glob("[0-9][0-9]_*.py")):
        text = path.read_text()
        if 'tags=["parameters"]' in text and "\nseed = " in text and "\nprofile = " in text:
            return path
    return None


def test_papermill_parameter_of_the_wrong_type_fails_with_the_config_error(tmp_path, monkeypatch):
    pm = pytest.importorskip("papermill")
    jupytext = pytest.importorskip("jupytext")
    chapter = _chapter_with_parameters()
    if chapter is None:
        pytest.skip("no chapter in notebooks/ has a parameters cell with profile and seed yet")
    nb = tmp_path / (chapter.stem + ".ipynb")
    jupytext.write(jupytext.read(chapter), nb)
    root = tmp_path / "store"
    monkeypatch.setenv("FERD_ARTIFACTS", str(root))
    monkeypatch.setenv("FERD_OUTPUT", str(tmp_path / "out"))
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    with pytest.raises(pm.PapermillExecutionError) as err:
        pm.execute_notebook(str(nb), str(tmp_path / "out.ipynb"), parameters={"profile": "smoke", "seed": "zero"},
                            kernel_name="python3", cwd=str(tmp_path), progress_bar=False, log_output=False)
    assert err.value.ename == "ConfigError", (chapter.name, err.value.ename, err.value.evalue)
    assert err.value.evalue == "seed='zero' is not allowed; expected an int", chapter.name
    assert not root.exists()


# ------------------------------------------------------------------ datasets
FASHION = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
           "t10k-labels-idx1-ubyte.gz"]


@pytest.fixture
def data_dirs(tmp_path, monkeypatch):
    """FERD_DATA and the Debian folder constant pointed at empty temporary folders; cwd without ./data."""
    import ferd.toolkit.data

    src = next((p for p in ferd.toolkit.data.SYSTEM_DIRS["fashion_mnist"] + [REPO / "data"] if (p / FASHION[0]).exists()),
               None)
    if src is None:
        pytest.skip("Fashion-MNIST is not installed here")
    data, system = tmp_path / "data_env", tmp_path / "system"
    data.mkdir()
    system.mkdir()
    monkeypatch.setenv("FERD_DATA", str(data))
    monkeypatch.setattr(ferd.toolkit.data, "SYSTEM_DIRS", {"fashion_mnist": [system]})
    monkeypatch.chdir(tmp_path)
    return src, data, system


def test_partial_dataset_names_the_missing_file_and_how_to_get_it(data_dirs, tmp_path, capsys):
    from ferd.toolkit.data import load_split

    src, _, system = data_dirs
    for name in FASHION[:3]:
        (system / name).symlink_to(src / name)
    with pytest.raises(DataError) as err:
        load_split("fashion_mnist", "test")
    msg = str(err.value)
    assert f"Fashion-MNIST folder {system} is incomplete: missing t10k-labels-idx1-ubyte (.gz or raw)." in msg
    assert "apt-get install dataset-fashion-mnist" in msg and "FERD_DATA" in msg
    root = tmp_path / "store"  # and through the CLI: exit 2, one line, nothing written
    line = _cli(["distill", "--profile", "smoke", "--artifacts", str(root), "--set", "epochs=2"], capsys, root)
    assert "is incomplete: missing t10k-labels-idx1-ubyte" in line


def test_missing_and_truncated_dataset(data_dirs):
    from ferd.toolkit.data import load_split

    src, data, system = data_dirs
    with pytest.raises(DataError, match=r"^fashion_mnist not found \(searched .*data_env, .*system\)\. Get it with "
                                        r"`apt-get install dataset-fashion-mnist`"):
        load_split("fashion_mnist", "test", download=False)
    for name in FASHION:
        (data / name).symlink_to(src / name)
    (data / FASHION[3]).unlink()
    (data / FASHION[3]).write_bytes((src / FASHION[3]).read_bytes()[:1000])
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz is corrupt or truncated"):
        load_split("fashion_mnist", "test")


# ------------------------------------------------------------------ checkpoints of another architecture
def test_external_teacher_of_another_architecture_names_keys(tmp_path):
    from ferd.method.teachers import load_external_teacher
    from ferd.toolkit.models import create_model

    path = tmp_path / "resnet.pt"
    torch.save({"state_dict": create_model("fmnist-resnet").state_dict()}, path)
    with pytest.raises(CheckpointError) as err:
        load_external_teacher(path, "fmnist-cnn", 10)
    msg = str(err.value)
    assert msg.startswith(f"{path} does not match FashionCNN: missing keys ['body.0.weight', ")
    assert "unexpected keys ['layers.0." in msg
    torch.save(create_model("fmnist-cnn", num_classes=7).state_dict(), path)  # same keys, other shapes
    with pytest.raises(CheckpointError) as err:
        load_external_teacher(path, "fmnist-cnn", 10)
    assert str(err.value) == (f"{path} does not match FashionCNN: missing keys []; unexpected keys []; "
                              "shapes (checkpoint vs model) ['linear.weight (7, 128) vs (10, 128)', "
                              "'linear.bias (7,) vs (10,)']")


def test_stored_teacher_of_another_architecture_is_named_and_replaced(tmp_path, teacher_root, smoke_teacher):
    from ferd.method.teachers import train_teacher
    from ferd.toolkit.models import create_model

    shutil.copytree(teacher_root / "teacher", tmp_path / "teacher", ignore=shutil.ignore_patterns("*.lock"))
    final = next((tmp_path / "teacher").glob("*/teacher.pt"))
    artifacts.save_torch(final, {"state_dict": create_model("fmnist-resnet").state_dict(), "history": {}})
    with pytest.warns(UserWarning, match=r"retraining the teacher: .*teacher\.pt does not match FashionCNN: "
                                         r"missing keys \['body\.0\.weight'.*unexpected keys \['layers\.0\."):
        model, _ = train_teacher(make_config("smoke"), artifacts.ArtifactStore(tmp_path), progress=False)
    assert torch.equal(weights(model.state_dict()), weights(smoke_teacher.state_dict()))


def test_every_preset_name_is_accepted():
    for preset in PRESETS:
        make_config("smoke", preset)


def test_cli_booleans_accept_shell_spellings():
    from ferd.cli import _parse_sets

    assert _parse_sets(["distill.channels_last=true", "distill.use_fae=False", "gamma=0.5"]) == {
        "distill.channels_last": True, "distill.use_fae": False, "gamma": 0.5}
