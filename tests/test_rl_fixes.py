"""RL faults from the correctness issue (items 20-22):

- 20: rollouts end where inference ends: vLLM rollouts get inference's stop strings, and the
  rewards score a completion cut at its first stop string (TRL's transformers rollouts cannot
  stop at a string);
- 21: with several processes only the main one prepares the run folder, the others wait;
- 22: the LLM judge as writing reward: an answer longer than the judge's context is cut to
  fit (and counted), and any failure of a judge request is retried, then unscored.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from sse_server import Script, ScriptedServer, _Handler, _HTTPServer, error_body, plan
from test_rl_config import GOOD
from test_rl_train import fake_checkpoint

from longwrite.engines.base import DEFAULT_STOP
from longwrite.errors import LongwriteError
from longwrite.prompt.request import build_request
from longwrite.rl import run_dir, train
from longwrite.rl.config import ConfigError, RewardsConfig, WritingRewardConfig, load_config
from longwrite.rl.rewards import (
    FormatReward,
    JudgeReward,
    LengthReward,
    build_rewards,
    judge_prompt,
)


class Metrics(dict):
    """Stands in for TRL's `log_metric` hook: name -> values logged."""

    def __call__(self, name: str, value: float) -> None:
        self.setdefault(name, []).append(value)


@pytest.fixture
def recipe(tmp_path: Path):
    data = tmp_path / "prompts.jsonl"
    data.write_text(json.dumps({"prompt": "Write a 20-word slogan."}) + "\n")

    def write(*overrides: str, model: str | None = None) -> Any:
        path = tmp_path / "recipe.yaml"
        path.write_text(GOOD.format(data=data, out=tmp_path / "run"))
        sets = list(overrides) + ([f"model={model}"] if model else [])
        return load_config(path, sets, processes=1)

    return write


# ---------------------------------------------------------------- 20: completion boundaries


def test_vllm_rollouts_stop_where_inference_stops(recipe) -> None:
    inference = list(build_request("Write a poem.").sampling.stop)
    assert inference == list(DEFAULT_STOP) and "</answer>" in inference
    for engine in ("engine=vllm-colocate", "engine=vllm-server"):
        cfg = recipe(f"rollout.{engine}", "rollout.vllm_server=http://127.0.0.1:8000")
        args = train.build_grpo_config(cfg, [1.0, 1.0])
        assert args.generation_kwargs == {"stop": inference}, engine
    merged = recipe(
        "rollout.engine=vllm-colocate", 'trl.generation_kwargs={"min_tokens": 4, "seed": 1}'
    )
    kwargs = train.build_grpo_config(merged, [1.0, 1.0]).generation_kwargs
    assert kwargs == {"stop": inference, "min_tokens": 4, "seed": 1}
    for key in ("stop", "stop_strings"):
        bad = recipe("rollout.engine=vllm-colocate", f'trl.generation_kwargs={{"{key}": ["x"]}}')
        with pytest.raises(ConfigError, match=f"trl.generation_kwargs.{key}: rollouts stop"):
            train.build_grpo_config(bad, [1.0, 1.0])


def test_vllm_sampling_params_take_the_rollout_stop_strings(recipe) -> None:
    """What TRL's colocated vLLM builds from our generation_kwargs (vllm/... SamplingParams)."""
    vllm = pytest.importorskip("vllm")
    cfg = recipe("rollout.engine=vllm-colocate")
    args = train.build_grpo_config(cfg, [1.0, 1.0])
    params = vllm.SamplingParams(
        n=1, temperature=args.temperature, max_tokens=16, **args.generation_kwargs
    )
    assert list(params.stop) == list(DEFAULT_STOP)


# What TRL's transformers rollouts can produce: generation runs past a stop string.
PAST = [
    "<think>plan</think><answer>one two three four</answer>\n<|user|>: more? <|assistant|>: "
    "<think>again</think><answer>five six seven eight nine ten",
    "<think>plan</think><answer>one two three four<|user|>: and five six seven",
    "<think>plan</think><answer>one two three four",  # what vLLM / inference return
]


def test_rewards_score_the_completion_cut_at_its_first_stop_string() -> None:
    from longwrite.rl.rewards import cut_at_stop

    assert [cut_at_stop(c) for c in PAST] == [PAST[2]] * 3
    metrics = Metrics()
    length = LengthReward()(["p"] * 3, PAST, lo=[4] * 3, hi=[5] * 3, log_metric=metrics)
    assert length == [1.0, 1.0, 1.0]  # 4 words each: the words after the stop do not count
    assert metrics["answer_words"] == [4.0]
    fmt = FormatReward()(["p"] * 3, PAST, log_metric=metrics)
    assert fmt == [1.0, 1.0, 1.0]  # the second <think>/<answer> came after the stop
    assert metrics["completions/past_stop"] == [pytest.approx(2 / 3)] * 2
    seen: list[str] = []

    def complete(prompt: str) -> str:
        seen.append(prompt)
        return "Score: 10"

    judge = JudgeReward(complete, concurrency=1, backoff=0)
    assert judge(["p"] * 3, PAST, question=["q"] * 3) == [1.0, 1.0, 1.0]
    assert seen == [judge_prompt("q", "one two three four")] * 3
    judge.close()


# ---------------------------------------------------------------- 21: the main process prepares


class FakeState:
    """accelerate's PartialState for one process of two; `others` runs when this process
    waits at the barrier (what the other process does meanwhile)."""

    def __init__(self, main: bool, events: list[str], others: Any = None) -> None:
        self.is_main_process = main
        self.events = events
        self.others = others

    def wait_for_everyone(self) -> None:
        self.events.append("barrier")
        if self.others is not None:
            self.others()
        self.events.append("released")

    def main_process_first(self) -> Any:
        import contextlib

        return contextlib.nullcontext()


class Started(Exception):
    pass


def run_as(rank: int, cfg: Any, monkeypatch: pytest.MonkeyPatch, others: Any = None) -> list:
    """`run_train(cfg, resume=True)` as process `rank` of two, up to the trainer; the events."""
    events: list[str] = []
    monkeypatch.setenv("RANK", str(rank))  # what `accelerate launch` sets (LOCAL_RANK would
    # make TrainingArguments join a real process group)
    state = FakeState(rank == 0, events, others)
    monkeypatch.setattr("accelerate.PartialState", lambda *a, **k: state)
    monkeypatch.setattr(train, "_process_state", lambda: state, raising=False)
    scan = run_dir.find_checkpoints
    rename = Path.rename

    def find(run: Path) -> list[Path]:
        events.append("scan")
        return scan(run)

    def renamed(self: Path, target: Any) -> Any:
        events.append(f"rename {self.name}")
        return rename(self, target)

    class Trainer:
        def __init__(self, **kwargs: Any) -> None:
            events.append("trainer")
            raise Started

    monkeypatch.setattr(run_dir, "find_checkpoints", find)
    monkeypatch.setattr(Path, "rename", renamed)
    monkeypatch.setattr("trl.GRPOTrainer", Trainer)
    with pytest.raises(Started):
        train.run_train(cfg, resume=True)
    monkeypatch.undo()
    return events


def test_only_the_main_process_prepares_the_run_folder(recipe, monkeypatch, tmp_path) -> None:
    cfg = recipe(model="org/some-model")  # a Hub id: never loaded (the trainer is a stub)
    run = Path(cfg.output_dir)
    fake_checkpoint(run, 2)
    fake_checkpoint(run, 4, state=False)  # half-written by a killed run

    def main_meanwhile() -> None:  # while process 1 waits, process 0 sets checkpoint-4 aside
        run_dir.resume_checkpoint(run)

    events = run_as(1, cfg, monkeypatch, others=main_meanwhile)
    assert events[0] == "barrier", events  # process 1 reads the folder only after the main
    after = events[events.index("released") :]
    assert "scan" in after and not any(e.startswith("rename") for e in after)
    assert events[-1] == "trainer"
    assert (run / "incomplete-checkpoint-4").is_dir() and not (run / "checkpoint-4").exists()


def test_the_main_process_prepares_before_the_barrier(recipe, monkeypatch) -> None:
    cfg = recipe(model="org/some-model")
    run = Path(cfg.output_dir)
    fake_checkpoint(run, 2)
    fake_checkpoint(run, 4, state=False)
    events = run_as(0, cfg, monkeypatch)
    assert events.index("rename checkpoint-4") < events.index("barrier") < events.index("trainer")
    assert (run / "config.yaml").is_file() and (run / "incomplete-checkpoint-4").is_dir()


# ---------------------------------------------------------------- 22: the judge's context


class _ContextHandler(_Handler):
    """A judge like vLLM: a prompt of more tokens than fit beside max_tokens is refused with
    HTTP 400 (its tokenizer here: one token per 4 bytes); otherwise "Score: 8"."""

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        self._record(body)
        owner: ContextJudge = self.owner  # type: ignore[assignment]
        tokens = len(body.get("prompt", "").encode("utf-8")) // 4
        wanted = int(body.get("max_tokens") or 16)
        if owner.garbage:
            self._garbage()
            return
        if tokens + wanted > owner.context:
            message = (
                f"This model's maximum context length is {owner.context} tokens. However, you "
                f"requested {tokens + wanted} tokens ({tokens} in the messages, {wanted} in the "
                "completion). Please reduce the length of the messages or completion."
            )
            self._send_json(400, error_body(400, message))
            return
        self._stream(body, [plan("Clear and well built.\nScore: 8", 0, owner.script, wanted, [])])

    def _garbage(self) -> None:
        """HTTP 200 and an event stream whose data is not JSON (a confused proxy)."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._chunk(b"data: <html>upstream timed out</html>\n\n")
        self._chunk(b"")


class ContextJudge(ScriptedServer):
    context: int = 4096
    garbage: bool = False

    def __enter__(self) -> ContextJudge:
        self._httpd = _HTTPServer(("127.0.0.1", 0), _ContextHandler)
        self._httpd.owner = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self


LONG = "<think>plan</think><answer>" + "\n\n".join(
    f"Paragraph {i}: " + " ".join(["tide"] * 60) for i in range(200)
)  # 12,400 words, about 64 kB: far past a 4,096-token judge


def writing(url: str, **kw: Any) -> JudgeReward:
    cfg = RewardsConfig(writing=WritingRewardConfig(judge=url, judge_max_tokens=64, **kw))
    funcs, _ = build_rewards(cfg)
    funcs[0].backoff = 0
    return funcs[0]


@pytest.mark.parametrize("reported", [4096, None])  # /v1/models says max_model_len, or not
def test_an_answer_longer_than_the_judge_context_is_cut_to_fit(reported: int | None) -> None:
    script = Script(max_model_len=reported)
    with ContextJudge(script) as judge:
        # without a reported context, the configured one (here too large) stands in
        reward = writing(judge.url, attempts=3, **({} if reported else {"judge_context": 8192}))
        metrics = Metrics()
        short = "<think>p</think><answer>A short answer."
        scores = reward(["p", "p"], [LONG, short], question=["Write."] * 2, log_metric=metrics)
        reward.close()
    assert scores == [pytest.approx(7 / 9)] * 2  # scored, not escaped as unscored
    assert reward.context_tokens == (reported or 8192)
    assert metrics["writing/truncated"] == [0.5] and metrics["writing/unscored"] == [0.0]
    sent = [r.body["prompt"] for r in judge.completions if "Paragraph 0" in r.body["prompt"]]
    accepted = sent[-1]
    assert len(accepted.encode()) // 4 + 64 <= judge.context
    assert "Paragraph 0: tide" in accepted and "Paragraph 199" not in accepted
    assert "more words are not shown here" in accepted
    assert len(sent) == (1 if reported else 2)  # an unknown context: one refusal, then halved


def test_the_judge_is_told_the_rest_is_not_shown() -> None:
    from longwrite.scoring.judge import estimate_tokens

    seen: list[str] = []

    def complete(prompt: str) -> str:
        seen.append(prompt)
        return "Score: 5"

    reward = JudgeReward(complete, context_tokens=2000, max_tokens=100, backoff=0)
    assert reward(["p"], [LONG], question=["Write."]) == [pytest.approx(4 / 9)]
    assert estimate_tokens(seen[0]) <= 2000 - 100
    assert seen[0].rstrip().endswith("do not treat the cut as an unfinished text.]")
    reward.close()


def test_any_failure_of_the_judge_is_retried_then_unscored() -> None:
    failures = [RuntimeError("boom"), KeyError("choices"), ValueError("bad JSON"), None]
    calls = []

    def complete(prompt: str) -> Any:
        calls.append(prompt)
        error = failures[len(calls) - 1] if len(calls) <= len(failures) else None
        if error is not None:
            raise error
        return None  # a reply that is no text at all

    reward = JudgeReward(complete, attempts=4, backoff=0)
    metrics = Metrics()
    assert reward(["p"], ["<answer>fine"], log_metric=metrics) == [None]
    assert len(calls) == 4 and metrics["writing/unscored"] == [1.0]
    reward.close()


def test_a_judge_answering_garbage_over_http_is_unscored_not_fatal() -> None:
    with ContextJudge(Script()) as judge:
        reward = writing(judge.url, attempts=2)
        judge.garbage = True
        assert reward(["p", "p"], ["<answer>one", "<answer>two"]) == [None, None]
        reward.close()
    assert len(judge.completions) == 4


def test_closing_the_writing_reward_closes_the_judge_client() -> None:
    with ContextJudge(Script()) as judge:
        reward = writing(judge.url, attempts=1)
        assert reward(["p"], ["<answer>one"]) == [pytest.approx(7 / 9)]
        reward.close()  # as `rl train` does when it ends
        with pytest.raises(LongwriteError, match="closed"):
            reward.send("another prompt")


def test_a_judge_context_must_hold_the_reply(recipe) -> None:
    with pytest.raises(ConfigError, match="judge_context must exceed"):
        recipe("rewards.writing.judge=http://127.0.0.1:9", "rewards.writing.judge_context=64")
    assert issubclass(ConfigError, LongwriteError)
