"""One settings object, read from the environment, with embedded defaults.

Every knob a user may turn lives here and is documented in the README's
"Configuration" table. Nothing else in the project reads ``os.environ``; Dagster
code builds its resources from a ``Settings`` instance.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from ai_methods.settings import AISettings, env_number

if TYPE_CHECKING:
    from resources.media_store import MediaStore

DEFAULT_MAX_CONCURRENCY = 32
DEFAULT_MAX_PER_HOST = 8
DEFAULT_MAX_DOWNLOAD_BYTES = 512 * 1024 * 1024
DEFAULT_DOWNLOAD_TIMEOUT_S = 300.0
# The SQS sensor: a tick must end well inside Dagster's 60 s sensor timeout,
# and a message in flight must stay hidden from one tick to the next.
DEFAULT_SQS_POLL_INTERVAL_S = 30
DEFAULT_SQS_TICK_BUDGET_S = 20.0
DEFAULT_SQS_VISIBILITY_TIMEOUT_S = 300
DEFAULT_SQS_MAX_MESSAGES_PER_TICK = 1000
SQS_MAX_TICK_BUDGET_S = 50.0
#: What the downloader says it is; some CDNs refuse anything that does not look like a browser.
DEFAULT_USER_AGENT = "ad-assets/0.1"


_METHOD_PROVIDER_PREFIX = "AD_ASSETS_AI_PROVIDER_"


def ai_settings(
    default_provider: str, method_providers: Mapping[str, str], cache_dir: Path, database_url: str | None = None
) -> AISettings:
    """The AI library's settings from the environment, with the platform's provider choice and cache on top.

    The result cache is shared through PostgreSQL when the platform has a
    database server of its own: ``AD_ASSETS_AI_CACHE_URL``, else
    ``AD_ASSETS_DATABASE_URL`` (the catalog's database gets the table
    ``ai_results``), so a brand resumed on another machine pays no call twice.
    Without either (the embedded database is per machine) it is the SQLite file
    under ``cache_dir``.
    """
    from_env = AISettings.from_env()
    return dataclasses.replace(
        from_env,
        default_provider=default_provider,
        method_providers=dict(method_providers),
        cache_dir=cache_dir,
        cache_url=from_env.cache_url or database_url,
    )


class SettingsError(ValueError):
    """An environment variable holds a value the platform cannot use."""


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    value = env_number(env, name, int, minimum, error=SettingsError)
    return default if value is None else int(value)


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    value = env_number(env, name, float, error=SettingsError)
    if value is None:
        return default
    if value <= 0:
        raise SettingsError(f"{name}={value} must be positive")
    return float(value)


def _optional(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def parse_allow_hosts(raw: str | None) -> tuple[str, ...]:
    """Split ``AD_ASSETS_ALLOW_HOSTS`` (comma-separated ``host`` or ``host:port``)."""
    if not raw:
        return ()
    return tuple(sorted({part.strip().lower() for part in raw.split(",") if part.strip()}))


def parse_user_agent(raw: str | None) -> str:
    """``AD_ASSETS_USER_AGENT``, checked to be one printable header line (default ``DEFAULT_USER_AGENT``)."""
    value = (raw or "").strip()
    if not value:
        return DEFAULT_USER_AGENT
    if not value.isprintable() or not value.isascii():
        raise SettingsError(
            f"AD_ASSETS_USER_AGENT={value!r} must be one line of printable ASCII, e.g. "
            "'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36'"
        )
    return value


def parse_url_list_prefix(raw: str | None) -> str | None:
    """``AD_ASSETS_S3_URL_LIST_PREFIX``: the key folder watched for URL lists, without slashes at its ends.

    Unset or empty: S3 event notifications are not accepted. ``/`` watches the
    whole bucket (the brand is then the key's first folder).
    """
    if raw is None or not raw.strip():
        return None
    return raw.strip().strip("/")


def parse_methods(raw: str | None) -> tuple[str, ...]:
    """``AD_ASSETS_METHODS``: comma-separated ``all`` (the default), ``builtin`` and method names."""
    names = tuple(dict.fromkeys(part.strip().lower() for part in (raw or "").split(",") if part.strip()))
    return names or ("all",)


def methods_from_env() -> tuple[str, ...]:
    """The pipeline's method selection from ``AD_ASSETS_METHODS`` alone (engine defaults, scripts)."""
    return parse_methods(os.environ.get("AD_ASSETS_METHODS"))


def _sqs_timing(env: Mapping[str, str]) -> dict[str, float | int]:
    """The SQS sensor's timing knobs, checked against each other."""
    interval = _int(env, "AD_ASSETS_SQS_POLL_INTERVAL_S", DEFAULT_SQS_POLL_INTERVAL_S)
    budget = _float(env, "AD_ASSETS_SQS_TICK_BUDGET_S", DEFAULT_SQS_TICK_BUDGET_S)
    visibility = _int(env, "AD_ASSETS_SQS_VISIBILITY_TIMEOUT_S", DEFAULT_SQS_VISIBILITY_TIMEOUT_S)
    if budget > SQS_MAX_TICK_BUDGET_S:
        raise SettingsError(
            f"AD_ASSETS_SQS_TICK_BUDGET_S={budget:g} must be at most {SQS_MAX_TICK_BUDGET_S:g}: "
            "Dagster abandons a sensor tick after 60 s"
        )
    # In-flight messages must stay hidden until the next tick can extend them.
    if visibility < budget + 2 * interval:
        raise SettingsError(
            f"AD_ASSETS_SQS_VISIBILITY_TIMEOUT_S={visibility} must be at least the tick budget plus two "
            f"poll intervals ({budget:g} + 2 x {interval} s)"
        )
    return {
        "sqs_poll_interval_s": interval,
        "sqs_tick_budget_s": budget,
        "sqs_visibility_timeout_s": visibility,
        "sqs_max_messages_per_tick": _int(env, "AD_ASSETS_SQS_MAX_MESSAGES_PER_TICK", DEFAULT_SQS_MAX_MESSAGES_PER_TICK),
    }


@dataclass(frozen=True)
class Settings:
    """Everything configurable, with defaults that work on a fresh machine."""

    home: Path
    storage_url: str
    database_url: str | None = None
    sqs_queue_url: str | None = None
    sqs_dlq_url: str | None = None
    sqs_poll_interval_s: int = DEFAULT_SQS_POLL_INTERVAL_S
    sqs_tick_budget_s: float = DEFAULT_SQS_TICK_BUDGET_S
    sqs_visibility_timeout_s: int = DEFAULT_SQS_VISIBILITY_TIMEOUT_S
    sqs_max_messages_per_tick: int = DEFAULT_SQS_MAX_MESSAGES_PER_TICK
    ai_provider: str = "local"
    ai_method_providers: Mapping[str, str] = field(default_factory=dict)
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    max_per_host: int = DEFAULT_MAX_PER_HOST
    max_download_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES
    download_timeout_s: float = DEFAULT_DOWNLOAD_TIMEOUT_S
    allow_hosts: tuple[str, ...] = ()
    aws_endpoint_url: str | None = None
    aws_region: str | None = None
    user_agent: str = DEFAULT_USER_AGENT
    s3_url_list_prefix: str | None = None
    # Which AI methods the brand pipeline runs: "all", "builtin", names, or a mix (see pipeline_plan).
    methods: tuple[str, ...] = ("all",)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        """Read the settings from ``env`` (default: the process environment)."""
        env = os.environ if env is None else env
        home = Path(env.get("AD_ASSETS_HOME", "").strip() or "./.ad_assets").expanduser().resolve()
        storage_url = _optional(env, "AD_ASSETS_STORAGE_URL") or str(home / "store")
        return cls(
            home=home,
            storage_url=storage_url,
            database_url=_optional(env, "AD_ASSETS_DATABASE_URL"),
            sqs_queue_url=_optional(env, "AD_ASSETS_SQS_QUEUE_URL"),
            sqs_dlq_url=_optional(env, "AD_ASSETS_SQS_DLQ_URL"),
            **_sqs_timing(env),
            ai_provider=(_optional(env, "AD_ASSETS_AI_PROVIDER") or "local").lower(),
            ai_method_providers={
                key[len(_METHOD_PROVIDER_PREFIX) :].lower(): value.strip().lower()
                for key, value in env.items()
                if key.startswith(_METHOD_PROVIDER_PREFIX) and value.strip()
            },
            max_concurrency=_int(env, "AD_ASSETS_MAX_CONCURRENCY", DEFAULT_MAX_CONCURRENCY),
            max_per_host=_int(env, "AD_ASSETS_MAX_PER_HOST", DEFAULT_MAX_PER_HOST),
            max_download_bytes=_int(env, "AD_ASSETS_MAX_DOWNLOAD_BYTES", DEFAULT_MAX_DOWNLOAD_BYTES),
            download_timeout_s=_float(env, "AD_ASSETS_DOWNLOAD_TIMEOUT_S", DEFAULT_DOWNLOAD_TIMEOUT_S),
            allow_hosts=parse_allow_hosts(env.get("AD_ASSETS_ALLOW_HOSTS")),
            aws_endpoint_url=_optional(env, "AWS_ENDPOINT_URL"),
            aws_region=_optional(env, "AWS_REGION") or _optional(env, "AWS_DEFAULT_REGION"),
            user_agent=parse_user_agent(env.get("AD_ASSETS_USER_AGENT")),
            s3_url_list_prefix=parse_url_list_prefix(env.get("AD_ASSETS_S3_URL_LIST_PREFIX")),
            methods=parse_methods(env.get("AD_ASSETS_METHODS")),
        )

    def provider_for(self, method: str) -> str:
        """The provider that serves ``method``: the AI library's rule (``AISettings.provider_for``) on these settings.

        ``AD_ASSETS_AI_PROVIDER_<METHOD>`` overrides the default; a method the
        default provider does not implement runs on ``local``.
        """
        return AISettings(default_provider=self.ai_provider, method_providers=self.ai_method_providers).provider_for(
            method
        )

    def media_store(self) -> "MediaStore":
        """A client of the media store these settings name (``storage_url``, AWS endpoint and region)."""
        from resources.media_store import MediaStore

        return MediaStore.from_url(self.storage_url, aws_endpoint_url=self.aws_endpoint_url, aws_region=self.aws_region)

    def ai_settings(self) -> AISettings:
        """The AI methods library's settings for this platform configuration."""
        return ai_settings(self.ai_provider, self.ai_method_providers, self.ai_cache_dir, self.database_url)

    @property
    def ai_cache_dir(self) -> Path:
        """Where the AI methods' durable result cache lives."""
        return self.home / "cache"

    @property
    def postgres_dir(self) -> Path:
        """Where the embedded PostgreSQL keeps its data when no URL is set."""
        return self.home / "postgres"

    @property
    def work_dir(self) -> Path:
        """Scratch space for downloads in flight and per-item journals."""
        return self.home / "work"
