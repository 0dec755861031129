"""Benchmark: Arena-Write's rating fit at the size of a real run.

Run from the repository root: `python bench/arena.py`. It builds the battles of 4 candidates
against 6 baselines on 100 prompts (2,400 battles, outcomes drawn from known strengths, ties
included), then fits Bradley-Terry Elo ratings with 1,000 bootstrap rounds (`ratings`), the
way `longwrite eval arena` does after the judge has spoken. numpy is held to one thread.

Printed figures (the time is the best of 3 runs; the machine is shared and noisy):
- each player's Elo and 95% interval, beside the Elo its true strength gives (a sanity
  check: the truth should fall inside most intervals);
- last line: `arena: ratio=R goal<=1.0`, R = seconds for the fit and the bootstrap on one
  core. Goal R <= 1.0: rating must cost nothing beside the judging.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import math  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from longwrite.evaluate.ratings import ELO_PER_THETA, ratings  # noqa: E402

CANDIDATES = 4
BASELINES = 6
PROMPTS = 100
ROUNDS = 1000
RUNS = 3
TIE = 0.15  # the share of battles that end in a tie


def battles(rng: random.Random, theta: list[float]) -> list[tuple[int, int, float]]:
    out = []
    for c in range(CANDIDATES):
        for b in range(CANDIDATES, CANDIDATES + BASELINES):
            for _ in range(PROMPTS):
                p = 1.0 / (1.0 + math.exp(theta[b] - theta[c]))
                u = rng.random()
                result = 0.5 if u < TIE else 1.0 if rng.random() < p else 0.0
                out.append((c, b, result))
    return out


def main() -> None:
    rng = random.Random(0)
    theta = [rng.uniform(-1.5, 1.5) for _ in range(CANDIDATES + BASELINES)]
    games = battles(rng, theta)
    anchor = list(range(CANDIDATES, CANDIDATES + BASELINES))
    best = math.inf
    for _ in range(RUNS):
        start = time.perf_counter()
        rated = ratings(CANDIDATES + BASELINES, games, anchor, rounds=ROUNDS, seed=1)
        best = min(best, time.perf_counter() - start)
    ref = sum(theta[i] for i in anchor) / len(anchor)
    print(f"{len(games):,} battles, {ROUNDS:,} bootstrap rounds")
    for i, r in enumerate(rated):
        role = "candidate" if i < CANDIDATES else "baseline "
        truth = 1000 + ELO_PER_THETA * (theta[i] - ref)
        print(f"  {role} {i}: Elo {r.elo:7.1f}  [{r.lo:7.1f}, {r.hi:7.1f}]  (truth {truth:7.1f})")
    print(f"fit + bootstrap: {best:.3f} s (best of {RUNS})")
    print(f"arena: ratio={best:.3f} goal<=1.0")


if __name__ == "__main__":
    main()
