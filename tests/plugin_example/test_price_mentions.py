"""The README's "Testing it" example, run as written against the example package (its own tests)."""

from ai_methods.testing import ReplayClient, check_method_contract
from ai_methods import AISettings, MethodRunner
from ad_assets_example_methods.price_mentions import PriceMentions


def test_contract():
    # schema validity, version, InvalidInputError on bad or wrongly-typed input,
    # determinism on the fake provider; also checks that it runs on local
    check_method_contract(PriceMentions(), providers=("fake", "local"))


async def test_local_finds_prices(local_runner):
    out = (await local_runner.run(PriceMentions(), text="Now 20% off: only $3.99")).output
    assert [m["text"] for m in out["mentions"]] == ["20% off", "$3.99"]


async def test_remote_prompt_and_parsing():
    client = ReplayClient(chat=[{"mentions": [{"text": "$3.99", "kind": "price"}], "count": 0}])
    runner = MethodRunner(AISettings(), cache=None, clients={"openai": client})
    out = (await runner.run(PriceMentions(), text="only $3.99", provider="openai")).output
    assert out["count"] == 1
    assert "only $3.99" in client.calls("chat_json")[0].kwargs["prompt"]
