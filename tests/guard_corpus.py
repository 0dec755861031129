"""The guard's corpus and loop set, shared by tests/test_guard_precision.py and bench/guard.py.

`corpus()`: real, human-written structured documents that the loop guard must never cut (the
hand-written ones in tests/data/structured/, the Markdown documentation of packages the locked
environment installs, licence texts). `loop_cases()`: loops built from them that it must cut
where they begin. `stream()`: a document through a fresh detector in 1-7 character deltas.
"""

from __future__ import annotations

import random
from importlib.metadata import distribution
from pathlib import Path

from longwrite.generate.loops import LoopDetector

DATA = Path(__file__).parent / "data" / "structured"
# Packages of the lock whose long description is Markdown with tables, code or changelogs.
PACKAGES = (
    "pydantic", "openai", "charset-normalizer", "fastapi", "rich", "typer", "accelerate",
    "ruff", "httpcore2", "einops", "annotated-types", "datasets", "huggingface-hub", "trl",
)  # fmt: skip
LICENCES = (("accelerate", "LICENSE"), ("certifi", "LICENSE"), ("click", "LICENSE.txt"))
MAX_CHARS = 60_000  # the longest METADATA (pydantic's changelog) is cut at a paragraph here


def _payload(package: str) -> str:
    text = distribution(package).metadata.get_payload() or ""
    if len(text) > MAX_CHARS:
        text = text[: text.rindex("\n\n", 0, MAX_CHARS)]
    return text


def _licence(package: str, name: str) -> str:
    files = distribution(package).files or []
    found = [f for f in files if f.name == name and "licenses" in f.parts]
    assert found, f"{package} ships no {name}"
    return found[0].locate().read_text(encoding="utf-8")


def corpus() -> dict[str, str]:
    docs = {p.name: p.read_text(encoding="utf-8") for p in sorted(DATA.glob("*.md"))}
    docs |= {f"METADATA {p}": _payload(p) for p in PACKAGES}
    docs |= {f"licence {p}": _licence(p, n) for p, n in LICENCES}
    return docs


CORPUS = corpus()


def stream(text: str, seed: int = 0) -> int | None:
    """`text` fed to a fresh detector in 1-7 character deltas: where a loop is cut, or None."""
    rng, detector, i = random.Random(seed), LoopDetector(), 0
    while i < len(text):
        k = rng.randint(1, 7)
        loop = detector.feed(text[i : i + k])
        i += k
        if loop is not None:
            return loop.cut
    return None


ITINERARY = CORPUS["itinerary_japan.md"]
PARAS = [p for p in ITINERARY.split("\n\n") if len(p.split()) > 30]
RUSSIAN = CORPUS["ru_schedule.md"].split("## О конференции\n\n")[1].split("\n\n")[0]
KANA = "きょうはとてもいいてんきです。わたしはともだちといっしょにこうえんへいきました。"
GREEK = CORPUS["el_recipe.md"].split("## Εκτέλεση\n\n")[1].split("\n")[0][3:]
ZH = [p for p in CORPUS["zh_itinerary.md"].split("\n\n") if p.startswith("第")]


def swapped(paragraph: str, words: list[str], rng: random.Random, every: int = 4) -> str:
    """`paragraph` with one word in `every` replaced by a word the document already used."""
    out = paragraph.split()
    for i in range(rng.randrange(every), len(out), every):
        out[i] = rng.choice(words)
    return " ".join(out)


def loop_cases() -> dict[str, tuple[str, str]]:
    """name -> (the text kept: the document before the loop and the first telling of what it
    repeats, the loop: from the first repeat on)."""
    rng = random.Random(4)
    honest = "# Ten days\n\n" + "\n\n".join(PARAS[:3]) + "\n\n"
    used = " ".join(PARAS[:3]).split()
    table = CORPUS["syllabus_table.md"].split("\n\nAssessment")[0] + "\n"
    rows = "\n".join(table.splitlines()[8:14]) + "\n"  # rows already in the table
    headings = ["What we measured", "Where it was done", "Results in summer",
                "Results in winter", "A comparison", "Limits", "Costs and benefits",
                "What residents said", "Next steps", "Open questions", "Conclusion"]  # fmt: skip
    cycle = "\n\n".join(PARAS[3:6]) + "\n\n"
    code = "    y = compute(x)\n    log(y)\n"
    return {
        "verbatim": (honest, (PARAS[1] + "\n\n") * 20),
        "cycle of three paragraphs": (honest + cycle, cycle * 8),
        "paraphrases, one word in four": (
            honest,
            "".join(swapped(PARAS[1], used, rng) + "\n\n" for _ in range(30)),
        ),
        "paraphrases of every paragraph": (
            honest,
            "".join(swapped(PARAS[i % 3], used, rng) + "\n\n" for i in range(30)),
        ),
        "one paragraph under many headings": (
            f"# Report\n\n## Summary\n\n{PARAS[0]}\n\n## Origins\n\n",
            "".join(f"{PARAS[0]}\n\n## {h}\n\n" for h in headings),
        ),
        "table rows again": (table, rows * 15),
        "separator row 2,000 times": ("| a | b |\n| --- | --- |\n", "| --- | --- |\n" * 2000),
        "empty list items": ("# List\n\n- one\n- two\n- \n", "- \n" * 500),
        "code lines looping": ("```python\ndef f(x):\n    return x + 1\n\n" + code, code * 200),
        "Russian paragraph 300 times": (f"# Доклад\n\n{RUSSIAN}\n\n", (RUSSIAN + "\n\n") * 299),
        "kana paragraph": (f"# にっき\n\n{KANA}\n\n", (KANA + "\n\n") * 100),
        "Greek paragraph": (f"# Συνταγή\n\n{GREEK}\n\n", (GREEK + "\n\n") * 60),
        "Chinese paragraph": ("# 行程\n\n" + "\n\n".join(ZH[:3]) + "\n\n", (ZH[1] + "\n\n") * 30),
    }


LOOPS = loop_cases()
