"""Elo ratings from a Bradley-Terry fit over all battles, with bootstrap intervals.

The online Elo update depends on the order battles are played in; Arena-Write (like Chatbot
Arena) rates by maximum likelihood instead: P(i beats j) = 1 / (1 + exp(theta_j - theta_i)),
fitted over every battle at once, a tie counting half a win each way. The strengths are put
on the Elo scale, 400 / ln(10) points per unit of theta, with the mean of the `anchor`
players (the baselines) at 1000, so baselines keep their place whatever candidates join.

The fit is Newton's method on the concave log-likelihood (a handful of steps), written for a
stack of win matrices at once, so the bootstrap (battles resampled with replacement, 1,000
rounds by default, 95% percentile intervals) is one batched fit rather than 1,000 loops.
`prior` adds that many tie battles to every pair that met, so a player that lost every
battle still gets a finite rating; with `prior=0` the fit is the plain maximum likelihood.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

ELO_PER_THETA = 400.0 / math.log(10.0)
ANCHOR_ELO = 1000.0
DEFAULT_PRIOR = 0.1
DEFAULT_ROUNDS = 1000
MAX_STEPS = 100
MAX_STEP = 3.0  # the largest change of one theta in one Newton step
TOLERANCE = 1e-10


@dataclass(frozen=True)
class Rating:
    elo: float
    lo: float | None = None  # the bootstrap's 2.5% and 97.5% percentiles
    hi: float | None = None


def win_matrix(n: int, a: np.ndarray, b: np.ndarray, outcome: np.ndarray) -> np.ndarray:
    """W[i, j]: how often i beat j (`outcome` 1: a won, 0.5: tie, 0: b won)."""
    wins = np.zeros(n * n)
    np.add.at(wins, a * n + b, outcome)
    np.add.at(wins, b * n + a, 1.0 - outcome)
    return wins.reshape(n, n)


def fit_theta(wins: np.ndarray, prior: float = DEFAULT_PRIOR) -> np.ndarray:
    """Bradley-Terry strengths of a win matrix (n, n) or a stack of them (r, n, n); the first
    player's theta is 0. A player with no battles gets 0; ValueError when the fit diverges."""
    w = np.asarray(wins, dtype=float)
    single = w.ndim == 2
    w = w[None] if single else w
    games = w + np.swapaxes(w, 1, 2)
    w = w + (games > 0) * (prior / 2.0)
    games = w + np.swapaxes(w, 1, 2)
    r, n, _ = w.shape
    theta = np.zeros((r, n))
    won = w.sum(axis=2)
    ridge = np.eye(n - 1) * 1e-9
    for _ in range(MAX_STEPS):
        p = 1.0 / (1.0 + np.exp(theta[:, None, :] - theta[:, :, None]))  # p[i, j] = P(i > j)
        grad = won - (games * p).sum(axis=2)
        curv = games * p * (1.0 - p)
        hess = _degree(curv) - curv  # the negative Hessian: a weighted graph Laplacian
        step = np.linalg.solve(hess[:, 1:, 1:] + ridge, grad[:, 1:, None])[..., 0]
        step = np.clip(step, -MAX_STEP, MAX_STEP)
        theta[:, 1:] += step
        if np.abs(step).max(initial=0.0) < TOLERANCE:
            break
    if not np.isfinite(theta).all():
        raise ValueError("the rating fit diverged")
    return theta[0] if single else theta


def _degree(curv: np.ndarray) -> np.ndarray:
    """The row sums of each (n, n) matrix on a diagonal."""
    n = curv.shape[-1]
    out = np.zeros_like(curv)
    idx = np.arange(n)
    out[:, idx, idx] = curv.sum(axis=2)
    return out


def to_elo(theta: np.ndarray, anchor: Sequence[int]) -> np.ndarray:
    """Strengths on the Elo scale, the mean of the `anchor` players at 1000."""
    theta = np.asarray(theta, dtype=float)
    ref = theta[..., list(anchor)].mean(axis=-1, keepdims=True)
    return ANCHOR_ELO + ELO_PER_THETA * (theta - ref)


def ratings(
    n: int,
    battles: Sequence[tuple[int, int, float]],
    anchor: Sequence[int],
    *,
    rounds: int = DEFAULT_ROUNDS,
    seed: int = 0,
    prior: float = DEFAULT_PRIOR,
) -> list[Rating]:
    """The Elo of each of `n` players, with bootstrap 95% intervals when `rounds` > 0."""
    if not battles:
        return [Rating(ANCHOR_ELO) for _ in range(n)]
    arr = np.asarray(battles, dtype=float)
    a, b, outcome = arr[:, 0].astype(int), arr[:, 1].astype(int), arr[:, 2]
    point = to_elo(fit_theta(win_matrix(n, a, b, outcome), prior), anchor)
    if rounds <= 0:
        return [Rating(float(e)) for e in point]
    rng = np.random.default_rng(seed)
    m = len(arr)
    picks = rng.integers(0, m, size=(rounds, m))
    base = (np.arange(rounds) * n * n)[:, None]
    cells = rounds * n * n
    got = outcome[picks].ravel()
    won = np.bincount((base + a[picks] * n + b[picks]).ravel(), got, cells)
    lost = np.bincount((base + b[picks] * n + a[picks]).ravel(), 1.0 - got, cells)
    stack = (won + lost).reshape(rounds, n, n)
    boot = to_elo(fit_theta(stack, prior), anchor)
    lo, hi = np.percentile(boot, [2.5, 97.5], axis=0)
    return [Rating(float(e), float(x), float(y)) for e, x, y in zip(point, lo, hi, strict=True)]
