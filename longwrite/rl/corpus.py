"""The pretraining corpus: sources read lazily, mixed by token share, packed into sequences.

Continual pretraining (stage 0 of the recipe) reads billions of tokens, so nothing here holds
a corpus in memory: each stage is a generator, and the whole pipeline is rebuilt from the
start whenever it is iterated again (the Trainer skips consumed batches on `--resume`, so
the stream must be the same every time: it is, for a given seed).

* Sources: a text file (one document), a folder (each `.txt`/`.md` file one document, each
  `.jsonl`/`.parquet` file one document per row), JSON Lines or parquet with a text field,
  or a dataset saved with `save_to_disk` (a folder holding `dataset_info.json`).
* Documents shorter than `min_tokens` are dropped and counted; an end-of-document token
  follows every kept document.
* Mixing is by tokens, not documents: the next document comes from the source furthest
  below its share so far (`weight x tokens so far - its tokens`), so the shares hold within
  one document's length at any point, whatever the documents' lengths. A source that runs
  out starts again (the file order reshuffled with the epoch): a 1% chain-of-thought
  source is repeated rather than the stream stopped; `CorpusStats.epochs` shows how often.
* Packing is "wrapped": documents are concatenated and cut every `seq_length` tokens, so
  every token is trained on and a long document continues in the next sequence. Position
  ids restart at every document (and at every sequence): transformers turns them into a
  block-diagonal mask (`masking_utils.find_packed_sequence_indices`) so that attention
  stays inside a document; "plain" packing counts positions through the whole sequence.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from longwrite.errors import LongwriteError

TEXT_SUFFIXES = (".txt", ".md", ".text")
ROW_SUFFIXES = (".jsonl", ".json", ".parquet")


class CorpusError(LongwriteError):
    """A source that cannot be read as documents: one line naming it."""


@dataclass(frozen=True)
class Packed:
    """One training sequence: its tokens, their positions and the source of each token."""

    input_ids: list[int]
    position_ids: list[int]
    sources: list[str]


@dataclass
class SourceStats:
    documents: int = 0  # kept
    dropped: int = 0  # shorter than min_tokens
    tokens: int = 0  # kept, end-of-document tokens included
    epochs: int = 0  # passes started over the source


@dataclass
class CorpusStats:
    sources: dict[str, SourceStats] = field(default_factory=dict)

    def line(self) -> str:
        """'corpus: long 12 documents (3 dropped short), 0.990 of tokens, 1 pass; ...'"""
        total = sum(s.tokens for s in self.sources.values()) or 1
        parts = [
            f"{name} {s.documents} documents ({s.dropped} dropped short), "
            f"{s.tokens / total:.3f} of tokens, {s.epochs} pass{'es' if s.epochs != 1 else ''}"
            for name, s in self.sources.items()
        ]
        return "corpus: " + "; ".join(parts)


# ---- reading ------------------------------------------------------------------------------


def source_files(path: Path) -> list[Path]:
    """The files of a source, sorted (a file is its own list)."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise CorpusError(f"{path}: no such file or folder")
    found = [
        p
        for p in sorted(path.rglob("*"))
        if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES + ROW_SUFFIXES
    ]
    if not found:
        raise CorpusError(f"{path}: no .txt, .md, .jsonl or .parquet file in it")
    return found


def is_saved_dataset(path: Path) -> bool:
    return path.is_dir() and (path / "dataset_info.json").is_file()


def _field(row: Any, text_field: str, where: str) -> str:
    if not isinstance(row, dict) or text_field not in row:
        raise CorpusError(f"{where}: no '{text_field}' field (set the source's field:)")
    value = row[text_field]
    if not isinstance(value, str):
        raise CorpusError(f"{where}: '{text_field}' is not text")
    return value


def _jsonl_texts(path: Path, text_field: str) -> Iterator[str]:
    from longwrite.io.records import iter_objects

    try:
        for number, row in iter_objects(path):  # read as it streams: a corpus can be big
            yield _field(row, text_field, f"{path}:{number}")
    except LongwriteError as e:
        if isinstance(e, CorpusError):
            raise
        raise CorpusError(str(e)) from None


def _parquet_texts(path: Path, text_field: str) -> Iterator[str]:
    import pyarrow.parquet as pq

    table = pq.ParquetFile(path)
    if text_field not in table.schema_arrow.names:
        raise CorpusError(f"{path}: no '{text_field}' column (set the source's field:)")
    for batch in table.iter_batches(columns=[text_field], batch_size=256):
        yield from (text for text in batch.column(0).to_pylist() if text is not None)


def _dataset_texts(path: Path, text_field: str) -> Iterator[str]:
    from datasets import DatasetDict, load_from_disk

    data = load_from_disk(str(path))
    if isinstance(data, DatasetDict):
        data = data["train"] if "train" in data else next(iter(data.values()))
    if text_field not in data.column_names:
        raise CorpusError(f"{path}: no '{text_field}' column (set the source's field:)")
    for row in data.select_columns([text_field]).iter(batch_size=256):
        yield from (text for text in row[text_field] if text is not None)


def file_texts(path: Path, text_field: str) -> Iterator[str]:
    """The documents of one file (or saved dataset), in order."""
    try:
        if is_saved_dataset(path):
            yield from _dataset_texts(path, text_field)
        elif path.suffix.lower() in (".jsonl", ".json"):
            yield from _jsonl_texts(path, text_field)
        elif path.suffix.lower() == ".parquet":
            yield from _parquet_texts(path, text_field)
        else:
            yield path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise CorpusError(f"{path}: not UTF-8 text") from None
    except OSError as e:
        raise CorpusError(f"{path}: cannot read: {e.strerror or e}") from None


def source_texts(path: str | Path, text_field: str = "text", *, seed: int = 0) -> Iterator[str]:
    """One pass over a source's documents; with a nonzero `seed` the file order is shuffled."""
    path = Path(path)
    files = [path] if is_saved_dataset(path) else source_files(path)
    if seed:
        random.Random(seed).shuffle(files)
    for file in files:
        yield from file_texts(file, text_field)


# ---- documents, mixing, packing -----------------------------------------------------------


def documents(
    texts: Iterable[str],
    tokenize: Callable[[str], list[int]],
    eos_id: int,
    min_tokens: int,
    stats: SourceStats,
) -> Iterator[list[int]]:
    """Token lists, each ending with `eos_id`; shorter than `min_tokens` (before it): dropped."""
    for text in texts:
        tokens = tokenize(text)
        if len(tokens) < min_tokens:
            stats.dropped += 1
            continue
        stats.documents += 1
        stats.tokens += len(tokens) + 1
        yield [*tokens, eos_id]


def mix(
    sources: dict[str, Callable[[int], Iterator[list[int]]]],
    weights: dict[str, float],
    stats: CorpusStats,
) -> Iterator[tuple[str, list[int]]]:
    """(source, document) without end, each source held to its share of the tokens.

    `sources[name](epoch)` starts a pass over that source; an empty pass is an error.
    """
    total_weight = sum(weights.values())
    share = {name: weights[name] / total_weight for name in sources}
    passes = {name: sources[name](0) for name in sources}
    for name in sources:
        stats.sources.setdefault(name, SourceStats()).epochs = 1
    taken = dict.fromkeys(sources, 0)
    in_pass = dict.fromkeys(sources, 0)  # documents of the current pass
    while True:
        total = sum(taken.values())
        name = max(sources, key=lambda n: share[n] * (total + 1) - taken[n])
        doc = next(passes[name], None)
        if doc is None:
            s = stats.sources[name]
            if in_pass[name] == 0:
                raise CorpusError(
                    f"corpus.sources.{name}: no document of at least min_tokens "
                    f"({s.dropped} shorter)"
                )
            passes[name] = sources[name](s.epochs)
            s.epochs += 1
            in_pass[name] = 0
            continue
        in_pass[name] += 1
        taken[name] += len(doc)
        stats.sources[name].tokens = taken[name]  # as trained: repeated passes included
        yield name, doc


def pack(docs: Iterable[tuple[str, list[int]]], seq_length: int, *, masked: bool = True
         ) -> Iterator[Packed]:  # fmt: skip
    """Cut the concatenated documents into sequences of exactly `seq_length` tokens.

    >>> [p.position_ids for p in pack([("a", [1, 2, 9]), ("b", [3, 9])], 4)]
    [[0, 1, 2, 0]]
    >>> [p.position_ids for p in pack([("a", [1, 2, 9]), ("b", [3, 9])], 4, masked=False)]
    [[0, 1, 2, 3]]
    """
    ids: list[int] = []
    positions: list[int] = []
    sources: list[str] = []
    for name, doc in docs:
        start = 0
        while start < len(doc):
            take = doc[start : start + seq_length - len(ids)]
            # masked: positions restart with every piece (a document's start, or its rest at
            # the start of a sequence); plain: they count through the sequence
            offset = 0 if masked else len(ids)
            positions += range(offset, offset + len(take))
            ids += take
            sources += [name] * len(take)
            start += len(take)
            if len(ids) == seq_length:
                yield Packed(ids, positions, sources)
                ids, positions, sources = [], [], []
    # the last, partial sequence is left out: at most seq_length - 1 tokens of a whole corpus
