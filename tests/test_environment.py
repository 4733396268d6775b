"""environment.yml and the pip requirements name the same packages and versions."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _pins(lines):
    out = {}
    for line in lines:
        m = re.match(r"^\s*(?:#\s*)?-?\s*([A-Za-z0-9_.\-]+)==([^\s#]+)\s*$", line)
        if m:
            out[m.group(1).lower().replace("_", "-")] = m.group(2)
    return out


def test_environment_yml_matches_requirements():
    req = _pins((ROOT / "requirements.txt").read_text().splitlines())
    req.update(_pins((ROOT / "requirements-nodeps.txt").read_text().splitlines()))
    env = _pins((ROOT / "environment.yml").read_text().splitlines())
    assert req == env
    for must in ("torch", "torchvision", "jupyter-book", "myst-nb", "sphinx", "jupytext", "papermill",
                 "matplotlib", "seaborn", "pandas", "torchattacks", "pyautoattack", "tqdm"):
        assert must in req, must
    assert (req["torch"], req["torchvision"], req["jupyter-book"]) == ("2.14.1", "0.29.1", "1.0.4.post1")
    assert (req["torchattacks"], req["pyautoattack"]) == ("3.5.1", "0.2.0")


def test_ci_calls_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make test" in ci
    assert "dataset-fashion-mnist" in ci
