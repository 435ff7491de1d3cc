"""The worked example in the README ("Writing an AI method") runs as written.

Why: a guide whose example does not run teaches the wrong thing; this executes
the method and the test code blocks from the page itself, and checks that the
page shows the example package (tests/plugin_example) exactly as it is.
"""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "README.md"  # section "Writing an AI method"
PACKAGE = REPO / "tests" / "plugin_example" / "ad_assets_example_methods"


def _block(first_line: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    return next(b for b in blocks if b.startswith(first_line))


@pytest.mark.parametrize("name", ["price_mentions", "offer_mix"])
def test_the_page_shows_the_example_package_as_it_is(name):
    block = _block(f"# ad_assets_example_methods/{name}.py")
    assert block.split("\n", 1)[1] == (PACKAGE / f"{name}.py").read_text()


@pytest.fixture
def doc_package(monkeypatch):
    """The README's ``price_mentions`` block, executed as the module the README's tests import."""
    module = types.ModuleType("ad_assets_example_methods.price_mentions")
    # In sys.modules before it runs: pydantic resolves the block's annotations through it, not the installed module.
    monkeypatch.setitem(sys.modules, "ad_assets_example_methods.price_mentions", module)
    block = _block("# ad_assets_example_methods/price_mentions.py")
    exec(compile(block, "price_mentions.py", "exec"), module.__dict__)
    module.METHODS = [module.PriceMentions()]
    return module


async def test_the_docs_method_and_its_tests_run(doc_package, local_runner):
    tests: dict = {}
    exec(compile(_block("# tests/test_price_mentions.py"), "test_price_mentions.py", "exec"), tests)
    assert doc_package.METHODS[0].name == "price_mentions"
    await tests["test_local_finds_prices"](local_runner)
    await tests["test_remote_prompt_and_parsing"]()
    from ai_methods.testing import acheck_method_contract

    await acheck_method_contract(doc_package.PriceMentions(), providers=("fake", "local"))


async def test_the_docs_harness_output(doc_package, tmp_path):
    from ai_methods.harness import run_method_on_inputs
    from ai_methods.registry import register_method, unregister_method

    register_method(doc_package.PriceMentions)
    try:
        out = await run_method_on_inputs(
            "price_mentions", ["Fresh coffee, now 20% off: only $3.99"], env={"AD_ASSETS_HOME": str(tmp_path)}
        )
    finally:
        unregister_method("price_mentions")
    assert out["result"] == {
        "mentions": [{"text": "20% off", "kind": "discount"}, {"text": "$3.99", "kind": "price"}],
        "count": 2,
        "summary": "discount 20% off; price $3.99",
    }
