"""`longwrite rl train`: a checked recipe in, TRL's `GRPOTrainer` run, a servable model out.

TRL owns the algorithm (generation, the clipped GRPO loss, accelerate/DeepSpeed, vLLM); this
module owns the order of the run around it, and the mapping of a recipe onto `GRPOConfig`:

* Order of work: the recipe, data, checkpoints and TRL's own settings are all checked before
  any model is loaded, so a mistake costs seconds, not a model load.
* Rewards are averaged after each is normalised within its group: `GRPOConfig(
  multi_objective_aggregation="normalize_then_sum")`, TRL's form of the paper's
  A = (A_length + A_write + A_format) / 3 (equal up to one global scale).
* Run folder (`output_dir`, see `run_dir`): `config.yaml` (the resolved recipe),
  `checkpoint-N/` every `save_steps` (the HF Trainer's own checkpoints: weights, optimizer,
  scheduler, RNG, state), `metrics.jsonl` (one fsynced JSON line per logged step, see
  `metrics`), `final/` (model and tokenizer, loadable by `longwrite --model RUN/final`),
  `tiny-model/` when the model is `tiny`. Kill safety and `--resume` live in `run_dir`.
* Multi-GPU: under `accelerate launch` every process runs this code. Every process checks
  the recipe and data (reading only); the main process alone prepares the run folder while
  the others wait (`run_dir.prepare_run_dir`). Only the main process writes files and the
  display; the Trainer synchronises the rest.
"""

from __future__ import annotations

import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from longwrite.rl.config import TINY, ConfigError, RunConfig, world_size
from longwrite.rl.metrics import run_callbacks
from longwrite.rl.rewards import ROLLOUT_STOP
from longwrite.rl.run_dir import (
    check_ours,
    check_unused,
    prepare_run_dir,
    save_final,
    tiny_model,
)
from longwrite.rl.schema import pass_through

if TYPE_CHECKING:
    from trl import GRPOConfig

# GRPOConfig fields that the recipe's own sections set: `trl:` must not set them again.
OWNED = {
    "output_dir": "output_dir", "num_generations": "rollout.num_generations",
    "temperature": "rollout.temperature", "top_p": "rollout.top_p",
    "max_completion_length": "rollout.max_completion_length", "use_vllm": "rollout.engine",
    "vllm_mode": "rollout.engine", "vllm_server_base_url": "rollout.vllm_server",
    "vllm_gpu_memory_utilization": "rollout.vllm_gpu_memory_utilization",
    "vllm_tensor_parallel_size": "rollout.vllm_tensor_parallel_size",
    "vllm_max_model_length": "rollout.vllm_max_model_length",
    "vllm_enable_sleep_mode": "rollout.vllm_enable_sleep_mode",
    "reward_weights": "rewards.*.weight", "max_steps": "train.max_steps",
    "learning_rate": "train.learning_rate", "epsilon": "train.epsilon", "beta": "train.beta",
    "per_device_train_batch_size": "train.per_device_train_batch_size",
    "gradient_accumulation_steps": "train.gradient_accumulation_steps",
    "save_steps": "train.save_steps", "save_total_limit": "train.save_total_limit",
    "logging_steps": "train.logging_steps", "seed": "train.seed", "bf16": "train.precision",
    "fp16": "train.precision", "gradient_checkpointing": "train.gradient_checkpointing",
}  # fmt: skip


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    final_dir: Path
    steps: int
    resumed_from: Path | None
    seconds: float
    prompts: int
    dropped: int


# ---- the run ------------------------------------------------------------------------------


def _precision(name: str) -> tuple[bool, bool]:
    """(bf16, fp16) for `train.precision`."""
    import torch

    if name == "auto":
        return (torch.cuda.is_available() and torch.cuda.is_bf16_supported()), False
    return name == "bf16", name == "fp16"


def grpo_kwargs(cfg: RunConfig, weights: list[float], *, bf16: bool, fp16: bool) -> dict[str, Any]:
    """The GRPOConfig arguments of a recipe (`trl:` merged and checked last)."""
    r, t = cfg.rollout, cfg.train
    kwargs: dict[str, Any] = {
        "output_dir": cfg.output_dir,
        "num_generations": r.num_generations,
        "temperature": r.temperature,
        "top_p": r.top_p,
        "max_completion_length": r.max_completion_length,
        "use_vllm": r.engine != "transformers",
        "vllm_mode": "server" if r.engine == "vllm-server" else "colocate",
        "vllm_server_base_url": r.vllm_server,
        "vllm_gpu_memory_utilization": r.vllm_gpu_memory_utilization,
        "vllm_tensor_parallel_size": r.vllm_tensor_parallel_size,
        "vllm_max_model_length": r.vllm_max_model_length,
        "vllm_enable_sleep_mode": r.vllm_enable_sleep_mode,
        "multi_objective_aggregation": "normalize_then_sum",
        "reward_weights": weights,
        "max_steps": t.max_steps,
        "learning_rate": t.learning_rate,
        "per_device_train_batch_size": t.per_device_train_batch_size,
        "gradient_accumulation_steps": t.gradient_accumulation_steps,
        "epsilon": t.epsilon,
        "beta": t.beta,
        "save_strategy": "steps",
        "save_steps": t.save_steps,
        "save_total_limit": t.save_total_limit,
        "logging_steps": t.logging_steps,
        "seed": t.seed,
        "bf16": bf16,
        "fp16": fp16,
        "gradient_checkpointing": t.gradient_checkpointing,
        "report_to": "none",
        "disable_tqdm": True,
    }
    if r.engine != "transformers":  # vLLM stops at strings as inference does (see rewards.py)
        kwargs["generation_kwargs"] = {"stop": list(ROLLOUT_STOP)}
    from trl import GRPOConfig

    for key, value in pass_through(cfg.source, "trl", cfg.trl, GRPOConfig, OWNED).items():
        if key == "generation_kwargs" and isinstance(value, dict):
            value = _generation_kwargs(cfg, kwargs.get(key), value)
        kwargs[key] = value
    return kwargs


def _generation_kwargs(
    cfg: RunConfig, ours: dict[str, Any] | None, theirs: dict[str, Any]
) -> dict[str, Any]:
    """`trl.generation_kwargs` on top of the stop strings, which it may not change: rollouts
    end where inference ends."""
    for key in ("stop", "stop_strings"):
        if key in theirs:
            raise ConfigError(
                f"{cfg.source}: trl.generation_kwargs.{key}: rollouts stop where inference "
                f"stops ({', '.join(ROLLOUT_STOP)}); the recipe sets this itself"
            )
    return {**(ours or {}), **theirs}


def build_grpo_config(cfg: RunConfig, weights: list[float]) -> GRPOConfig:
    import torch
    from trl import GRPOConfig

    bf16, fp16 = _precision(cfg.train.precision)
    kwargs = grpo_kwargs(cfg, weights, bf16=bf16, fp16=fp16)
    if "dataloader_pin_memory" not in cfg.trl:  # pinning without a GPU only earns a warning
        kwargs["dataloader_pin_memory"] = torch.cuda.is_available()
    try:
        return GRPOConfig(**kwargs)
    except (ValueError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"{cfg.source}: TRL rejects the settings: {first}") from None


def _quiet_known_warnings(cfg: RunConfig) -> None:
    # TRL 1.16 sets transformers' old `gradient_checkpointing` names itself, and warns about the
    # installed vLLM even when rollouts do not use it: noise, not advice for the user.
    warnings.filterwarnings("ignore", message=r".*`(is_)?gradient_checkpointing` is deprecated")
    if cfg.rollout.engine == "transformers":
        warnings.filterwarnings("ignore", message=r"TRL currently supports vLLM versions")


def prepare_run(cfg: RunConfig, resume: bool) -> tuple[list[Any], int]:
    """The checks that need no model, on every process (reading only): the rows and the
    dropped count."""
    from longwrite.rl.data import load_training_rows

    rows, dropped = load_training_rows(cfg.data)
    if not rows:
        raise ConfigError(
            f"{cfg.source}: data: {cfg.data} has no prompt with a length ({dropped} without one): "
            "prepare it with `longwrite rl prepare --range-model URL`"
        )
    length = cfg.rewards.length
    if length is not None and length.max_words is not None:
        highest = max(r.hi for r in rows)
        if length.max_words <= highest:
            raise ConfigError(
                f"{cfg.source}: rewards.length.max_words ({length.max_words}) must exceed every "
                f"range's hi; {cfg.data} has hi = {highest}"
            )
    if not resume:  # (with --resume the folder is read only after the main process is done)
        check_unused(cfg)
    else:
        check_ours(cfg)
    return rows, dropped


def _process_state() -> Any:
    """accelerate's view of this process (main or not) and its barrier."""
    from accelerate import PartialState

    return PartialState()


def run_train(cfg: RunConfig, *, resume: bool = False, stream: TextIO | None = None) -> TrainResult:
    """Train `cfg` to completion (or from its last complete checkpoint with `resume`)."""
    stream = stream if stream is not None else sys.stderr
    started = time.monotonic()
    rows, dropped = prepare_run(cfg, resume)
    from longwrite.rl.rewards import build_rewards

    _quiet_known_warnings(cfg)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the run's own display replaces the per-file bars
    funcs, weights = build_rewards(cfg.rewards)  # a judge is reached now: fail before the model
    metrics = None
    try:
        args = build_grpo_config(cfg, weights)
        state = _process_state()
        checkpoint, metrics = prepare_run_dir(cfg, resume, state)
        if state.is_main_process:
            note = f"resuming from {checkpoint}" if checkpoint else "starting"
            stream.write(
                f"{note}: {len(rows)} prompts ({dropped} dropped without a length), "
                f"{world_size()} process(es), rewards {', '.join(cfg.rewards.enabled())}\n"
            )
            stream.flush()
        trainer, final = _train(
            cfg, args, funcs, rows, checkpoint, state, run_callbacks(metrics, stream)
        )
    finally:
        for func in funcs:
            if hasattr(func, "close"):
                func.close()
        if metrics is not None:
            metrics.close()
    return TrainResult(
        run_dir=cfg.run_dir,
        final_dir=final,
        steps=trainer.state.global_step,
        resumed_from=checkpoint,
        seconds=time.monotonic() - started,
        prompts=len(rows),
        dropped=dropped,
    )


def _train(cfg: RunConfig, args: Any, funcs: list[Any], rows: list[Any], checkpoint: Path | None,
           state: Any, callbacks: list[Any]) -> tuple[Any, Path]:  # fmt: skip
    """Load the model, train from `checkpoint` (or the start), save RUN/final: (trainer, final)."""
    with state.main_process_first():
        model = str(tiny_model(cfg.run_dir)) if cfg.model == TINY else cfg.model
    from transformers import PrinterCallback, ProgressCallback
    from trl import GRPOTrainer

    from longwrite.rl.data import to_dataset

    trainer = GRPOTrainer(
        model=model,
        reward_funcs=funcs,
        args=args,
        train_dataset=to_dataset(rows),
        callbacks=callbacks,
    )
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    return trainer, save_final(trainer, cfg.run_dir)
