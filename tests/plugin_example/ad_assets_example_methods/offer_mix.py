"""``offer_mix``: how a brand's ads use prices and discounts, read from every picture's ``price_mentions``."""

from __future__ import annotations

from collections import Counter

from pydantic import BaseModel, Field

from ai_methods import RESULTS, AIMethod
from ai_methods.placement import BRAND
from ai_methods.usage import Usage


class OfferMixOutput(BaseModel):
    items: int = Field(ge=0, description="items of the brand that were analysed")
    items_with_offers: int = Field(ge=0, description="items with at least one price or discount on a picture")
    discounts: list[str] = Field(description="distinct discounts, most frequent first")
    prices: list[str] = Field(description="distinct prices, most frequent first")
    summary_tone: str | None = Field(description="the tone summarize_brand found (the cycle before this one)")


class OfferMix(AIMethod):
    """A brand's offers as a whole: how many items carry one, which discounts and prices recur (a brand-level cycle)."""

    name = "offer_mix"
    version = "1"
    accepts = (RESULTS,)
    output_schema = OfferMixOutput
    providers = ("local", "fake")  # counting, not a model: the same on both
    local_model = "count-v1"
    # A second brand-level cycle: after every item's price_mentions, and after summarize_brand.
    applies_to = BRAND
    needs = ("price_mentions", "summarize_brand")

    async def compute(self, inputs, ctx):
        if ctx.kind == "fake":
            await ctx.fake.answer(self.name)
        ctx.add_usage(Usage(requests=1))
        # The pipeline's shape (ai_methods.placement.Target.items, then the earlier cycles); any other
        # list of objects (the harness, the contract) counts what it can.
        items = [r for r in inputs.results if "item_id" in r]
        earlier = {r["cycle"]: r.get("output") or {} for r in inputs.results if "cycle" in r}
        kinds: dict[str, Counter[str]] = {"discount": Counter(), "price": Counter()}
        with_offers = 0
        for item in items:
            found = [
                m
                for unit in item.get("units") or []
                for m in ((unit.get("outputs") or {}).get("price_mentions") or {}).get("mentions", [])
            ]
            with_offers += bool(found)
            for mention in found:
                kinds[mention["kind"]][mention["text"].upper()] += 1
        return OfferMixOutput(
            items=len(items),
            items_with_offers=with_offers,
            discounts=[t for t, _ in kinds["discount"].most_common()],
            prices=[t for t, _ in kinds["price"].most_common()],
            summary_tone=(earlier.get("summarize_brand") or {}).get("tone"),
        )
