"""The error of the decoding layer: a short ``cause`` code for the rows, and a ``detail`` for people."""

from __future__ import annotations

from ai_methods.errors import InvalidInputError

# The causes the layer raises; acquisition records them as a URL's ``cause``.
CORRUPT_MEDIA = "corrupt_media"
TOO_MANY_PIXELS = "too_many_pixels"
TOO_LONG = "too_long"
NO_MEDIA_STREAM = "no_media_stream"


class MediaDecodeError(InvalidInputError):
    """A media file could not be read as a player would show it.

    ``cause`` is one of ``corrupt_media``, ``too_many_pixels``, ``too_long``,
    ``no_media_stream``; ``detail`` says what was found and what the limit is.
    """

    def __init__(self, cause: str, detail: str) -> None:
        super().__init__(detail)
        self.cause = cause
        self.detail = detail
