"""Every variable the AI settings read is in the README's tables.

Why: an undocumented setting is one an operator cannot find (the Transcribe
bucket was only in a docstring). The names are taken from the source that
reads them, so a new setting without a README row fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import ai_methods.providers.provider_settings as provider_settings
import ai_methods.settings as ai_settings

README = Path(__file__).resolve().parents[2] / "README.md"


def _names_read_by(module) -> set[str]:
    source = Path(module.__file__).read_text(encoding="utf-8")
    return set(re.findall(r'"((?:AD_ASSETS|AWS|OPENAI)_[A-Z0-9_]+)"', source))


def test_every_provider_setting_has_a_readme_row():
    readme = README.read_text(encoding="utf-8")
    names = _names_read_by(provider_settings) | _names_read_by(ai_settings)
    assert "AD_ASSETS_TRANSCRIBE_BUCKET" in names, "the scan finds the settings"
    missing = sorted(name for name in names if f"`{name}" not in readme and f" {name}`" not in readme)
    assert not missing, f"settings missing from README.md: {missing}"
