"""Every registered method passes the contract: on the fake provider, and runs on local.

Why: the pipeline treats all methods alike (schema-valid JSON, a version for
the cache and staleness, ``InvalidInputError`` on bad input, deterministic
fakes for its own tests), so a method that breaks the contract breaks the
pipeline for everyone. New methods are picked up from the registry.
"""

from __future__ import annotations

import pytest

from ai_methods import PICTURE, TEXT, AIMethod, list_methods
from ai_methods.errors import InvalidInputError
from ai_methods.testing import acheck_method_contract, check_method_contract

METHODS = list_methods()


def test_the_builtin_methods_are_registered():
    names = {m.name for m in METHODS}
    assert names >= {
        "caption", "labels", "ocr_text", "transcribe_speech", "embed_image",
        "embed_text", "detect_faces", "dominant_colors", "summarize_brand",
    }  # fmt: skip


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
async def test_contract_on_fake_and_local(method, local_provider):
    checks = await acheck_method_contract(method, providers=("fake", "local"), local=local_provider)
    assert "attributes" in checks
    for kind in method.accepts:
        assert {
            f"fake:{kind}:schema",
            f"fake:{kind}:deterministic",
            f"local:{kind}:schema",
            f"fake:{kind}:invalid",
        } <= set(checks)
    if method.applies_to is not None:  # placed in the pipeline: it ran on what the pipeline gives it
        assert {"fake:pipeline", "local:pipeline"} <= set(checks)


def test_the_plugged_example_methods_are_picked_up():
    names = {m.name: type(m).__module__ for m in METHODS}
    assert names["price_mentions"].startswith("ad_assets_example_methods") and "offer_mix" in names


def test_a_placed_method_whose_pipeline_inputs_it_cannot_take_fails_the_contract():
    class Mislaid(AIMethod):
        name, version, accepts, providers = "mislaid", "1", (TEXT,), ("fake",)
        output_schema = {"type": "object"}
        applies_to, needs = PICTURE, ("ocr_text",)

        def pipeline_inputs(self, target):
            return {"image": target.picture}  # it accepts text only

        async def compute(self, inputs, ctx):
            return {"n": len(inputs.text)}

    with pytest.raises(InvalidInputError, match="mislaid: does not accept image"):
        check_method_contract(Mislaid())


def test_the_sync_entry_point_works_outside_an_event_loop():
    method = next(m for m in METHODS if m.name == "embed_text")
    assert "fake:text:deterministic" in check_method_contract(method)
