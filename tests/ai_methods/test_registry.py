"""Finding methods: entry points, in-process registration, clear errors, code versions.

Why: other packages ship methods through the ``ad_assets.methods`` entry point,
and the assets' ``code_version`` comes from the registered methods' versions.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import EntryPoint

import pytest
from pydantic import BaseModel

import ai_methods.registry as reg
from ai_methods import AIMethod, TEXT, get_method, list_methods, methods_code_version, register_method
from ai_methods.errors import ConfigurationError, UnknownMethodError
from ai_methods.registry import unregister_method
from ai_methods.testing import check_method_contract


class ShoutOutput(BaseModel):
    text: str


class Shout(AIMethod):
    """Upper-cases text (the docs' worked example)."""

    name = "shout"
    version = "1"
    accepts = (TEXT,)
    output_schema = ShoutOutput
    providers = ("local", "fake")

    async def compute(self, inputs, ctx):
        if ctx.kind == "fake":
            await ctx.fake.answer(self.name)
        return {"text": inputs.text.upper()}


def test_builtin_methods_come_from_the_entry_point():
    assert get_method("caption").name == "caption"
    assert [m.name for m in list_methods()] == sorted(m.name for m in list_methods())


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(UnknownMethodError) as info:
        get_method("captions")
    message = str(info.value)
    assert message.startswith("unknown AI method 'captions'; known methods: caption, detect_faces")


def test_register_a_method_in_process_and_pass_the_contract():
    register_method(Shout)
    try:
        assert get_method("shout").describe()["inputs"] == ["text"]
        assert "fake:text:deterministic" in check_method_contract(get_method("shout"), providers=("fake", "local"))
    finally:
        unregister_method("shout")
    with pytest.raises(UnknownMethodError):
        get_method("shout")


@contextmanager
def registry_seeing(monkeypatch: pytest.MonkeyPatch, *points: EntryPoint) -> Iterator[None]:
    """Inside: the registry finds only ``points``. After: the real entry points again, registry rebuilt."""
    monkeypatch.setattr(reg, "entry_points", lambda group: list(points))
    try:
        yield
    finally:
        monkeypatch.undo()
        reg.registry(refresh=True)


def test_a_plugin_entry_point_is_loaded(monkeypatch):
    ep = EntryPoint("plugin", f"{__name__}:Shout", reg.ENTRY_POINT_GROUP)
    builtin = EntryPoint("builtin", "ai_methods.builtin:METHODS", reg.ENTRY_POINT_GROUP)
    with registry_seeing(monkeypatch, builtin, ep):
        assert "shout" in reg.registry(refresh=True)
    assert "shout" not in reg.registry()


class OtherCaption(Shout):
    """A plugin method that collides with the built-in ``caption``."""

    name = "caption"


DUPLICATES = [OtherCaption()]


def test_two_methods_with_one_name_are_refused(monkeypatch):
    builtin = EntryPoint("builtin", "ai_methods.builtin:METHODS", reg.ENTRY_POINT_GROUP)
    dup = EntryPoint("dup", f"{__name__}:DUPLICATES", reg.ENTRY_POINT_GROUP)
    with registry_seeing(monkeypatch, builtin, dup):
        with pytest.raises(ConfigurationError, match="two methods are named 'caption'"):
            reg.registry(refresh=True)


def test_a_broken_plugin_says_which_one(monkeypatch):
    with registry_seeing(monkeypatch, EntryPoint("broken", "no_such_pkg.methods:METHODS", reg.ENTRY_POINT_GROUP)):
        with pytest.raises(ConfigurationError, match="broken = no_such_pkg.methods:METHODS"):
            reg.registry(refresh=True)


def test_code_version_changes_with_a_method_version(monkeypatch):
    before = methods_code_version(["caption", "labels"])
    assert before == methods_code_version(["labels", "caption", "caption"])
    monkeypatch.setattr(type(get_method("caption")), "version", "2")
    assert methods_code_version(["caption", "labels"]) != before


@pytest.mark.parametrize(
    ("attrs", "message"),
    [
        ({"name": "Bad Name"}, "must be snake_case"),
        ({"version": ""}, "version must be a non-empty str"),
        ({"accepts": ("video",)}, "accepts"),
        ({"output_schema": int}, "output_schema must be a pydantic model class or a JSON Schema dict"),
    ],
)
def test_the_base_class_checks_method_attributes(attrs, message):
    with pytest.raises(TypeError, match=message):
        type("Bad", (Shout,), attrs)


async def test_a_json_schema_dict_works_as_output_schema(method_runner):
    class Count(AIMethod):
        """Counts words."""

        name = "count_words"
        version = "1"
        accepts = (TEXT,)
        output_schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 0}}, "required": ["n"]}
        providers = ("fake",)

        async def compute(self, inputs, ctx):
            return {"n": len(inputs.text.split())}

    assert (await method_runner.run(Count(), text="a b c")).output == {"n": 3}
    assert Count().describe()["output_schema"]["required"] == ["n"]
