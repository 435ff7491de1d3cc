"""The pipeline planned from what methods declare: order, selection, and the errors a method author
sees at load when the declarations cannot make a pipeline."""

from __future__ import annotations

import pytest

from ad_assets.definitions import build_definitions
from ad_assets.engine.pipeline_plan import PipelineError, build_plan, plan_for
from ad_assets.settings import Settings, parse_methods
from ai_methods import RESULTS, TEXT, AIMethod, register_method
from ai_methods.placement import BRAND, ITEM, PICTURE
from ai_methods.registry import registry, unregister_method



def method(name: str, applies_to: str | None, needs: tuple[str, ...] = (), accepts=(TEXT,)) -> AIMethod:
    """A placed method that is never called here."""
    cls = type(name.title().replace("_", ""), (AIMethod,), {
        "name": name, "version": "1", "accepts": accepts, "output_schema": {"type": "object"},
        "applies_to": applies_to, "needs": needs, "compute": lambda self, inputs, ctx: {},
        "__module__": "my_pack.methods",
    })  # fmt: skip
    return cls()


def methods(*found: AIMethod) -> dict[str, AIMethod]:
    return {**registry(), **{m.name: m for m in found}}


def test_builtin_pipeline_orders_each_method_after_what_it_needs():
    plan = plan_for(["builtin"])
    names = plan.names()
    assert set(plan.names(PICTURE)) == {"ocr_text", "caption", "labels", "detect_faces", "dominant_colors",
                                         "embed_image", "embed_text"}  # fmt: skip
    assert plan.names(ITEM) == ("transcribe_speech",) and plan.names(BRAND) == ("summarize_brand",)
    assert names.index("embed_text") > max(names.index("caption"), names.index("ocr_text"))
    # pictures, then items, then the brand
    assert [plan.scope_of(n) for n in names] == sorted((plan.scope_of(n) for n in names), key=[PICTURE, ITEM, BRAND].index)


def test_a_selection_brings_what_it_needs_and_the_engines_own_needs():
    plan = build_plan(methods(method("tagline", PICTURE, ("caption",))), ["tagline"])
    assert set(plan.names()) == {"tagline", "caption", "embed_image", "embed_text", "ocr_text"}
    assert plan.names().index("tagline") > plan.names().index("caption")


def test_all_takes_every_placed_method_and_builtin_only_the_shipped_ones():
    found = methods(method("tagline", PICTURE, ("caption",)), method("helper", None))
    assert "tagline" in build_plan(found, ["all"]) and "helper" not in build_plan(found, ["all"])
    assert "tagline" not in build_plan(found, ["builtin"])
    assert "tagline" in build_plan(found, ["builtin", "tagline"])


@pytest.mark.parametrize(
    ("extra", "selection", "message"),
    [
        ([method("tagline", PICTURE, ("captoin",))], ["all"],
         "method 'tagline' needs 'captoin', which is not a registered method"),
        ([method("a", ITEM, ("b",)), method("b", PICTURE, ("a",))], ["all"], "the methods' needs form a cycle: "),
        ([method("a", PICTURE, ("a_brand",)), method("a_brand", BRAND, accepts=(RESULTS,))], ["all"],
         "method 'a' (picture) needs 'a_brand', a brand-level method"),
        ([method("tagline", PICTURE, ("helper",)), method("helper", None)], ["all"],
         "method 'tagline' needs 'helper', which declares no applies_to"),
        ([], ["price_mention"], "the pipeline selection names 'price_mention', which is not a registered method"),
        ([method("helper", None)], ["helper"], "'helper', which declares no applies_to: it runs only when called"),
    ],
)  # fmt: skip
def test_declarations_that_cannot_make_a_pipeline_are_refused_naming_the_methods(extra, selection, message):
    with pytest.raises(PipelineError) as raised:
        build_plan(methods(*extra), selection)
    assert message in str(raised.value)


def test_a_cycle_is_shown_in_the_direction_of_the_needs():
    with pytest.raises(PipelineError) as raised:
        build_plan(methods(method("a", PICTURE, ("b",)), method("b", PICTURE, ("c",)), method("c", PICTURE, ("a",))))
    cycle = str(raised.value).split(": ", 1)[1]
    assert cycle in ("a → b → c → a", "b → c → a → b", "c → a → b → c")


def test_a_bad_plug_in_stops_the_code_location_from_loading_with_its_message(tmp_path):
    register_method(method("tagline", PICTURE, ("captoin",)))
    try:
        with pytest.raises(PipelineError, match="'tagline' needs 'captoin'"):
            build_definitions(Settings.from_env({"AD_ASSETS_HOME": str(tmp_path), "AD_ASSETS_METHODS": "all"}))
        # narrowed to the builtin pipeline, the same code location loads
        build_definitions(Settings.from_env({"AD_ASSETS_HOME": str(tmp_path), "AD_ASSETS_METHODS": "builtin"}))
    finally:
        unregister_method("tagline")


def test_methods_list_says_why_the_pipeline_cannot_be_planned(capsys, monkeypatch):
    from ad_assets.cli import main

    monkeypatch.setenv("AD_ASSETS_METHODS", "all")
    register_method(method("tagline", PICTURE, ("captoin",)))
    try:
        assert main(["methods", "list"]) == 1
    finally:
        unregister_method("tagline")
    captured = capsys.readouterr()
    assert "tagline" in captured.out  # the table is still printed
    assert "the AI pipeline (AD_ASSETS_METHODS=all) cannot be planned: method 'tagline' needs 'captoin'" in captured.err


@pytest.mark.parametrize("command", [["ingest", "acme", "URLS"], ["backfill", "--stale-only", "--dry-run"], ["demo"]])
def test_commands_that_run_the_pipeline_refuse_one_that_cannot_be_planned_in_one_line(command, capsys, monkeypatch,
                                                                                     tmp_path, loopback_http):  # fmt: skip
    from ad_assets.brand_urls import brand_url_outcomes
    from ad_assets.cli import main

    monkeypatch.setenv("AD_ASSETS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    monkeypatch.setenv("AD_ASSETS_METHODS", "all")
    urls = tmp_path / "urls.txt"
    urls.write_text(loopback_http.url("/a.png") + "\n")
    register_method(method("tagline", PICTURE, ("captoin",)))
    try:
        code = main([str(urls) if part == "URLS" else part for part in command])
    finally:
        unregister_method("tagline")
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.splitlines()[-1] == (
        "ad-assets: the AI pipeline (AD_ASSETS_METHODS=all) cannot be planned: method 'tagline' needs 'captoin', "
        "which is not a registered method; placed methods: " + err.split("placed methods: ")[1]
    )
    assert "Traceback" not in err
    assert brand_url_outcomes(Settings.from_env(), "acme") == [], "nothing was registered"


def test_a_declaration_is_checked_when_the_class_is_written():
    with pytest.raises(TypeError, match="applies_to='frame' must be one of"):
        method("tagline", "frame")
    with pytest.raises(TypeError, match="needs names the method itself"):
        method("tagline", PICTURE, ("tagline",))
    with pytest.raises(TypeError, match="needs is set but applies_to is not"):
        method("tagline", None, ("caption",))


def test_methods_setting_is_a_comma_list_defaulting_to_all():
    assert parse_methods(None) == ("all",) and parse_methods(" ") == ("all",)
    assert parse_methods("builtin, Price_Mentions,builtin") == ("builtin", "price_mentions")


def test_a_run_may_only_narrow_the_configured_pipeline():
    plan = plan_for(["builtin"])
    assert set(plan.narrowed(["caption"]).names()) == {"caption", "embed_image", "embed_text", "ocr_text"}
    assert plan.narrowed(None) is plan
    with pytest.raises(PipelineError, match="'price_mentions', which is not a registered method"):
        plan.narrowed(["price_mentions"])
