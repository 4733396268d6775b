"""Artifact store: atomic writes, checksums that catch corruption, get_or_compute reuse."""
import subprocess

import pytest
import torch

from ferd.errors import CheckpointError
from ferd.toolkit import artifacts


def test_roundtrip_and_checksum(tmp_path):
    p = tmp_path / "a" / "x.pt"
    artifacts.save_torch(p, {"w": torch.arange(5)})
    assert artifacts.is_valid(p)
    assert torch.equal(artifacts.load_torch(p)["w"], torch.arange(5))


@pytest.mark.parametrize("damage", ["truncate", "flip", "no_sum"])
def test_corruption_is_detected_and_named(tmp_path, damage):
    p = tmp_path / "x.pt"
    artifacts.save_torch(p, {"w": torch.randn(100)})
    data = p.read_bytes()
    if damage == "truncate":
        p.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        p.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    else:
        (tmp_path / "x.pt.sha256").unlink()
    with pytest.raises(CheckpointError, match="x.pt"):
        artifacts.load_torch(p)


def test_get_or_compute_reuses_and_recomputes_corrupt(tmp_path):
    p = tmp_path / "r.json"
    calls = []

    def compute():
        calls.append(1)
        return {"v": len(calls)}

    assert artifacts.get_or_compute(p, compute, artifacts.save_json, artifacts.load_json) == {"v": 1}
    assert artifacts.get_or_compute(p, compute, artifacts.save_json, artifacts.load_json) == {"v": 1}
    p.write_text('{"v": 99}')  # tampered: checksum no longer matches
    with pytest.warns(UserWarning, match="r.json"):
        assert artifacts.get_or_compute(p, compute, artifacts.save_json, artifacts.load_json) == {"v": 2}


def test_no_temporary_files_left(tmp_path):
    artifacts.save_json(tmp_path / "a.json", {"x": 1})
    assert sorted(f.name for f in tmp_path.iterdir()) == ["a.json", "a.json.sha256"]


def test_provenance_fields():
    prov = artifacts.provenance({"seed": 3})
    assert prov["seed"] == 3 and prov["ferd_version"] and prov["git_commit"]


def test_git_commit_is_dirty_for_code_not_for_outputs(tmp_path):
    """A chapter rewrites results/ and figures/ while it runs; only a change to the code behind it is '+dirty'."""
    from ferd.toolkit.artifacts import git_commit

    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(git + ["init", "-q", str(tmp_path)], check=True)
    for name in ("code.py", "results/table.csv", "figures/fig.png", "book/executed/01.ipynb"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("1")
    subprocess.run(git + ["add", "."], cwd=tmp_path, check=True)
    subprocess.run(git + ["commit", "-qm", "a"], cwd=tmp_path, check=True)
    for name in ("results/table.csv", "figures/fig.png", "book/executed/01.ipynb"):
        (tmp_path / name).write_text("2")
    assert not git_commit(tmp_path / "results").endswith("+dirty"), "outputs are not the code"
    (tmp_path / "code.py").write_text("2")
    assert git_commit(tmp_path / "results").endswith("+dirty")
