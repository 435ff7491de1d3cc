"""The error family of reading media files: a short ``cause`` code for the rows, and a ``detail`` for people."""

from __future__ import annotations


class MediaError(Exception):
    """A media file could not be measured or decoded; ``cause`` is a short code, ``detail`` says what went wrong."""

    def __init__(self, cause: str, detail: str) -> None:
        super().__init__(detail)
        self.cause = cause
        self.detail = detail
