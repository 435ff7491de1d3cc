"""The worked example in the README ("Writing an AI method") runs as written.

Why: a guide whose example does not run teaches the wrong thing; this executes
the method and the test code blocks from the page itself.
"""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "README.md"  # section "Writing an AI method"


def _block(first_line: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    return next(b for b in blocks if b.startswith(first_line))


@pytest.fixture
def doc_package(monkeypatch):
    package = types.ModuleType("my_ad_methods")
    package.__path__ = []
    module = types.ModuleType("my_ad_methods.price_mentions")
    exec(compile(_block("# my_ad_methods/price_mentions.py"), "price_mentions.py", "exec"), module.__dict__)
    monkeypatch.setitem(sys.modules, "my_ad_methods", package)
    monkeypatch.setitem(sys.modules, "my_ad_methods.price_mentions", module)
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
    }
