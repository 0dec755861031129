"""Benchmark: seconds per GRPO step through `longwrite rl train` against a bare TRL script.

Run from the repository root: `python bench/rl_step.py [--steps 12] [--rounds 3]`. Both sides
train the tiny-cpu recipe (`rl/tiny-cpu.yaml`: the tiny random model, 8 completions of 48
tokens per step, length and format rewards) in this one process, from the same prebuilt tiny
model, with the same seed and the same GRPOConfig values:

- ours: `load_config` + `run_train`, the code path of `longwrite rl train` (our reward
  wrappers with their logged parts, metrics.jsonl, the progress display, checkpoint guard);
- bare: a `GRPOTrainer` built by hand with two plain reward functions computing the same
  rewards, and nothing else.

Seconds per step are the gaps between consecutive logged steps (every step is logged on both
sides), so model loading and the final save are left out and logging is counted. Rounds
alternate ours/bare, and the median gap of each side is taken over all its rounds (the machine
is shared and noisy; a median ignores the odd stall). Checkpoints are only written after the
last step on both sides.

Last line: `rl_step: ratio=R goal<=1.10`, R = our median seconds per step / bare TRL's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

REPO = Path(__file__).resolve().parent.parent
RECIPE = REPO / "rl" / "tiny-cpu.yaml"
GOAL = 1.10


def ours(model: Path, out: Path, steps: int) -> list[float]:
    from longwrite.rl.config import load_config
    from longwrite.rl.metrics import METRICS_FILE, read_metrics
    from longwrite.rl.train import run_train

    cfg = load_config(
        RECIPE,
        [f"model={model}", f"output_dir={out}", f"train.max_steps={steps}",
         "train.save_steps=100000", f"data={REPO / 'examples' / 'rl_prompts.jsonl'}"],
        processes=1,
    )  # fmt: skip
    with open(os.devnull, "w") as sink:
        run_train(cfg, stream=sink)
    times = [r["time"] for r in read_metrics(out / METRICS_FILE)]
    return [b - a for a, b in zip(times, times[1:], strict=False)]


def bare(model: Path, out: Path, steps: int) -> list[float]:
    """A hand-built GRPOTrainer: the same settings, plain reward functions, one timing hook."""
    import yaml
    from datasets import Dataset
    from transformers import PrinterCallback, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from longwrite.generate.parser import split_think_answer
    from longwrite.io.counting import count_words
    from longwrite.length.targets import extract_target
    from longwrite.prompt.templates import build_prompt
    from longwrite.scoring.rewards import format_reward, length_reward, repetition_penalty

    recipe = yaml.safe_load(RECIPE.read_text())
    rollout, train = recipe["rollout"], recipe["train"]
    max_words = recipe["rewards"]["length"]["max_words"]
    rows = []
    for line in (REPO / "examples" / "rl_prompts.jsonl").read_text().splitlines():
        question = json.loads(line)["prompt"]
        if (target := extract_target(question)) is not None:
            rows.append({"prompt": build_prompt(question), "question": question,
                         "lo": target.range.lo, "hi": target.range.hi})  # fmt: skip

    def length(prompts, completions, lo, hi, **kwargs):
        return [
            length_reward(count_words(split_think_answer(c)[1]), a, b, max_words=max_words)
            for c, a, b in zip(completions, lo, hi, strict=True)
        ]

    def format(prompts, completions, **kwargs):  # noqa: A001 - TRL names the metric after it
        return [
            format_reward(c) * (1 - repetition_penalty(split_think_answer(c)[1]))
            for c in completions
        ]

    stamps: list[float] = []

    class Stamp(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "reward" in logs:
                stamps.append(time.time())

    args = GRPOConfig(
        output_dir=str(out), num_generations=rollout["num_generations"],
        temperature=rollout["temperature"], top_p=rollout["top_p"],
        max_completion_length=rollout["max_completion_length"],
        multi_objective_aggregation="normalize_then_sum", reward_weights=[1.0, 1.0],
        max_steps=steps, learning_rate=float(train["learning_rate"]),
        per_device_train_batch_size=train["per_device_train_batch_size"],
        gradient_accumulation_steps=train["gradient_accumulation_steps"],
        epsilon=0.2, beta=0.0, save_strategy="steps", save_steps=100000,
        save_total_limit=train["save_total_limit"], logging_steps=1, seed=train["seed"],
        bf16=False, fp16=False, gradient_checkpointing=False, report_to="none",
        disable_tqdm=True, dataloader_pin_memory=False,
    )  # fmt: skip
    trainer = GRPOTrainer(
        model=str(model),
        reward_funcs=[length, format],
        args=args,
        train_dataset=Dataset.from_list(rows),
        callbacks=[Stamp()],
    )
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    trainer.save_model(str(out / "final"))
    return [b - a for a, b in zip(stamps, stamps[1:], strict=False)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12, help="steps per run (default 12)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each side (default 3)")
    opts = parser.parse_args()
    warnings.filterwarnings("ignore")
    from transformers.utils import logging as hf_logging

    from longwrite.tiny import build_tiny_model

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    gaps: dict[str, list[float]] = {"ours": [], "bare": []}
    with tempfile.TemporaryDirectory(prefix="rl-bench-") as tmp:
        root = Path(tmp)
        model = build_tiny_model(root / "tiny-model")
        for k in range(opts.rounds):
            for name, run in (("ours", ours), ("bare", bare)):
                start = time.monotonic()
                got = run(model, root / f"{name}-{k}", opts.steps)
                gaps[name] += got
                print(f"round {k + 1} {name}: median {statistics.median(got):.3f} s/step over "
                      f"{len(got)} gaps ({time.monotonic() - start:.1f} s in all)")  # fmt: skip
    mine, theirs = statistics.median(gaps["ours"]), statistics.median(gaps["bare"])
    print(f"seconds per step: longwrite rl train {mine:.3f}, bare TRL {theirs:.3f}")
    print(f"rl_step: ratio={mine / theirs:.3f} goal<={GOAL:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
