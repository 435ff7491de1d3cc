"""The settings issue 11 added: what a user writes in the environment and what the platform reads."""

from __future__ import annotations

import pytest

from ad_assets.resource_defs import resources_for
from ad_assets.settings import DEFAULT_USER_AGENT, Settings, SettingsError

BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15"


def test_user_agent_default_and_override_reach_the_fetch_policy(tmp_path):
    assert Settings.from_env({"AD_ASSETS_HOME": str(tmp_path)}).user_agent == DEFAULT_USER_AGENT
    settings = Settings.from_env({"AD_ASSETS_HOME": str(tmp_path), "AD_ASSETS_USER_AGENT": f"  {BROWSER} "})
    assert settings.user_agent == BROWSER
    assert resources_for(settings)["downloader"].policy().user_agent == BROWSER


@pytest.mark.parametrize("value", ["bad\r\nX-Injected: 1", "tab\there", "ünïcode-agent"])
def test_a_user_agent_that_is_not_one_header_line_is_refused_naming_the_setting(tmp_path, value):
    with pytest.raises(SettingsError, match="AD_ASSETS_USER_AGENT"):
        Settings.from_env({"AD_ASSETS_HOME": str(tmp_path), "AD_ASSETS_USER_AGENT": value})


@pytest.mark.parametrize(
    ("raw", "prefix"), [(None, None), ("", None), ("url-lists", "url-lists"), ("/url-lists/", "url-lists"),
                        ("a/b/", "a/b"), ("/", "")],  # fmt: skip
)
def test_url_list_prefix(tmp_path, raw, prefix):
    env = {"AD_ASSETS_HOME": str(tmp_path)}
    if raw is not None:
        env["AD_ASSETS_S3_URL_LIST_PREFIX"] = raw
    assert Settings.from_env(env).s3_url_list_prefix == prefix
