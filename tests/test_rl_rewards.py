"""The TRL reward functions: hand-computed values, logged parts, the judge over real HTTP."""

import doctest

import pytest
import sse_server
from sse_server import Script, ScriptedServer, plan

import longwrite.cli.rl
import longwrite.rl.metrics
import longwrite.rl.plots
import longwrite.rl.rewards
from longwrite.rl.config import LengthRewardConfig, RewardsConfig, WritingRewardConfig
from longwrite.rl.rewards import (
    ClassifierReward,
    FormatReward,
    JudgeReward,
    LengthReward,
    build_rewards,
    judge_prompt,
    openai_judge,
    parse_judge_score,
)


def test_doctests():
    for module in (
        longwrite.rl.rewards,
        longwrite.rl.metrics,
        longwrite.rl.plots,
        longwrite.cli.rl,
    ):
        result = doctest.testmod(module)
        assert result.failed == 0 and result.attempted > 0, module.__name__


class Metrics(dict):
    """Stands in for TRL's `log_metric` hook: name -> values logged."""

    def __call__(self, name, value):
        self.setdefault(name, []).append(value)


def ten(word):
    return " ".join([word] * 10)


def test_length_reward_by_hand():
    completions = [
        "<think>plan</think><answer>" + " ".join(["word"] * 20),  # 20: inside [10, 20]
        "<think>plan</think><answer>one two three four five",  # 5 words, lo 10: 5/10
        "no tags at all, so all answer: one two three four five six seven",  # 14: inside
        "<think>plan</think><answer>" + " ".join(["word"] * 40),  # 40 > hi 20, Lmax 60: 20/40
        "<think>plan, never finished",  # no answer: 0 words, 0/10
    ]
    metrics = Metrics()
    rewards = LengthReward(max_words=60)(
        ["p"] * 5, completions, lo=[10] * 5, hi=[20] * 5, log_metric=metrics
    )
    assert rewards == [1.0, 0.5, 1.0, 0.5, 0.0]
    assert metrics["answer_words"] == [pytest.approx((20 + 5 + 14 + 40 + 0) / 5)]
    assert metrics["length/in_range"] == [pytest.approx(2 / 5)]


def test_length_reward_default_lmax_and_per_row_ranges():
    text = "<think>p</think><answer>" + " ".join(["word"] * 300)
    # [100, 200]: Lmax = 200 + max(200, 500) = 700, so 300 words: (700 - 300) / 500 = 0.8.
    # [300, 400]: inside.
    assert LengthReward()(["a", "b"], [text, text], lo=[100, 300], hi=[200, 400]) == [0.8, 1.0]


def test_format_reward_by_hand():
    completions = [
        "<think>plan</think>\n<answer>" + ten("alpha") + "</answer>",  # loops: 10 tokens,
        "<think>plan</think><answer>one two three four five\n\nsix seven eight nine ten",
        "<think>plan</think><answer>a b c d e\n\na b c d e",  # half repeated
        "just prose, no tags",
        # (text after `</answer>` is cut off, as inference stops there: tests/test_rl_fixes.py)
        "<think>plan <answer>x y",  # no </think>; the mid-line <answer> is quoted, not a tag
    ]
    metrics = Metrics()
    rewards = FormatReward()(["p"] * 5, completions, log_metric=metrics)
    # "alpha" x 10: 7 shingles, 1 new, containment 6/7 > 0.5: wholly repeated.
    assert rewards == [0.0, 1.0, 0.5, 0.0, 0.0]
    assert metrics["format/structure"] == [pytest.approx(3 / 5)]
    assert metrics["format/repetition"] == [pytest.approx((1.0 + 0 + 0.5 + 0 + 0) / 5)]


def test_build_rewards_follows_the_config():
    funcs, weights = build_rewards(
        RewardsConfig(length=LengthRewardConfig(weight=2.0, max_words=99))
    )
    assert [f.__name__ for f in funcs] == ["length"] and weights == [2.0]
    assert funcs[0].max_words == 99


# ---- the judge ----------------------------------------------------------------------------


def test_parse_judge_score():
    assert parse_judge_score("Good.\nScore: 10") == 1.0
    assert parse_judge_score("score = 5.5") == pytest.approx(0.5)
    assert parse_judge_score("An early Score: 2 ... on reflection\n**Score:** 7/10") == (
        pytest.approx(6 / 9)
    )
    assert parse_judge_score('{"reason": "fine", "score": 4}') == pytest.approx(3 / 9)
    for bad in ("", "I would give it an eight.", "Score: 0", "Score: 12", "Score: -3"):
        assert parse_judge_score(bad) is None, bad


def test_judge_prompt_substitutes_plainly():
    text = judge_prompt("Write {question} with {answer}", "An answer with {question}.")
    assert "The request:\nWrite {question} with {answer}\n" in text
    assert text.rstrip().endswith("The response:\nAn answer with {question}.")
    assert text.count("Score: 7") == 1  # the format example, once


def test_judge_retries_and_reports_unscorable_as_none():
    replies = {"GOOD": ["Fine work. Score: 8"], "FLAKY": ["hmm", "Score: 4"], "BAD": ["no"] * 9}
    asked = []

    def complete(prompt):
        key = next(k for k in replies if k in prompt)
        asked.append(key)
        return replies[key].pop(0)

    judge = JudgeReward(complete, concurrency=2, attempts=3, backoff=0)
    metrics = Metrics()
    completions = ["<think>t</think><answer>GOOD", "<answer>FLAKY", "BAD"]
    scores = judge(["p"] * 3, completions, question=["q"] * 3, log_metric=metrics)
    assert scores == [pytest.approx(7 / 9), pytest.approx(3 / 9), None]
    assert sorted(asked) == ["BAD"] * 3 + ["FLAKY"] * 2 + ["GOOD"]
    assert metrics["writing/unscored"] == [pytest.approx(1 / 3)]
    judge.close()


@pytest.fixture
def judge_server(monkeypatch):
    """A scripted OpenAI-compatible server whose reply depends on a marker in the prompt."""
    replies = {}

    def routed(self, body):
        prompt = body.get("prompt", "")
        for marker, text in replies.items():
            if marker in prompt:
                return [plan(text, 0, self.owner.script, int(body.get("max_tokens") or 16), [])]
        return None  # an unexpected prompt: HTTP 400

    monkeypatch.setattr(sse_server._Handler, "_plan", routed)
    servers = []

    def start(script=None, **kw):
        replies.clear()
        replies.update(kw)
        server = ScriptedServer(script or Script()).__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.__exit__(None, None, None)


def _judge(url, **kw):
    cfg = WritingRewardConfig(judge=url, judge_max_tokens=64, timeout=10)
    return JudgeReward(openai_judge(cfg), concurrency=4, backoff=0, **kw)


def test_judge_over_http_good_and_malformed(judge_server):
    server = judge_server(GOOD="The plan is clear.\nScore: 9", MALFORMED="Nice! 9 out of ten.")
    judge = _judge(server.url, attempts=2)
    completions = [
        "<think>x</think><answer>GOOD answer",
        "<think>x</think><answer>MALFORMED answer",
        "<think>x</think><answer>GOOD again",
    ]
    scores = judge(["p"] * 3, completions, question=["Write well."] * 3)
    assert scores == [pytest.approx(8 / 9), None, pytest.approx(8 / 9)]
    sent = [r.body for r in server.completions]
    assert len(sent) == 2 + 2  # the malformed one was asked twice
    assert all(b["prompt"].startswith(judge_prompt("Write well.", "")[:40]) for b in sent)
    assert all("<think>" not in b["prompt"] for b in sent)  # the answer alone is judged
    judge.close()


def test_judge_over_http_failing_server_gives_none(judge_server):
    server = judge_server(Script(status=500), GOOD="Score: 9")
    judge = _judge(server.url, attempts=3)
    assert judge(["p", "p"], ["<answer>GOOD", "<answer>GOOD"]) == [None, None]
    assert len(server.completions) == 2 * 3
    judge.close()


def test_an_unreachable_judge_fails_before_training():
    from longwrite.errors import LongwriteError

    cfg = RewardsConfig(writing=WritingRewardConfig(judge="http://127.0.0.1:9", timeout=2))
    with pytest.raises(LongwriteError, match="cannot reach the server"):
        build_rewards(cfg)


# ---- the reward model ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def reward_model_dir(tiny_model_dir, tmp_path_factory):
    """A one-logit Qwen2 sequence classifier on the tiny model's tokenizer."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1)
    out = tmp_path_factory.mktemp("rm") / "model"
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(out)
    return out


def test_classifier_scores_the_answer_alone_in_batches(reward_model_dir):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    answers = [
        "A short one.",
        "A much longer answer, " * 6,
        "中文的回答。",
        "Mid length text here.",
    ]
    completions = [f"<think>plan {i}</think>\n<answer>{a}" for i, a in enumerate(answers)]
    reward = ClassifierReward(str(reward_model_dir), device="cpu", batch_size=3)
    metrics = Metrics()
    scores = reward(["p"] * 4, completions, log_metric=metrics)
    # The oracle: each answer alone, unpadded, through the model loaded independently.
    tok = AutoTokenizer.from_pretrained(reward_model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(reward_model_dir).eval()
    with torch.inference_mode():
        expected = [
            model(**tok(a, return_tensors="pt", add_special_tokens=False)).logits[0, 0].item()
            for a in answers
        ]
    assert scores == pytest.approx(expected, abs=1e-4)
    assert len(set(round(s, 4) for s in scores)) == 4  # a test that can fail: they differ
    assert "answer_words" in metrics
    # An empty answer still gets a number (the end-of-text token alone).
    assert isinstance(reward(["p"], ["<think>only a plan</think>"])[0], float)


def test_judge_chat_asks_over_the_chat_endpoint():
    from judge_servers import judge

    with judge(lambda prompt: "Fine work.\nScore: 7") as server:
        cfg = WritingRewardConfig(
            judge=server.url, judge_chat=True, judge_max_tokens=64, timeout=10
        )
        reward = JudgeReward(openai_judge(cfg), concurrency=2, backoff=0)
        try:
            scores = reward(["p"], ["<think>x</think><answer>An answer."], question=["Write."])
        finally:
            reward.close()
    assert scores == [pytest.approx(6 / 9)]
    assert [path for path, _ in server.asked] == ["/v1/chat/completions"]
    sent = server.asked[0][1]
    assert sent.startswith(judge_prompt("Write.", "")[:40]) and "<think>" not in sent
