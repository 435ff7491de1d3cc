"""The local Dagster instance the CLI runs through, so its runs show in the UI."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import dagster as dg

from ad_assets.partitions import BRANDS
from ad_assets.settings import Settings

REPO_DAGSTER_YAML = Path(__file__).resolve().parents[1] / "dagster.yaml"


def ensure_dagster_home(settings: Settings) -> Path:
    """Point ``DAGSTER_HOME`` at ``$AD_ASSETS_HOME/dagster`` unless the user set it.

    The repository's ``dagster.yaml`` is copied there on first use, so the CLI
    and ``ad-assets dev`` share one instance (runs, partitions, history).
    """
    home = os.environ.get("DAGSTER_HOME", "").strip()
    path = Path(home) if home else settings.home / "dagster"
    path.mkdir(parents=True, exist_ok=True)
    target = path / "dagster.yaml"
    if not target.exists() and REPO_DAGSTER_YAML.exists():
        shutil.copyfile(REPO_DAGSTER_YAML, target)
    os.environ["DAGSTER_HOME"] = str(path.resolve())
    return path.resolve()


def local_instance(settings: Settings) -> dg.DagsterInstance:
    """The persistent local instance (``DAGSTER_HOME``)."""
    ensure_dagster_home(settings)
    return dg.DagsterInstance.get()


def ensure_brand_partition(instance: dg.DagsterInstance, brand: str) -> bool:
    """Add the brand's partition if missing; True when it was added."""
    if instance.has_dynamic_partition(BRANDS, brand):
        return False
    instance.add_dynamic_partitions(BRANDS, [brand])
    return True
