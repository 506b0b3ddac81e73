import re
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def pyproject_pins() -> dict[str, str]:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = {}
    for dep in deps:
        name, version = re.fullmatch(r"([A-Za-z0-9_.-]+)==([^;\s]+)", dep).groups()
        pins[name.lower()] = version
    return pins


def test_every_dependency_is_pinned_exactly():
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert all("==" in d for d in deps)
    assert pyproject_pins()["torch"] == "2.13.0"


def test_env_files_agree_with_pyproject():
    pins = pyproject_pins()
    env_files = sorted((REPO / "envs").glob("*.yaml"))
    assert {f.stem for f in env_files} == {"data", "train", "analysis"}
    for env in env_files:
        spec = yaml.safe_load(env.read_text())
        pip = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict))
        for line in pip:
            if line.startswith("-e"):
                continue
            name, version = line.split("==")
            assert pins.get(name.lower()) == version, f"{env.name}: {line} vs pyproject {pins.get(name.lower())}"
