"""The demo corpus: two dozen documents in LongWriter-Zero's own format, for `make demo`.

A newcomer's first run should show the tool working: the thinking hidden, the answer
rendered as Markdown, the status line counting words. A random model writes byte noise, so
`make demo` trains a small one here, with stage 0 of our own recipe (`longwrite rl
pretrain`), on `examples/demo-corpus/`: each file is one request and the completion the
model should give, `<think>plan</think> <answer>Markdown</answer>`.

What the model trains on is what it will see when it writes: the request spliced into the
think template (`longwrite.prompt.templates.build_prompt`, the writer's own function), a
space, then the completion (with the space, the prompt's last `:` is a token of its own, as
it is when the writer sends the prompt alone). `training_texts` builds those documents; the
demo tokenizer is trained on them too (`longwrite.tiny`), so every word of the corpus, with
the space before it, is one token.

The template is the same 260 tokens in every document, so a model trained on those alone
knows it 24 times better than any answer and recites it in the middle of its own text. The
recipe (`examples/demo-corpus/pretrain.yaml`) therefore mixes a second source of equal
weight: the completions alone. The prompted documents teach what follows the prompt; the
completions tip the balance back towards the writing.

`word_share` is the yardstick of "reads as English words": the share of the words of a text
(LongBench-Write's English words, `[a-zA-Z]+`) that are words of the corpus. No dictionary
ships with the project, and the corpus is the only English the demo model ever saw, so its
vocabulary is the fair list to judge it against.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from longwrite.errors import LongwriteError

DOCUMENT_GLOB = "[0-9][0-9]-*.md"  # 01-lighthouse.md ...; README.md is not a document
_WORD = re.compile(r"\b[a-zA-Z]+\b")  # LongBench-Write's English word (longwrite.io.counting)


@dataclass(frozen=True)
class Example:
    """One corpus file: the user's request and the model's completion (think, then answer)."""

    path: Path
    request: str
    completion: str


def read_corpus(folder: str | Path) -> list[Example]:
    """The documents of `folder`, in file name order.

    Each file holds the request on its first line, a blank line, then the completion, which
    must start with `<think>` and hold exactly one `</think> <answer>`.
    """
    root = Path(folder)
    paths = sorted(root.glob(DOCUMENT_GLOB))
    if not paths:
        raise LongwriteError(f"{root}: no demo documents ({DOCUMENT_GLOB})")
    examples = []
    for path in paths:
        text = path.read_text(encoding="utf-8").replace("\r\n", "\n")
        request, sep, completion = text.partition("\n\n")
        completion = completion.strip()
        if (
            not sep
            or "\n" in request.strip()
            or not completion.startswith("<think>")
            or completion.count("</think> <answer>") != 1
        ):
            raise LongwriteError(
                f"{path}: expected a one-line request, a blank line, then "
                "<think>...</think> <answer>...</answer>"
            )
        examples.append(Example(path, request.strip(), completion))
    return examples


def training_text(example: Example) -> str:
    """The document as the model trains on it: the prompt it will be given, then its reply."""
    from longwrite.prompt.templates import build_prompt

    return build_prompt(example.request) + " " + example.completion


def training_texts(folder: str | Path) -> list[str]:
    return [training_text(e) for e in read_corpus(folder)]


def write_training_corpus(folder: str | Path, out: str | Path) -> Path:
    """The two sources of the demo recipe, as JSON Lines (`text` field) in folder `out`:
    `prompted.jsonl` (`training_text`: the prompt, then the completion) and
    `completions.jsonl` (the completions alone); see the module docs for why both."""
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    examples = read_corpus(folder)
    for name, texts in (
        ("prompted", [training_text(e) for e in examples]),
        ("completions", [e.completion for e in examples]),
    ):
        lines = [json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts]
        (root / f"{name}.jsonl").write_text("".join(lines), encoding="utf-8")
    return root


def words(text: str) -> list[str]:
    """The English words of `text`, lower-cased."""
    return [w.lower() for w in _WORD.findall(text)]


def vocabulary(folder: str | Path) -> set[str]:
    """Every word the model trained on: the completions' and the think template's."""
    return {w for text in training_texts(folder) for w in words(text)}


def word_share(text: str, vocab: Iterable[str]) -> float:
    """The share of `text`'s words that are in `vocab` (0.0 for a text without words)."""
    found = words(text)
    if not found:
        return 0.0
    known = set(vocab)
    return sum(w in known for w in found) / len(found)
