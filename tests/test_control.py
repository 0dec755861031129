"""Length control: steering sentence, budget, best of K."""

from scripted import CandidatesEngine

from longwrite.generate.best_of import best_of
from longwrite.length.budget import with_budget
from longwrite.length.steer import steer, steer_sentence
from longwrite.prompt.request import build_request


def test_steer_sentence_in_both_languages():
    assert steer_sentence(3000, "en") == "The answer should be about 3,000 words long."
    assert steer_sentence(2000, "zh") == "全文篇幅约2000字。"


def test_steer_closes_the_users_sentence_first():
    assert steer("Write about tides", 500, "en") == (
        "Write about tides. The answer should be about 500 words long."
    )
    assert steer("Write about tides?  ", 500, "en").startswith("Write about tides? The")
    assert steer("写一篇关于秋天的散文", 800, "zh") == "写一篇关于秋天的散文。全文篇幅约800字。"


def test_budget_replaces_max_tokens_unless_the_user_fixed_it():
    request = build_request("Write about tides", max_tokens=123)
    budgeted, budget = with_budget(request, 1000, context=32768)
    assert budgeted.sampling.max_tokens == budget.max_tokens != 123
    kept, _ = with_budget(request, 1000, context=32768, keep_max_tokens=True)
    assert kept.sampling.max_tokens == 123


def fake_score(raw: str) -> dict[str, float]:
    """Scores a candidate by how many times it says 'good' (a stand-in for the rewards)."""
    return {"total": float(raw.count("good"))}


def test_best_of_picks_the_highest_total_and_reports_all():
    engine = CandidatesEngine(
        [
            "<think>a</think><answer>good text",
            "<think>b</think><answer>good good text here",
            "<think>c</think><answer>bad",
        ],
        finishes=["stop", "length", "stop"],
    )
    seen = []
    result, candidates, best = best_of(
        engine, build_request("x"), 3, fake_score, progress=lambda *a: seen.append(a)
    )
    assert best == 1
    assert engine.samplings[0].n == 3
    assert result.answer == "good good text here" and result.thinking == "b"
    assert result.finish_reason == "length" and result.words == 4
    assert [c.scores["total"] for c in candidates] == [1.0, 2.0, 0.0]
    assert result.tokens == sum(c.tokens for c in candidates)
    assert {i for i, _, _ in seen} == {0, 1, 2}
    assert candidates[1].summary()["scores"] == {"total": 2.0}
    assert "answer" not in candidates[1].summary()


def test_best_of_ties_go_to_the_first_candidate():
    engine = CandidatesEngine(["<answer>good one", "<answer>good two"])
    result, _, best = best_of(engine, build_request("x"), 2, fake_score)
    assert result.answer == "good one" and best == 0
