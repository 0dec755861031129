"""Training prompts: the think template applied, a word range [lo, hi] for every prompt.

The length reward needs a range per prompt. `longwrite rl prepare` gives each one the range its
own words ask for (`targets.extract_target`: "a 2,000-word essay" -> [1800, 2200]) or, when it
states none, the range an LLM predicts (`targets.predict_range`, the paper's length assessor);
a prompt that gets neither is dropped and counted. Rows that already carry `lo` and `hi` keep
them.

Input: JSON Lines with a `prompt` field, or a Hugging Face dataset saved with `save_to_disk`
(its `train` split when it is a DatasetDict). Output: JSON Lines, one `PreparedRow` per line.

Resuming: the output is the project's one append-only JSON Lines file (`io.jsonl.AppendLog`,
as for batch results): each row records the `index` of its input row and is fsynced as it is
written, so a killed run loses at most the row being written; a re-run cuts off a torn last
line, skips the indices already written and appends the rest, holding a lock so that two
runs never interleave their rows. Dropped prompts are not recorded: a re-run (with a range
model, say) tries them again.

`load_training_rows` reads what `rl train` trains on: prepared rows, or raw prompts, which are
prepared in memory with the same code (stated lengths only: no LLM during training).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from longwrite.errors import LongwriteError
from longwrite.io.jsonl import AppendLog
from longwrite.length.assess import predict_range
from longwrite.length.targets import WordRange, extract_target
from longwrite.prompt.templates import build_prompt, clean_prompt

if TYPE_CHECKING:
    from datasets import Dataset

SOURCES = ("given", "request", "predicted")


@dataclass(frozen=True)
class PreparedRow:
    index: int  # the row's position in the input
    question: str  # the user's own prompt
    prompt: str  # the question inside the think template: what the policy sees
    lo: int
    hi: int
    range_source: str  # given | request | predicted

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PrepareReport:
    total: int  # input rows
    already: int  # skipped: written by an earlier run
    written: int  # written now
    stated: int  # of those, from the prompt's own request (or given lo/hi)
    predicted: int  # of those, predicted by the range model
    dropped: int  # no range: not written

    def line(self, out: Path) -> str:
        return (
            f"prepared {self.written} prompt{'s' if self.written != 1 else ''} into {out} "
            f"({self.stated} stated, {self.predicted} predicted); {self.dropped} dropped "
            f"without a length; {self.already} already done"
        )


def _valid_range(lo: Any, hi: Any) -> bool:
    ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (lo, hi))
    return ints and 0 <= lo <= hi


def read_prompts(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(index, row) for each input row holding a non-empty string `prompt`."""
    p = Path(path)
    if p.is_dir():
        yield from _read_disk_dataset(p)
        return
    from longwrite.io.records import iter_objects

    for index, (number, row) in enumerate(iter_objects(p)):
        if not isinstance(row.get("prompt"), str) or not row["prompt"].strip():
            raise LongwriteError(f"{p}:{number}: no `prompt` text")
        yield index, row


def _read_disk_dataset(p: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        from datasets import DatasetDict, load_from_disk
    except ImportError:
        raise LongwriteError(
            "reading a saved dataset needs the `datasets` package: pip install 'longwrite[rl]'"
        ) from None
    try:
        ds = load_from_disk(str(p))
    except (FileNotFoundError, ValueError) as e:
        raise LongwriteError(f"{p}: not a dataset saved with save_to_disk ({e})") from None
    if isinstance(ds, DatasetDict):
        if "train" not in ds:
            raise LongwriteError(f"{p}: a DatasetDict without a `train` split ({', '.join(ds)})")
        ds = ds["train"]
    if "prompt" not in ds.column_names:
        raise LongwriteError(f"{p}: no `prompt` column (columns: {', '.join(ds.column_names)})")
    for index, row in enumerate(ds):
        if not isinstance(row["prompt"], str) or not row["prompt"].strip():
            raise LongwriteError(f"{p} row {index}: no `prompt` text")
        yield index, row


def stated_range(row: dict[str, Any]) -> tuple[WordRange, str] | None:
    """The row's own `lo`/`hi`, else the range its prompt asks for, else None."""
    if _valid_range(row.get("lo"), row.get("hi")):
        return WordRange(row["lo"], row["hi"]), "given"
    target = extract_target(row["prompt"])
    return (target.range, "request") if target is not None else None


def make_row(index: int, question: str, rng: WordRange, source: str) -> PreparedRow:
    return PreparedRow(index, question, build_prompt(question), rng.lo, rng.hi, source)


def prepare(
    src: str | Path,
    out: str | Path,
    *,
    complete: Callable[[str], str] | None = None,
    workers: int = 8,
    on_row: Callable[[int], None] | None = None,
) -> PrepareReport:
    """Prepare the prompts of `src` into `out` (resumable); `complete` asks the range model.

    `on_row(done)` is called after each input row is handled, for a progress display.
    """
    log = AppendLog(out)
    log.lock()  # a second run on the same output is refused, not interleaved
    try:
        with open(log.path, "a", encoding="utf-8"):  # there even if every prompt is dropped
            pass
        done = {r["index"] for r in log.load() if isinstance(r.get("index"), int)}
        rows = list(read_prompts(src))
        pending = [(i, row) for i, row in rows if i not in done]
        counts = _write_prepared(log, pending, complete, workers, on_row, len(rows) - len(pending))
    finally:
        log.close()
    return PrepareReport(
        total=len(rows),
        already=len(rows) - len(pending),
        written=counts["stated"] + counts["predicted"],
        stated=counts["stated"],
        predicted=counts["predicted"],
        dropped=counts["dropped"],
    )


def _resolve(
    row: dict[str, Any], index: int, complete: Callable[[str], str] | None
) -> PreparedRow | None:
    """The prepared row, or None when no range is stated and none can be predicted."""
    question = clean_prompt(row["prompt"])  # as inference sends it: no CRLF, no stray newline
    found = stated_range(row)
    if found is not None:
        return make_row(index, question, *found)
    if complete is None:
        return None
    predicted = predict_range(question, complete)
    return make_row(index, question, predicted, "predicted") if predicted else None


def _write_prepared(
    log: AppendLog,
    pending: list[tuple[int, dict[str, Any]]],
    complete: Callable[[str], str] | None,
    workers: int,
    on_row: Callable[[int], None] | None,
    already: int,
) -> dict[str, int]:
    """Resolve `pending` in input order, appending each row as it comes; the counts."""
    counts = {"stated": 0, "predicted": 0, "dropped": 0}
    # Only range-model calls are slow; map keeps the input order.
    pool = ThreadPoolExecutor(max_workers=max(1, workers)) if complete else None
    mapper = pool.map if pool else map
    results = mapper(lambda item: _resolve(item[1], item[0], complete), pending)
    try:
        for handled, prepared in enumerate(results, start=1):
            if prepared is None:
                counts["dropped"] += 1
            else:
                counts["predicted" if prepared.range_source == "predicted" else "stated"] += 1
                log.append(prepared.to_json())
            if on_row is not None:
                on_row(already + handled)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return counts


def load_training_rows(path: str | Path) -> tuple[list[PreparedRow], int]:
    """(rows to train on, prompts dropped for want of a length) from prepared or raw data."""
    rows: list[PreparedRow] = []
    dropped = 0
    for index, row in read_prompts(path):
        if _valid_range(row.get("lo"), row.get("hi")):
            question = row.get("question") if isinstance(row.get("question"), str) else None
            prompt = (
                row["prompt"] if question is not None else build_prompt(clean_prompt(row["prompt"]))
            )
            source = row.get("range_source") if row.get("range_source") in SOURCES else "given"
            rows.append(
                PreparedRow(index, question or row["prompt"], prompt, row["lo"], row["hi"], source)
            )
            continue
        if "lo" in row or "hi" in row:
            raise LongwriteError(f"{path} row {index}: lo and hi must be integers, 0 <= lo <= hi")
        found = stated_range(row)
        if found is None:
            dropped += 1
        else:
            rows.append(make_row(index, row["prompt"], *found))
    return rows, dropped


def to_dataset(rows: list[PreparedRow]) -> Dataset:
    """The rows as a `datasets.Dataset` with the columns the reward functions read."""
    from datasets import Dataset

    return Dataset.from_list(
        [{"prompt": r.prompt, "question": r.question, "lo": r.lo, "hi": r.hi} for r in rows]
    )
