"""Best-of progress: a line per candidate on a terminal, the score table everywhere."""

import io
import re

from longwrite.display.progress import CandidateProgress, score_line
from longwrite.generate.best_of import Candidate

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def candidate(index, total):
    scores = {"length": 1.0, "format": 1.0, "repetition": 0.0, "total": total}
    return Candidate(index, "t", "a b c", 3, 10 + index, "stop", scores)


def test_score_line_hand_written():
    assert score_line(candidate(1, 0.75), best=1) == (
        "candidate 2: 3 words, 11 tok, stop · length 1.00 · format 1.00 · repetition 0.00 · "
        "total 0.75 (best)"
    )
    assert "(best)" not in score_line(candidate(0, 0.5), best=1)


def test_terminal_shows_one_line_per_candidate_then_the_table():
    err = io.StringIO()
    with CandidateProgress(3, 100, stderr=err, stderr_tty=True) as progress:
        for step in range(1, 4):
            for i in range(3):
                progress(i, step * 10, "stop" if step == 3 else None)
        progress.summary([candidate(i, 0.1 * i) for i in range(3)], best=2)
    text = ANSI.sub("", err.getvalue())
    for i in (1, 2, 3):
        assert f"candidate {i}" in text
    assert text.count("(best)") == 1 and "candidate 3: 3 words" in text


def test_pipe_gets_only_the_table():
    err = io.StringIO()
    with CandidateProgress(2, 100, stderr=err, stderr_tty=False) as progress:
        progress(0, 5, None)
        progress.summary([candidate(0, 0.9), candidate(1, 0.1)], best=0)
    assert "\x1b" not in err.getvalue()
    assert err.getvalue().splitlines() == [
        score_line(candidate(0, 0.9), 0),
        score_line(candidate(1, 0.1), 0),
    ]
