"""Generators of real-world media kinds, each member with the values a player shows.

Ad sources hand out rotated phone videos, EXIF photos, animated banners,
duration-less WebM, late-starting timelines, odd bit depths and audio-only
spots. Each generator makes one member of such a kind in memory (Pillow, PyAV)
and returns it with its truth, so tests assert the right values, not just that
nothing raised.
"""

from functools import cache
from pathlib import Path
from typing import Callable, TypeVar

Member = TypeVar("Member")


def made_on_first_use(directory: Path, make: Callable[[Path, str], Member]) -> Callable[[str], Member]:
    """``get(name)``: the member ``make(directory, name)`` made once, when first asked for."""

    @cache
    def get(name: str) -> Member:
        return make(directory, name)

    return get
