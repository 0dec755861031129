"""`longwrite eval arena`: the Bradley-Terry fit (hand-solved cases and a slow reference
kept here), the order swap, a malformed verdict, win rates against hand-computed values,
resume.

The scripted judge reads `Q=N` in each answer it is shown and prefers the higher N (equal:
a tie); `BIASED` makes it always answer "A"; an answer holding `CONFUSE` gets prose back.
"""

from __future__ import annotations

import json
import math
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from judge_servers import judge
from typer.testing import CliRunner

from longwrite.cli.eval import eval_app
from longwrite.evaluate import arena
from longwrite.evaluate.ratings import ELO_PER_THETA, fit_theta, ratings, to_elo, win_matrix

# ---------------------------------------------------------------- the rating fit


def reference_elo(n: int, battles: list[tuple[int, int, float]], prior: float) -> list[float]:
    """Hunter's MM algorithm for Bradley-Terry, in plain Python: slow, obviously right."""
    wins = [[0.0] * n for _ in range(n)]
    for a, b, r in battles:
        wins[a][b] += r
        wins[b][a] += 1 - r
    games = [[wins[i][j] + wins[j][i] for j in range(n)] for i in range(n)]
    for i in range(n):
        for j in range(n):
            if games[i][j] > 0:
                wins[i][j] += prior / 2
    games = [[wins[i][j] + wins[j][i] for j in range(n)] for i in range(n)]
    p = [1.0] * n
    for _ in range(20_000):
        new = []
        for i in range(n):
            denom = sum(games[i][j] / (p[i] + p[j]) for j in range(n) if j != i)
            new.append(sum(wins[i]) / denom if denom else p[i])
        scale = math.exp(sum(math.log(x) for x in new) / n)
        new = [x / scale for x in new]
        done = max(abs(x - y) for x, y in zip(new, p, strict=True)) < 1e-13
        p = new
        if done:
            break
    theta = [math.log(x) for x in p]
    return [ELO_PER_THETA * (t - sum(theta) / n) + 1000 for t in theta]


def test_two_players_hand_solved() -> None:
    # A beats B 3 times of 4: P(A > B) = 3/4, so theta_A - theta_B = ln 3
    elo = to_elo(fit_theta(np.array([[0.0, 3.0], [1.0, 0.0]]), prior=0.0), [0, 1])
    assert elo[0] - elo[1] == pytest.approx(400 * math.log10(3))
    assert (elo[0] + elo[1]) / 2 == pytest.approx(1000)


def test_three_players_hand_solved() -> None:
    # strengths 4 : 2 : 1 reproduce these counts exactly (each player's wins = expected wins)
    wins = np.array([[0, 2, 4], [1, 0, 2], [1, 1, 0]], dtype=float)
    elo = to_elo(fit_theta(wins, prior=0.0), [2])  # C anchored at 1000
    step = 400 * math.log10(2)
    assert elo == pytest.approx([1000 + 2 * step, 1000 + step, 1000])


def test_ties_count_half_a_win_each_way() -> None:
    battles = [(0, 1, 1.0), (0, 1, 0.5), (0, 1, 0.5), (0, 1, 0.0)]
    assert [r.elo for r in ratings(2, battles, [0, 1], rounds=0, prior=0.0)] == pytest.approx(
        [1000, 1000]
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fit_matches_the_slow_reference(seed: int) -> None:
    rng = random.Random(seed)
    n = 6
    truth = [rng.gauss(0, 1) for _ in range(n)]
    battles = []
    for _ in range(400):
        a, b = rng.sample(range(n), 2)
        p = 1 / (1 + math.exp(truth[b] - truth[a]))
        u = rng.random()
        battles.append((a, b, 1.0 if u < p * 0.9 else 0.5 if u < p * 0.9 + 0.1 else 0.0))
    battles.append((0, 1, 1.0))
    got = ratings(n, battles, list(range(n)), rounds=0, prior=0.1)
    assert [r.elo for r in got] == pytest.approx(reference_elo(n, battles, 0.1), abs=1e-6)


def test_a_player_who_lost_everything_has_a_finite_rating() -> None:
    battles = [(0, 1, 1.0)] * 10 + [(1, 2, 0.5)] * 10
    got = ratings(3, battles, [1, 2], rounds=50)
    assert all(math.isfinite(r.elo) for r in got)
    assert got[0].elo > got[1].elo + 400


def test_bootstrap_intervals_hold_the_fit_and_are_reproducible() -> None:
    battles = [(0, 1, 1.0)] * 30 + [(0, 1, 0.0)] * 10 + [(1, 2, 1.0)] * 20 + [(1, 2, 0.0)] * 20
    first = ratings(3, battles, [1, 2], rounds=300, seed=7)
    assert first == ratings(3, battles, [1, 2], rounds=300, seed=7)
    for r in first:
        assert r.lo is not None and r.lo <= r.elo <= r.hi
    assert first[0].hi - first[0].lo > 50  # 40 battles leave real doubt
    wins = win_matrix(3, np.array([0, 1]), np.array([1, 2]), np.array([1.0, 0.5]))
    assert wins.tolist() == [[0, 1, 0], [0, 0, 0.5], [0, 0.5, 0]]


# ---------------------------------------------------------------- verdicts and battles


def test_verdicts_and_outcomes() -> None:
    assert arena.parse_verdict('{"winner": "b", "reason": "x"}') == "B"
    assert arena.parse_verdict('Here:\n```json\n{"winner": "Tie"}\n```') == "tie"
    for bad in ('{"winner": "C"}', "A is better", '{"winner": 1}'):
        with pytest.raises(ValueError):
            arena.parse_verdict(bad)
    # candidate first, then baseline first: only a consistent pair is a win or a loss
    assert [arena.outcome(*v) for v in [("A", "B"), ("B", "A"), ("A", "A"), ("B", "B")]] == [
        1.0,
        0.0,
        0.5,
        0.5,
    ]


def shown(prompt: str) -> tuple[str, str]:
    a = prompt.split("[Response A]\n", 1)[1].split("\n\n[Response B]\n", 1)
    return a[0], a[1].split("\n\n[Your JSON verdict]", 1)[0]


def scripted(prompt: str) -> str:
    a, b = shown(prompt)
    if "CONFUSE" in a + b:
        return "Both are fine, really."
    if "BIASED" in a + b:
        return '{"winner": "A", "reason": "first is best"}'
    qa, qb = (int(re.search(r"Q=(\d+)", t).group(1)) for t in (a, b))
    winner = "A" if qa > qb else "B" if qb > qa else "tie"
    return json.dumps({"winner": winner, "reason": "compared"})


PROMPTS = [
    {"idx": 1, "question": "Write an essay.", "type": "essay", "length": 800,
     "baseline_response": {"gpt": "Q=5 essay", "r1": "Q=8 essay"}},
    {"idx": 2, "question": "Write a story.", "type": "story", "length": 2000,
     "baseline_response": [{"model": "gpt", "response": "Q=5 story"},
                           {"model": "r1", "response": "<think>x</think>Q=8 story"}]},
    {"idx": 3, "question": "Write a poem.", "type": "story", "length": 100,
     "baseline_response": {"gpt": "Q=5 poem", "r1": "Q=8 poem"}},
]  # fmt: skip
STRONG = [{"idx": 1, "answer": "Q=9"}, {"idx": 2, "answer": "Q=8"}, {"idx": 3, "answer": "Q=9"}]
WEAK = [{"id": 1, "answer": "Q=1"}, {"id": 2, "answer": "Q=6 CONFUSE"}, {"id": 3, "answer": "Q=5"}]


def write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def run(tmp_path: Path, url: str, *results: Path, rounds: str = "200") -> Any:
    args = ["arena", *map(str, results), "--baselines", str(tmp_path / "arena.jsonl"),
            "--judge", url, "--retries", "0", "--rounds", rounds, "--json"]  # fmt: skip
    return CliRunner().invoke(eval_app, args)


def test_arena_win_rates_and_ratings_against_hand_computed_values(tmp_path: Path) -> None:
    write(tmp_path / "arena.jsonl", PROMPTS)
    strong, weak = write(tmp_path / "strong.jsonl", STRONG), write(tmp_path / "weak.jsonl", WEAK)
    with judge(scripted) as server:
        out = run(tmp_path, server.url, strong, weak)
    assert out.exit_code == 1, out.output  # weak's story battles stay unscored
    data = json.loads(out.stdout)
    s = data["win_rates"]["strong"]
    assert s["by_baseline"]["gpt"] == {"n": 3, "wins": 3, "ties": 0, "losses": 0, "win_rate": 1.0}
    assert s["by_baseline"]["r1"]["wins"] == 2 and s["by_baseline"]["r1"]["ties"] == 1
    assert s["by_type"]["story"]["win_rate"] == pytest.approx((3 + 0.5) / 4)
    assert s["all"]["win_rate"] == pytest.approx(5.5 / 6)
    w = data["win_rates"]["weak"]
    assert w["by_baseline"]["gpt"] == {"n": 2, "wins": 0, "ties": 1, "losses": 1, "win_rate": 0.25}
    assert sorted(data["unscored"]) == ["weak|2|gpt", "weak|2|r1"]  # not counted as losses
    assert data["battles"] == 10 and data["inconsistent"] == 0
    elo = {k: v["elo"] for k, v in data["ratings"].items()}
    assert elo["strong"] > elo["r1"] > elo["gpt"] > elo["weak"]
    assert (elo["r1"] + elo["gpt"]) / 2 == pytest.approx(1000)
    assert all(v["lo"] <= v["elo"] <= v["hi"] for v in data["ratings"].values())
    assert len(server.asked) == 2 * 2 * 3 * 2  # 2 candidates x 3 prompts x 2 baselines x 2 orders
    assert not any("<think>" in p for _, p in server.asked)
    assert (tmp_path / "strong.arena.json").exists()  # the summary `eval report` shows
    with judge(scripted) as server:  # a re-run asks only about the unscored
        again = run(tmp_path, server.url, strong, weak)
    assert len(server.asked) == 4
    assert json.loads(again.stdout)["win_rates"] == data["win_rates"]


def test_position_bias_is_cancelled_by_the_swap(tmp_path: Path) -> None:
    write(tmp_path / "arena.jsonl", PROMPTS)
    biased = write(tmp_path / "c.jsonl", [{"idx": i, "answer": f"Q={i} BIASED"} for i in (1, 2, 3)])
    with judge(scripted) as server:
        out = run(tmp_path, server.url, biased, rounds="0")
    data = json.loads(out.stdout)
    assert out.exit_code == 0, out.output
    assert data["inconsistent"] == 6 and data["win_rates"]["c"]["all"]["ties"] == 6
    orders = [shown(p)[0].endswith("BIASED") for _, p in server.asked]
    assert orders.count(True) == orders.count(False) == 6  # each pair shown both ways
    assert data["ratings"]["c"]["elo"] == pytest.approx(1000, abs=1)


def test_a_candidate_named_like_a_baseline_is_refused(tmp_path: Path) -> None:
    write(tmp_path / "arena.jsonl", PROMPTS)
    gpt = write(tmp_path / "gpt.jsonl", STRONG)
    out = run(tmp_path, "http://127.0.0.1:9", gpt)
    assert out.exit_code != 0 and "named like a baseline" in str(out.exception)


@pytest.mark.slow
def test_arena_resumes_after_kill_9(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    write(tmp_path / "arena.jsonl", PROMPTS)
    strong = write(tmp_path / "strong.jsonl", STRONG)
    scores = tmp_path / "strong.arena.jsonl"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    with judge(scripted, delay=0.2) as server:
        base = str(tmp_path / "arena.jsonl")
        cmd = [sys.executable, "-m", "longwrite", "eval", "arena", str(strong), "--baselines",
               base, "--judge", server.url, "--concurrency", "1"]  # fmt: skip
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (
            not scores.exists() or scores.read_text().count("\n") < 3
        ):
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    kept = [json.loads(line) for line in scores.read_text().splitlines() if line.strip()]
    assert 3 <= len(kept) < 12
    with judge(scripted) as server:
        out = run(tmp_path, server.url, strong)
    assert len(server.asked) == 12 - len(kept)
    assert json.loads(out.stdout)["win_rates"]["strong"]["all"]["win_rate"] == pytest.approx(
        5.5 / 6
    )
