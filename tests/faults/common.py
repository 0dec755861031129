"""What the fault tests share: the document the scripted model writes, running `longwrite` as a
user does (a real process), and reading what the run log kept without another process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from sse_server import Script, cut_points

from longwrite.prompt.request import build_request
from longwrite.runlog.store import Store, db_path

QUESTION = "Write about tides."
PROMPT = build_request(QUESTION).prompt  # what the main command sends for QUESTION
PIECES = (1, 3, 2, 4)
# Sixteen different paragraphs, as a model writes them: nothing for the loop guard to cut.
PARAGRAPHS = [
    "The moon pulls the sea, and twice a day the water climbs the harbour wall.",
    "Gulls wait on the posts for the ebb; the mud shines and the boats lean over.",
    "Fishermen read the hour in the weed line, children in the height of the steps.",
    "Spring tides follow the new and full moon, when sun and moon pull together.",
    "Neap tides come a week later, small and lazy, barely wetting the slipway.",
    "In the estuary the flood arrives as a low brown wave that hikers call the bore.",
    "Oyster beds are worked at the bottom of the springs, by lamplight in winter.",
    "The lifeboat crew keeps a printed table pinned beside the kettle in the station.",
    "Sailors once carried lunar almanacs; phones now show the curve in one glance.",
    "A sand bar shifts with every storm, so charts of the channel age within a year.",
    "Herons stalk the shallows as the water drains, stabbing at stranded shrimp.",
    "Harbour masters time the ferry by it, and lorries queue when the ramp is dry.",
    "On the salt marsh the grass floods only at the highest tides of the equinox.",
    "Engineers build barrages to catch the rise, turning its weight into power.",
    "Far inland, the Earth itself flexes a few centimetres under the same pull.",
    "By evening the water returns, covers the mud, and lifts every hull again.",
]
TEXT = "<think>Plan: the pull, the rhythm, the people.</think>\n<answer>\n# Tides\n\n" + (
    "\n\n".join(PARAGRAPHS)
)  # no stop string inside: every piece is sent, then "stop"


def script(**faults: Any) -> Script:
    return Script(text=TEXT, prompt=PROMPT, pieces=PIECES, **faults)


def sent(pieces: int) -> str:
    """The raw text the server had sent after `pieces` pieces."""
    return TEXT[: cut_points(TEXT, PIECES)[pieces - 1][1]] if pieces else ""


def env(**extra: str) -> dict[str, str]:
    return {**os.environ, "LONGWRITE_SERVER": "", "LONGWRITE_API_KEY": "", **extra}


def cli(*args: str, stdout: Any = subprocess.PIPE, **extra: str) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "longwrite", *args]
    return subprocess.run(
        argv, stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=120, env=env(**extra)
    )


def errors(stderr: str) -> list[str]:
    """The error lines a command said; a traceback is never one of them."""
    assert "Traceback" not in stderr, stderr
    assert "Exception ignored" not in stderr, stderr
    return [line for line in stderr.splitlines() if line.startswith("longwrite: error:")]


def logged(run: str = "last") -> dict[str, Any]:
    """A run as the log keeps it (its record and raw text), read in this process."""
    store = Store.open(db_path())
    try:
        record = store.resolve(run)
        return {**record.to_json(), "raw": store.raw(record.id)}
    finally:
        store.close()


def answer_of(raw: str) -> str:
    from longwrite.generate.parser import split_think_answer

    return split_think_answer(raw)[1]


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8") if path.exists() else ""
