"""The typed error family of the AI methods library.

Every error says what failed and what to do. The call path retries only
``TransientProviderError``; everything else is final for that call.
"""

from __future__ import annotations


class AIMethodError(Exception):
    """Base of every error raised by ``ai_methods``."""


class UnknownMethodError(AIMethodError, KeyError):
    """No method is registered under that name; the message lists the known ones."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else "unknown method"


class InvalidInputError(AIMethodError, ValueError):
    """The inputs given to a method are not what it accepts (wrong kind, empty, corrupt)."""


class ProviderUnavailableError(AIMethodError):
    """The provider cannot serve this call (offline, not supported, unreachable)."""


class MissingCredentialsError(ProviderUnavailableError):
    """A setting the provider needs is absent; the message names the setting."""


class QuotaExceededError(AIMethodError):
    """The provider refused for quota or billing reasons; retrying will not help."""


class TransientProviderError(AIMethodError):
    """A failure worth retrying: HTTP 429/5xx, throttling, timeouts, dropped connections."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BadResponseError(AIMethodError):
    """The provider answered, but not in the shape the method's schema requires."""


class ConfigurationError(AIMethodError, ValueError):
    """A setting of the AI methods library holds a value it cannot use; the message names it."""


class InternalMethodError(AIMethodError):
    """The method's own code failed (a bug, not the provider): report it with the traceback in ``__cause__``."""
