"""Guards per candidate of `--best-of`: a looping or over-thinking candidate is repaired the
way a single stream is, and a candidate no guard touches costs no request."""

from __future__ import annotations

import json
from collections.abc import Iterator

from scripted import CandidatesEngine, cut
from test_guards import FRESH, HONEST, LOOP, PLAN
from typer.testing import CliRunner

from longwrite.engines.base import Chunk, Sampling
from longwrite.generate.best_of import best_of
from longwrite.generate.guards import CLOSE_THINKING, NO_GUARDS, Guards
from longwrite.prompt.request import build_request
from longwrite.scoring.rewards import repetition_penalty


class Repairs(CandidatesEngine):
    """The first request answers K candidates at once; each later one (a repair) gets the
    next of `later`, as one stream."""

    def __init__(self, candidates: list[str], later: list[str]) -> None:
        super().__init__(candidates)
        self.later = later

    def stream(self, prompt: str, sampling: Sampling) -> Iterator[Chunk]:
        if not self.prompts:
            yield from super().stream(prompt, sampling)
            return
        self.prompts.append(prompt)
        self.samplings.append(sampling)
        for piece in cut(self.later[len(self.prompts) - 2]):
            yield Chunk(piece, 1)
        yield Chunk("", 0, "stop")


def score(raw: str) -> dict[str, float]:
    return {"total": 1.0 - repetition_penalty(raw)}


def test_a_looping_candidate_is_cut_and_carried_on_and_the_honest_one_costs_nothing():
    request = build_request("Tell a story", seed=5)
    honest = PLAN + HONEST + "The end came quietly, with the first boats of spring."
    looping = PLAN + HONEST + LOOP * 30
    engine = Repairs([honest, looping], later=[FRESH])
    result, candidates, best = best_of(engine, request, 2, score, guards=Guards())
    assert len(engine.prompts) == 2  # the batch, then one repair: candidate 0 needed none
    repair_prompt, repair = engine.prompts[1], engine.samplings[1]
    assert repair_prompt == request.prompt + PLAN + HONEST + LOOP  # cut at a paragraph end
    assert repair.n == 1 and repair.seed == 6 and repair.repetition_penalty > 1.0
    assert repair.max_tokens < request.sampling.max_tokens  # what the kept text left
    fixed = candidates[1]
    assert fixed.answer.count(LOOP.strip()) == 1 and fixed.answer.endswith(FRESH)
    assert [g["kind"] for g in fixed.guard] == ["loop"]
    assert fixed.guard[0]["what"].startswith("She climbed")
    assert candidates[0].guard == [] and candidates[0].answer.endswith("spring.")
    assert fixed.tokens > len(cut(looping))  # the batch's tokens plus the repair's
    assert result.guard == candidates[best].guard
    assert "guard" in fixed.summary()


def test_a_candidate_thinking_past_its_budget_gets_its_thinking_closed_and_an_answer():
    request = build_request("Tell a story")
    runaway = "<think>" + "".join(f"step {i}, " for i in range(400))
    engine = Repairs(["<think>short</think><answer>A fine answer.", runaway], ["The answer."])
    _, candidates, _ = best_of(engine, request, 2, score, guards=Guards(think_budget=100))
    assert engine.prompts[1].endswith(CLOSE_THINKING)
    assert len(engine.prompts[1]) < len(request.prompt + runaway)  # stopped at the budget
    assert candidates[1].answer == "The answer." and candidates[1].thinking.startswith("step 0")
    assert [g["kind"] for g in candidates[1].guard] == ["think_budget"]


def test_without_guards_the_candidates_are_kept_as_sampled():
    engine = Repairs([PLAN + HONEST + LOOP * 30, PLAN + HONEST], later=[])
    _, candidates, _ = best_of(engine, build_request("Tell a story"), 2, score, guards=NO_GUARDS)
    assert len(engine.prompts) == 1
    assert candidates[0].answer.count("She climbed") == 30 and candidates[0].guard == []


def test_best_of_on_the_command_line_guards_every_candidate(monkeypatch):
    from longwrite.cli.app import app

    engine = Repairs([PLAN + HONEST + LOOP * 30, PLAN + HONEST + LOOP * 30], [FRESH, FRESH])
    monkeypatch.setattr("longwrite.engines.load_engine", lambda *a, **k: engine)
    monkeypatch.setattr("longwrite.engines.resolve_engine_name", lambda *a, **k: "scripted")
    out = CliRunner().invoke(app, ["write", "Tell a story", "--best-of", "2", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert "She climbed" in data["answer"] and data["answer"].count("She climbed") == 1
    assert [len(c["guard"]) for c in data["candidates"]] == [1, 1]
    assert len(engine.prompts) == 3


def test_best_of_over_a_llama_cpp_like_server_repairs_the_looping_candidate():
    """Over HTTP as llama.cpp's server streams it (no usage, blank-text tokens among the
    rest), two candidates at once: the one that loops is repaired by a second request that
    carries on from the cut; the other is left as sampled."""
    from sse_server import Script, ScriptedServer
    from test_guards import script as guard_script

    from longwrite.cli.app import app

    honest = PLAN + HONEST + "The end came quietly, with the first boats of spring."
    base = guard_script("", think=True).prompt
    fields = dict(text=PLAN + HONEST + LOOP * 30, others=(honest,), then=(FRESH,), prompt=base,
                  usage=False, blank_every=3)  # fmt: skip
    with ScriptedServer(Script(**fields)) as server:
        args = ["write", "Tell a story", "--server", server.url, "--best-of", "2", "--json"]
        out = CliRunner().invoke(app, args)
        assert out.exit_code == 0, out.output
        asked = [r.body for r in server.completions]
    data = json.loads(out.stdout)
    assert [len(c["guard"]) for c in data["candidates"]] == [1, 0]
    assert len(asked) == 2 and asked[0]["n"] == 2
    assert asked[1]["prompt"] == base + PLAN + HONEST + LOOP and asked[1].get("n", 1) == 1
    assert data["candidates"][0]["tokens"] > 0  # counted from the chunks: no usage was sent
    assert data["answer"].count("She climbed") <= 1
