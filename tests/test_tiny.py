"""The tiny local model: loads offline, round-trips text, is deterministic."""

from __future__ import annotations

from pathlib import Path

import pytest

from longwrite.tiny import build_tiny_model, main

PROMPTS = Path(__file__).resolve().parent.parent / "prompts"

SAMPLES = [
    "Plain English, with  two spaces,\ttabs and\n\nblank lines.\n",
    "# Heading\n\n- a *list* item with `code`\n- 1,234.5 numbers & symbols: <>{}[]|\\~^\n",
    "春天来了，山上的花都开了。这是一个没有出现在语料里的句子：鲸鱼、钢琴、彗星！",
    "<think>plan the essay</think> <answer>the essay</answer>",
    "Mixed 中英文 text with emoji 🎉 and accents: café, naïve.",
]


def _load(folder: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True)
    return tok, model


def _tensors(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(folder / "model.safetensors")


def test_tiny_loads_offline_with_the_requested_shape(tiny_model_dir: Path) -> None:
    import torch

    tok, model = _load(tiny_model_dir)
    cfg = model.config
    assert type(model).__name__ == "Qwen2ForCausalLM"
    assert 1000 <= len(tok) <= 2000
    assert cfg.vocab_size == len(tok)
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.intermediate_size) == (128, 2, 256)
    assert (cfg.num_attention_heads, cfg.num_key_value_heads) == (2, 1)
    assert cfg.max_position_embeddings == 32768
    attn = model.model.layers[0].self_attn
    assert attn.q_proj.out_features // cfg.num_attention_heads == 64  # head_dim
    assert attn.k_proj.out_features == 64  # one key/value head
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert model.dtype == torch.float32

    eos = tok.convert_tokens_to_ids("<|endoftext|>")
    assert tok.eos_token == tok.pad_token == "<|endoftext|>"
    assert tok.eos_token_id == eos
    assert cfg.eos_token_id == cfg.pad_token_id == eos
    assert model.generation_config.eos_token_id == eos
    assert tok.encode("<|endoftext|>", add_special_tokens=False) == [eos]


@pytest.mark.parametrize("text", SAMPLES)
def test_tokenizer_round_trips(tiny_model_dir: Path, text: str) -> None:
    tok, _ = _load(tiny_model_dir)
    ids = tok.encode(text, add_special_tokens=False)
    assert tok.decode(ids) == text


@pytest.mark.parametrize("name", ["think_en.txt", "think_zh.txt"])
def test_tokenizer_round_trips_and_compresses_the_templates(tiny_model_dir: Path, name: str):
    tok, _ = _load(tiny_model_dir)
    template = (PROMPTS / name).read_bytes().decode("utf-8")
    text = template.replace("{question}", "Write a 3000-word essay on lighthouses.")
    ids = tok.encode(text, add_special_tokens=False)
    assert tok.decode(ids) == text
    # The templates are in the training corpus, so BPE merged them well below one token a byte.
    assert len(ids) < len(text.encode("utf-8")) / 3


def test_build_is_deterministic(tiny_model_dir: Path, tmp_path: Path, capsys) -> None:
    import torch

    again = build_tiny_model(tmp_path / "again", seed=0)
    main([str(tmp_path / "other"), "--seed", "1"])  # the CLI, with another seed
    assert capsys.readouterr().out.strip() == str(tmp_path / "other")

    for name in ("tokenizer.json", "tokenizer_config.json", "config.json"):
        assert (again / name).read_bytes() == (tiny_model_dir / name).read_bytes(), name
        assert (tmp_path / "other" / name).read_bytes() == (again / name).read_bytes(), name
    first, second, other = (_tensors(d) for d in (tiny_model_dir, again, tmp_path / "other"))
    assert first.keys() == second.keys() == other.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not torch.equal(first["model.embed_tokens.weight"], other["model.embed_tokens.weight"])
