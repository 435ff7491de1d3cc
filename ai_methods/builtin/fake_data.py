"""Vocabulary for the fake provider's deterministic answers (plausible, obviously synthetic)."""

from __future__ import annotations

import random

OBJECTS = ["cup", "bottle", "car", "phone", "shoe", "laptop", "dog", "sofa", "watch", "bicycle", "plate", "bag"]
SCENES = ["kitchen", "street", "studio", "beach", "office", "park", "living room", "store"]
SUBJECTS = ["a person", "a product", "a group of friends", "a family", "a storefront", "a close-up of food"]
ACTIONS = ["smiling", "holding a product", "walking", "pouring a drink", "using a phone", "driving"]
MOODS = ["cheerful", "calm", "energetic", "premium", "playful", "warm"]
PHRASES = [
    "FRESH COFFEE",
    "SAVE 20% TODAY",
    "NEW COLLECTION",
    "FREE DELIVERY",
    "SHOP NOW",
    "LIMITED OFFER",
    "VISIT OUR STORE",
]
WORDS = ["fresh", "coffee", "every", "morning", "visit", "our", "store", "today", "and", "save", "twenty", "percent"]
THEMES = ["everyday freshness", "value", "convenience", "quality", "community", "seasonal offers"]
CTAS = ["Shop now", "Visit our store today", "Order online", "Sign up for offers"]
STYLES = ["bold type on warm photography", "minimal flat colours", "lifestyle photography", "product close-ups"]
TONES = ["friendly and upbeat", "urgent and promotional", "calm and premium"]


def pick(rng: random.Random, pool: list[str], low: int, high: int) -> list[str]:
    """``low..high`` distinct items of ``pool`` in a deterministic order."""
    return rng.sample(pool, rng.randint(low, min(high, len(pool))))
