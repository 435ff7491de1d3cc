"""``ad-assets methods list|run`` as a user types them, through a fresh argparse parser.

Why: the harness is how people who did not write a method try it on a file;
it must print the result and fail with one clear line on bad input.
"""

from __future__ import annotations

import argparse
import json

import pytest

from ad_assets import cli_methods


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="ad-assets")
    cli_methods.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code = args.func(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    # The CLI is an outermost entry: it reads the process environment.
    monkeypatch.setenv("AD_ASSETS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("AD_ASSETS_AI_PROVIDER", raising=False)


def test_list_json_parses(capsys):
    code, out, _ = run_cli(["methods", "list", "--json"], capsys)
    methods = {m["name"]: m for m in json.loads(out)}
    assert code == 0 and "ocr_text" in methods
    assert methods["ocr_text"]["inputs"] == ["image"] and "local" in methods["ocr_text"]["providers"]
    assert methods["transcribe_speech"]["output_schema"]["type"] == "object"


def test_list_table(capsys):
    code, out, _ = run_cli(["methods", "list"], capsys)
    assert code == 0
    assert out.splitlines()[0].split()[:4] == ["NAME", "VERSION", "INPUTS", "PROVIDERS"]
    assert any(line.startswith("summarize_brand ") for line in out.splitlines())


def test_run_ocr_prints_the_words_as_json(tmp_path, capsys, ad_png):
    image = tmp_path / "ad.png"
    image.write_bytes(ad_png)
    code, out, err = run_cli(["methods", "run", "ocr_text", str(image), "--json"], capsys)
    assert code == 0, err
    result = json.loads(out)
    assert "FRESH COFFEE" in result["result"]["text"]
    assert result["provider"] == "local" and result["cached"] is False
    assert set(result) >= {"latency_ms", "usage", "cost_usd", "model", "version"}
    code, out, _ = run_cli(["methods", "run", "ocr_text", str(image), "--json"], capsys)
    assert json.loads(out)["cached"] is True


def test_run_human_output_shows_result_latency_usage_cache(tmp_path, capsys, ad_png):
    image = tmp_path / "ad.png"
    image.write_bytes(ad_png)
    code, out, _ = run_cli(["methods", "run", "caption", str(image), "--provider", "fake"], capsys)
    lines = out.splitlines()
    assert code == 0
    assert lines[0] == "caption v1 on fake (model fake-v1)"
    assert lines[1].startswith("latency ") and "computed" in lines[1] and "cost $0.000000" in lines[1]
    assert any(line.startswith("caption: Fake caption") for line in lines)


def test_run_text_input_and_vector_preview(capsys):
    code, out, _ = run_cli(["methods", "run", "embed_text", "fresh coffee every morning"], capsys)
    assert code == 0 and "… 512 values]" in out and "space: local-lexical-v1" in out


def test_run_results_json_for_the_brand_summary(tmp_path, capsys):
    from ai_methods.testing import sample_results

    path = tmp_path / "items.json"
    path.write_text(json.dumps(sample_results()))
    code, out, _ = run_cli(["methods", "run", "summarize_brand", str(path), "--json"], capsys)
    assert code == 0 and json.loads(out)["result"]["item_count"] == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["methods", "run", "ocr_txt", "x.png"], "error: unknown AI method 'ocr_txt'; known methods: caption,"),
        (["methods", "run", "ocr_text", "missing/ad.png"], "error: file not found: missing/ad.png"),
        (["methods", "run", "ocr_text", "just some words"], "error: ocr_text does not accept text input"),
        (
            ["methods", "run", "ocr_text", "x", "--provider", "gemini"],
            "error: ProviderUnavailableError: ocr_text does not run on provider 'gemini'",
        ),
    ],
)
def test_bad_runs_exit_non_zero_with_one_line(argv, message, capsys):
    code, out, err = run_cli(argv, capsys)
    assert code != 0 and out == ""
    assert err.startswith(message) and err.count("\n") == 1


def test_bad_image_file_is_a_usage_error(tmp_path, capsys):
    bogus = tmp_path / "fake.png"
    bogus.write_bytes(b"definitely not a png")
    code, _, err = run_cli(["methods", "run", "ocr_text", str(bogus)], capsys)
    assert code == 2 and err.startswith(f"error: {bogus}: not a decodable image")


def test_unknown_file_type_is_a_usage_error(tmp_path, capsys):
    bogus = tmp_path / "notes.bin"
    bogus.write_bytes(b"\x00\x01 nothing decodable here")
    code, _, err = run_cli(["methods", "run", "ocr_text", str(bogus)], capsys)
    assert code == 2 and "not an image, audio/video or JSON file" in err
