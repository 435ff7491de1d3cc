"""The typed error family of the downloader.

Every error carries a short stable ``cause`` code (what ends up in
``FetchResult.cause`` and in the brand's "failures by cause" metadata) and says
whether retrying can help. ``Fetcher.fetch`` turns them into data; they only
escape as exceptions for programming or configuration mistakes.
"""

from __future__ import annotations

from typing import ClassVar

#: Statuses worth retrying: the server said "not now", not "never".
TRANSIENT_HTTP_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class FetchError(Exception):
    """Base of every downloader error; ``cause`` is the stable code recorded per URL."""

    cause: ClassVar[str] = "fetch_error"
    transient: ClassVar[bool] = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def is_transient(self) -> bool:
        """True when another attempt may succeed (subclasses may decide per instance)."""
        return self.transient


class FetchConfigError(FetchError, ValueError):
    """A downloader setting is unusable (e.g. a malformed ``AD_ASSETS_ALLOW_HOSTS`` entry)."""

    cause = "config_error"


class InvalidURLError(FetchError, ValueError):
    """The URL cannot be fetched as written: not http(s), no host, or unparsable."""

    cause = "invalid_url"


class BlockedAddressError(FetchError):
    """The host resolves only to addresses the policy refuses (loopback, private, metadata…).

    Add the host to ``AD_ASSETS_ALLOW_HOSTS`` if it really must be fetched.
    """

    cause = "blocked_address"


class DNSError(FetchError):
    """The host name did not resolve; only a temporary resolver failure is retried."""

    cause = "dns_error"

    def __init__(self, message: str, *, temporary: bool = False) -> None:
        super().__init__(message)
        self.temporary = temporary

    @property
    def is_transient(self) -> bool:
        return self.temporary


class ConnectFailedError(FetchError):
    """No TCP connection could be made (refused, reset, unreachable)."""

    cause = "connect_error"
    transient = True


class FetchTimeoutError(FetchError):
    """Connect, read or the whole-URL time budget ran out."""

    cause = "timeout"
    transient = True


class TLSFailedError(FetchError):
    """The TLS handshake failed (bad certificate, protocol mismatch); retrying will not help."""

    cause = "tls_error"


class ProtocolFailedError(FetchError):
    """The server did not speak valid HTTP, or hung up before answering.

    A hang-up before the response is usually a keep-alive race and is retried;
    a body in an encoding we did not ask for is not.
    """

    cause = "protocol_error"

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable

    @property
    def is_transient(self) -> bool:
        return self.retryable


class HTTPStatusError(FetchError):
    """The server answered with a status that is not a success."""

    def __init__(self, message: str, *, status: int, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after

    @property
    def cause(self) -> str:  # type: ignore[override]  # per instance: "http_404", "http_503"…
        return f"http_{self.status}"

    @property
    def is_transient(self) -> bool:
        return self.status in TRANSIENT_HTTP_STATUSES


class TooLargeError(FetchError):
    """The body is bigger than ``FetchPolicy.max_bytes``; raise the limit if it is legitimate."""

    cause = "too_large"


class TruncatedError(FetchError):
    """The connection ended before the whole body arrived."""

    cause = "truncated"
    transient = True


class TooManyRedirectsError(FetchError):
    """More redirects than ``FetchPolicy.max_redirects`` (or a redirect loop)."""

    cause = "too_many_redirects"


class BadRedirectError(FetchError):
    """A redirect without a usable ``Location`` (missing, unparsable, or not http(s))."""

    cause = "bad_redirect"
