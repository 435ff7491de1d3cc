"""What a person can do about a URL that failed, by the ``cause`` code raw_media recorded for it."""

from __future__ import annotations

ADVICE = {
    "invalid_url": "Fix the URL in the brand's list (only http and https URLs with a host are fetched).",
    "blocked_address": "The host resolves to a private or loopback address; add it to AD_ASSETS_ALLOW_HOSTS "
    "only if it really must be fetched.",
    "dns_error": "Check the host name; if it is right, the next run retries it.",
    "connect_error": "The server did not answer; the next run retries it.",
    "timeout": "The server was too slow; the next run retries it.",
    "tls_error": "The server's certificate was refused; ask the source for a valid HTTPS URL.",
    "protocol_error": "The server's reply was broken; the next run retries it.",
    "too_large": "The file is above the size limit; raise the downloader's max_bytes if it is a real ad.",
    "truncated": "The download stopped early; the next run retries it.",
    "too_many_redirects": "The URL redirects in a loop; use the final URL of the media.",
    "bad_redirect": "The URL redirects somewhere that cannot be fetched; use the final URL of the media.",
    "unsupported_type": "The URL serves no image, video or audio (often a web page): use the media file's URL.",
    "corrupt_media": "The file does not decode; ask the source for an intact copy.",
    "too_many_pixels": "The picture is above the pixel limit; ask for a smaller rendition.",
    "too_long": "The media is above the duration limit; ask for a shorter cut.",
    "no_media_stream": "The file holds no picture or sound; check that the URL is the ad itself.",
    "store_error": "The media store refused the write; check the storage settings, then run the brand again.",
}
_HTTP = {
    "http_401": "The server wants credentials; use a public URL.",
    "http_403": "The server refuses access; use a public URL.",
    "http_404": "The file is gone from the source; remove the URL or find where it moved.",
    "http_410": "The file is gone from the source; remove the URL from the list.",
}


def advice(cause: str | None) -> str:
    """One sentence on what to do about ``cause`` (a generic one for causes not listed)."""
    if not cause:
        return ""
    if cause in ADVICE:
        return ADVICE[cause]
    if cause in _HTTP:
        return _HTTP[cause]
    if cause.startswith("http_5") or cause == "http_429":
        return "The server was busy or failing; the next run retries it."
    if cause.startswith("http_"):
        return "The server refused the request; check the URL in a browser."
    return "See the detail; fix the URL or the source, then run the brand again."
