"""The prompt the model sees: exact templates, the language rule, plain substitution."""

import hashlib
import re
from pathlib import Path

import pytest

from longwrite.errors import LongwriteError
from longwrite.prompt.request import build_request
from longwrite.prompt.templates import build_prompt, detect_language, load_template, templates_dir

REFERENCE = Path(__file__).resolve().parents[2] / "shared/reference/longwriter-zero.md"
# sha256 of the templates as published on the model card (pinned: any edit must fail).
SHA256 = {
    "think_en": "66e03fdadb7b7c66f4aabeec22f768c7e77011948e30102b023d09dc31089f78",
    "think_zh": "47e9f2c45d77bb3da8a1f3f8990e7d4cbad0dfe48c8ab832e02e37df284d205c",
}


@pytest.mark.parametrize("name", ["think_en", "think_zh"])
def test_templates_are_byte_exact(name):
    raw = (templates_dir() / f"{name}.txt").read_bytes()
    assert hashlib.sha256(raw).hexdigest() == SHA256[name]
    assert not raw.endswith(b"\n")
    assert raw.count(b"{question}") == 1


def test_templates_match_the_reference_when_it_is_beside_the_repo():
    if not REFERENCE.is_file():
        pytest.skip("../shared/reference is not beside this checkout")
    blocks = re.findall(r"```\n(.*?)\n```", REFERENCE.read_text(encoding="utf-8"), re.S)
    assert load_template("think_en") in blocks
    assert load_template("think_zh") in blocks


def test_english_template_details():
    en = load_template("think_en")
    assert en.count("etc..") == 2
    assert "design\u2014including" in en  # the em dash
    assert en.endswith("</answer>  <|user|>: {question} <|assistant|>:")


def test_language_rule():
    assert detect_language("Write an essay on tides") == "en"
    assert detect_language("写一篇散文") == "zh"
    assert detect_language("Write about 北京 in English") == "zh"  # any CJK char
    assert detect_language("ひらがなだけ") == "en"  # kana is not U+4E00..U+9FFF


def test_build_prompt_uses_the_language_template():
    zh = build_prompt("写一篇2000字的散文")
    assert zh.startswith("用户与助手之间的对话")
    assert zh.endswith("<|用户|>: 写一篇2000字的散文 <|助手|>:")
    en = build_prompt("Write a poem")
    assert en.endswith("<|user|>: Write a poem <|assistant|>:")


def test_braces_in_the_prompt_are_kept_verbatim():
    question = "Explain {} and {question} and {0} in {a:b}"
    prompt = build_prompt(question)
    before, after = load_template("think_en").split("{question}")
    assert prompt == before + question + after


def test_no_think_template_prefills_the_answer_tag():
    prompt = build_prompt("Write a poem", think=False)
    assert "<think>" not in prompt
    assert prompt.endswith("<answer>")
    assert "Write a poem" in prompt


def test_build_request_defaults_follow_the_model_card():
    r = build_request("Write a 500-word story", words=500)
    j = r.to_json()
    assert j["stop"] == ["<|user|>", "<|endoftext|>", "</answer>"]
    assert (j["temperature"], j["top_p"], j["max_tokens"]) == (0.6, 0.95, 15500)
    assert j["target_words"] == 500 and j["language"] == "en"
    assert j["prompt"] == build_prompt("Write a 500-word story")


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"user_prompt": "   \n"}, "prompt is empty"),
        ({"user_prompt": "x", "words": 0}, "--words"),
        ({"user_prompt": "x", "words": -5}, "--words"),
        ({"user_prompt": "x", "max_tokens": 0}, "--max-tokens"),
        ({"user_prompt": "x", "temperature": -1}, "--temperature"),
        ({"user_prompt": "x", "top_p": 0}, "--top-p"),
        ({"user_prompt": "x", "top_p": 1.5}, "--top-p"),
    ],
)
def test_bad_settings_are_one_line_errors(kwargs, fragment):
    with pytest.raises(LongwriteError) as e:
        build_request(**kwargs)
    assert fragment in str(e.value) and "\n" not in str(e.value)
