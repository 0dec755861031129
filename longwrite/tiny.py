"""A tiny random Qwen2 model with a real byte-level BPE tokenizer, built locally in seconds.

It exists so that tests and CPU smoke runs can exercise the whole transformers path (loading,
streaming, stop strings, token counts) with no download. Its output is random noise.

`--corpus DIR` builds the demo's starting point instead (`make demo`, `longwrite.demo`): the
tokenizer is trained on the demo corpus's documents, with a vocabulary large enough that
every word of it is one token, and the model (`DEMO`) has a wider MLP, more heads and a
128-token attention window. A model that picks whole words learns to write words in far fewer
steps than one that must spell them from pieces, which is what lets a minute of CPU training
produce English.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

EOS = "<|endoftext|>"
TAGS = ("<think>", "</think>", "<answer>", "</answer>")
VOCAB_SIZE = 1500


@dataclass(frozen=True)
class Size:
    vocab: int  # the BPE trainer's ceiling; it stops earlier once every word is one token
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    init_range: float
    window: int | None = None  # sliding-window attention (tokens), every layer; None: full


# The tests' model: random weights, cheap to run.
TEST = Size(VOCAB_SIZE, 128, 256, 2, 2, 1, 0.1)  # at 0.02 greedy decoding repeats one token
# The demo's model before training (0.8M parameters). It trains on 128-token sequences, and
# the window keeps it at what it learned there: however long the prompt and the text, each
# token sees the 128 before it, never a distance it did not train on.
DEMO = Size(4000, 128, 384, 2, 4, 2, 0.02, window=128)

_ENGLISH = """\
# A Field Guide to Long Documents

Writing a long document is mostly planning. Before the first sentence, decide who will read
it, what they already know, and what they should be able to do when they finish.

## Outline first

1. State the purpose in one sentence.
2. List the sections, with a word budget for each.
3. Note the examples, tables and figures that each section needs.

## Drafting

Write the sections in order, but do not polish yet. Keep a running list of open questions,
and *resolve them* before the review. Use **short paragraphs**, plain words and `code` only
where the reader will type it.

> A plan is a promise to the reader: every heading should earn its place.

| Section | Words | Status |
|---------|------:|--------|
| Intro   |   300 | done   |
| Method  |  1200 | draft  |

The quick brown fox jumps over the lazy dog; then it writes 10,000 words about it.
"""

_CHINESE = """\
# 长篇写作指南

写一篇长文章，最重要的是规划。在动笔之前，先想清楚读者是谁，他们已经知道什么，读完以后应该能做什么。

## 先列大纲

第一，用一句话说明目的。第二，列出各个章节，并为每一节分配字数。第三，记下每一节需要的例子、表格和图片。

## 起草与修改

按顺序写完各节，先不要急着润色。把尚未解决的问题记下来，在审阅之前逐一解决。段落要短，用词要平实。

春天来了，山上的花都开了，河水慢慢地流向远方。我们坐在窗前，一边喝茶，一边讨论文章的结构和风格。
"""


def _template_texts() -> list[str]:
    """The think templates from prompts/ (source checkout or wheel)."""
    try:
        from longwrite.prompt.templates import templates_dir

        folder = templates_dir()
    except ImportError:
        here = Path(__file__).resolve().parent
        folder = next(
            (p for p in (here.parent / "prompts", here / "prompts") if p.is_dir()),
            here / "prompts",
        )
    return [p.read_bytes().decode("utf-8") for p in sorted(folder.glob("think_*.txt"))]


def _corpus() -> list[str]:
    tags = " ".join(TAGS)
    return [*_template_texts(), _ENGLISH, _CHINESE, *([tags] * 20)]


def build_tiny_model(
    out_dir: str | Path, *, seed: int = 0, corpus: Sequence[str] | None = None
) -> Path:
    """Build the tiny model and tokenizer into `out_dir` and return the folder.

    Deterministic for a given `seed`; loads offline with `AutoModelForCausalLM` and
    `AutoTokenizer`. The weights are random, so generated text is random noise. With
    `corpus` (texts), the tokenizer is trained on those texts and the model has the `DEMO`
    size: the starting point of the demo's training.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        GenerationConfig,
        PreTrainedTokenizerFast,
        Qwen2Config,
        Qwen2ForCausalLM,
    )
    from transformers.utils import logging as hf_logging

    size = TEST if corpus is None else DEMO
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=size.vocab,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_corpus() if corpus is None else list(corpus), trainer=trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token=EOS,
        pad_token=EOS,
        bos_token=EOS,
        clean_up_tokenization_spaces=False,
    )
    tok.save_pretrained(out)
    # transformers 5 writes its own class name; the generic one loads with 4.x too.
    config_path = out / "tokenizer_config.json"
    tok_config = json.loads(config_path.read_text(encoding="utf-8"))
    tok_config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_path.write_text(json.dumps(tok_config, indent=2) + "\n", encoding="utf-8")

    eos_id = tok.convert_tokens_to_ids(EOS)
    window: dict = {}
    if size.window:  # layer_types for transformers 5, max_window_layers=0 for 4.x
        window = dict(use_sliding_window=True, sliding_window=size.window, max_window_layers=0,
                      layer_types=["sliding_attention"] * size.layers)  # fmt: skip
    config = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=size.hidden,
        intermediate_size=size.intermediate,
        num_hidden_layers=size.layers,
        num_attention_heads=size.heads,
        num_key_value_heads=size.kv_heads,
        max_position_embeddings=32768,
        tie_word_embeddings=True,
        initializer_range=size.init_range,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
        **window,
    )
    config.dtype = torch.float32
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config).to(torch.float32)
    model.generation_config = GenerationConfig(
        bos_token_id=eos_id, eos_token_id=eos_id, pad_token_id=eos_id
    )
    progress = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model.save_pretrained(out, safe_serialization=True)
    finally:
        if progress:
            hf_logging.enable_progress_bar()
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m longwrite.tiny", description="Build the tiny random test model."
    )
    parser.add_argument("out_dir", help="folder to write the model and tokenizer into")
    parser.add_argument("--seed", type=int, default=0, help="weight seed (default 0)")
    parser.add_argument(
        "--corpus",
        metavar="DIR",
        help="the demo's model instead: tokenizer trained on this demo corpus "
        "(examples/demo-corpus); its training documents go to OUT_DIR/demo-corpus/",
    )
    args = parser.parse_args(argv)
    if args.corpus is None:
        print(build_tiny_model(args.out_dir, seed=args.seed))
        return
    from longwrite.demo import training_texts, write_training_corpus

    out = build_tiny_model(args.out_dir, seed=args.seed, corpus=training_texts(args.corpus))
    write_training_corpus(args.corpus, out / "demo-corpus")
    print(out)


if __name__ == "__main__":
    main()
