"""The container image installs deploy/requirements.lock with --no-deps: a dependency added to
pyproject.toml but not to the lock would be missing from the image and only fail there."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_every_runtime_and_speech_dependency_is_in_the_image_lock():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in project["dependencies"] + project["optional-dependencies"]["speech"]}
    locked = {
        _name(line) for line in (REPO / "deploy" / "requirements.lock").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    }  # fmt: skip
    assert wanted - locked == set(), "regenerate deploy/requirements.lock (see deploy/install_image.sh)"
