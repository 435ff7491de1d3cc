"""Example AI methods shipped from their own package: ``price_mentions`` and ``offer_mix``."""

from ad_assets_example_methods.offer_mix import OfferMix
from ad_assets_example_methods.price_mentions import PriceMentions

METHODS = [PriceMentions(), OfferMix()]
