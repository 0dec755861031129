"""Benchmark: does `extract_target` read the length every LongBench-Write prompt asks for?

Run from the repository root: `python bench/targets.py [--data PATH]`. The data file is
LongBench-Write's 120 prompts (`prompt`, `type`, `length`), read by path and never copied
into this repository; the default is `../shared/data/longbench_write.jsonl` beside the
checkout.

Every record has a `length`, but some prompts never state one in their text (the benchmark's
authors chose a length for them). Those are listed as "states no length": they are what
`predict_range` is for. Every other record is a hit when `extract_target(prompt).words`
equals `length`, else a miss, listed with what was extracted. The last line is always
`targets: exact=K/N`, with K the hits.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from longwrite.length.targets import extract_target  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "longbench_write.jsonl"


def _short(text: str, width: int = 70) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="LongBench-Write jsonl")
    args = parser.parse_args(argv)
    if not args.data.is_file():
        print(f"no data at {args.data}: pass --data PATH", file=sys.stderr)
        return 2
    lines = args.data.read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines if line.strip()]
    hits, misses, unstated = 0, [], []
    for line_no, record in enumerate(records, start=1):
        target = extract_target(record["prompt"])
        if target is None:
            unstated.append((line_no, record))
        elif target.words == record["length"]:
            hits += 1
        else:
            misses.append((line_no, record, target))
    stated = len(records) - len(unstated)
    print(f"prompts: {len(records)}; state a length: {stated}; state no length: {len(unstated)}")
    for line_no, record in unstated:
        print(f"  states no length: line {line_no} (length {record['length']}): "
              f"{_short(record['prompt'])}")  # fmt: skip
    print(f"misses: {len(misses)}")
    for line_no, record, target in misses:
        got = f"extracted {target.words} ({target.kind}, {target.source!r})"
        print(f"  miss: line {line_no}: {got}, required {record['length']}: "
              f"{_short(record['prompt'])}")  # fmt: skip
    print(f"targets: exact={hits}/{len(records)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
