"""`longwrite rl train`: a checked recipe in, TRL's `GRPOTrainer` run, a servable model out.

TRL owns the algorithm (generation, the clipped GRPO loss, accelerate/DeepSpeed, vLLM); this
module owns the run around it:

* Order of work: the recipe, data, checkpoints and TRL's own settings are all checked before
  any model is loaded, so a mistake costs seconds, not a model load.
* Rewards are averaged after each is normalised within its group: `GRPOConfig(
  multi_objective_aggregation="normalize_then_sum")`, TRL's form of the paper's
  A = (A_length + A_write + A_format) / 3 (equal up to one global scale).
* Run folder (`output_dir`): `config.yaml` (the resolved recipe), `checkpoint-N/` every
  `save_steps` (the HF Trainer's own checkpoints: weights, optimizer, scheduler, RNG, state),
  `metrics.jsonl` (one flushed JSON line per logged step), `final/` (model and tokenizer,
  loadable by `longwrite --model RUN/final`), `tiny-model/` when the model is `tiny`.
* Kill safety: the Trainer writes a checkpoint's files in place, `trainer_state.json` last.
  A checkpoint counts as complete only if that file parses, names the folder's own step and
  the weights are there; `--resume` takes the newest complete one and renames any newer,
  half-written folder to `incomplete-checkpoint-N` (out of the Trainer's sight, so its next
  save at that step starts clean). `metrics.jsonl` is cut back to the resumed step, so every
  step appears once. `final/` is written beside the run and renamed into place.
* Multi-GPU: under `accelerate launch` every process runs this code. Every process checks
  the recipe and data (reading only); then the main process alone prepares the run folder
  (sets incomplete checkpoints aside, writes `config.yaml`, trims `metrics.jsonl`) while the
  others wait at a barrier, and only after it do they look for the checkpoint to resume, so
  no process reads a folder that another is renaming. Only the main process writes files and
  the display; the Trainer synchronises the rest.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from longwrite.rl.config import TINY, ConfigError, RunConfig, suggest, world_size
from longwrite.rl.rewards import ROLLOUT_STOP

CHECKPOINT = re.compile(r"checkpoint-(\d+)")
WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
           "pytorch_model.bin.index.json", "adapter_model.safetensors")  # fmt: skip
METRICS_FILE = "metrics.jsonl"
FINAL = "final"

# TRL's log keys -> the names in metrics.jsonl (everything TRL logs is also kept under "trl").
METRIC_NAMES = {
    "reward": "reward",
    "reward_std": "reward_std",
    "rewards/length/mean": "length",
    "rewards/format/mean": "format",
    "rewards/writing/mean": "writing",
    "answer_words": "answer_words",
    "length/in_range": "length_in_range",
    "format/structure": "format_structure",
    "format/repetition": "repetition",
    "writing/unscored": "writing_unscored",
    "writing/truncated": "writing_truncated",
    "completions/past_stop": "past_stop",
    "completions/mean_length": "completion_tokens",
    "completions/clipped_ratio": "truncated",
    "clip_ratio/region_mean": "clip_ratio",
    "entropy": "entropy",
    "kl": "kl",
    "step_time": "step_time",
    "loss": "loss",
    "grad_norm": "grad_norm",
    "learning_rate": "learning_rate",
    "frac_reward_zero_std": "frac_zero_std",
}

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


# ---- checkpoints --------------------------------------------------------------------------


def checkpoint_step(path: Path) -> int | None:
    m = CHECKPOINT.fullmatch(path.name)
    return int(m[1]) if m else None


def is_complete_checkpoint(path: Path) -> bool:
    """Whether the Trainer finished writing `path` (its state, written last, names its step)."""
    step = checkpoint_step(path)
    try:
        state = json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if step is None or not isinstance(state, dict) or state.get("global_step") != step:
        return False
    deepspeed = any(p.is_dir() and p.name.startswith("global_step") for p in path.iterdir())
    return deepspeed or any((path / name).is_file() for name in WEIGHTS)


def find_checkpoints(run_dir: Path) -> list[Path]:
    """`checkpoint-N` folders of `run_dir`, newest (highest N) first."""
    if not run_dir.is_dir():
        return []
    found = [p for p in run_dir.iterdir() if p.is_dir() and checkpoint_step(p) is not None]
    return sorted(found, key=lambda p: checkpoint_step(p) or 0, reverse=True)


def resume_checkpoint(run_dir: Path, *, set_aside: bool = True) -> Path | None:
    """The newest complete checkpoint; newer incomplete ones are renamed out of the way."""
    for path in find_checkpoints(run_dir):
        if is_complete_checkpoint(path):
            return path
        if set_aside:
            aside = path.with_name(f"incomplete-{path.name}")
            if aside.exists():
                shutil.rmtree(aside)
            path.rename(aside)
    return None


# ---- metrics.jsonl ------------------------------------------------------------------------


def metrics_line(step: int, logs: dict[str, Any], now: float) -> dict[str, Any]:
    """One metrics.jsonl record: our names first, then TRL's raw log under "trl".

    >>> record = metrics_line(3, {"rewards/length/mean": 0.5, "entropy": 2.0}, 10.0)
    >>> record["step"], record["length"], record["entropy"], record["trl"]["entropy"]
    (3, 0.5, 2.0, 2.0)
    """
    out: dict[str, Any] = {"step": step, "time": now}
    for key, name in METRIC_NAMES.items():
        if key in logs:
            out[name] = logs[key]
    out["trl"] = dict(logs)
    return out


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl file (a torn last line is skipped)."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int):
            records.append(record)
    return records


def trim_metrics(path: Path, last_step: int) -> None:
    """Keep only the records up to `last_step` (atomically): a resumed run logs the rest."""
    if not path.exists():
        return
    from longwrite.io.files import atomic_write_text

    kept = [r for r in read_metrics(path) if r["step"] <= last_step]
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in kept))


def _fmt(value: Any, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def progress_line(step: int, total: int, record: dict[str, Any], eta: float | None) -> str:
    """The one-line summary of a step.

    >>> progress_line(3, 10, {"length": 0.5, "answer_words": 41.2, "step_time": 1.5}, 12.0)
    'step 3/10 · length 0.50 · words 41 · 1.50 s/step · ETA 0:12'
    """
    parts = [f"step {step}/{total}"]
    for name in ("length", "format", "writing"):
        if name in record:
            parts.append(f"{name} {_fmt(record[name])}")
    if "answer_words" in record:
        parts.append(f"words {_fmt(record['answer_words'], '.0f')}")
    if "step_time" in record:
        parts.append(f"{_fmt(record['step_time'])} s/step")
    if eta is not None:
        minutes, seconds = divmod(int(round(eta)), 60)
        hours, minutes = divmod(minutes, 60)
        clock = f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"
        parts.append(f"ETA {clock}")
    return " · ".join(parts)


def _callbacks(run_dir: Path, stream: TextIO) -> list[Any]:
    """The metrics writer and the progress display, as TrainerCallbacks (main process only)."""
    from transformers import TrainerCallback

    class RunLog(TrainerCallback):
        def __init__(self) -> None:
            self.path = run_dir / METRICS_FILE
            self.started = time.monotonic()
            self.first_step: int | None = None
            self.progress: Any = None
            self.task: Any = None

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if not state.is_world_process_zero:
                return
            self.started = time.monotonic()
            self.first_step = state.global_step
            if stream.isatty():
                from rich.console import Console
                from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

                console = Console(file=stream)
                self.progress = Progress(
                    TextColumn("GRPO"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[line]}"), console=console, transient=False,
                )  # fmt: skip
                self.task = self.progress.add_task(
                    "train", total=state.max_steps, completed=state.global_step, line=""
                )
                self.progress.start()

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if not state.is_world_process_zero or not logs or "reward" not in logs:
                return
            record = metrics_line(state.global_step, logs, time.time())
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
                handle.flush()
            done = state.global_step - (self.first_step or 0)
            elapsed = time.monotonic() - self.started
            eta = elapsed / done * (state.max_steps - state.global_step) if done > 0 else None
            line = progress_line(state.global_step, state.max_steps, record, eta)
            if self.progress is not None:
                text = line.split(" · ", 1)[1] if " · " in line else ""
                self.progress.update(self.task, completed=state.global_step, line=text)
            else:
                stream.write(line + "\n")
                stream.flush()

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.progress is not None:
                self.progress.stop()

    return [RunLog()]


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
    import dataclasses

    from trl import GRPOConfig

    fields = [f.name for f in dataclasses.fields(GRPOConfig)]
    for key, value in cfg.trl.items():
        if key in OWNED:
            raise ConfigError(f"{cfg.source}: trl.{key}: set {OWNED[key]} instead")
        if key not in fields:
            hint = suggest(f"trl.{key}", [f"trl.{name}" for name in fields])
            raise ConfigError(f"{cfg.source}: unknown key 'trl.{key}'{hint}")
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


def build_grpo_config(cfg: RunConfig, weights: list[float]) -> Any:
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


def _tiny_model(run_dir: Path) -> Path:
    from longwrite.tiny import build_tiny_model

    folder = run_dir / "tiny-model"
    needed = ("config.json", "model.safetensors", "tokenizer.json")
    if not all((folder / name).is_file() for name in needed):
        build_tiny_model(folder)
    return folder


def save_final(trainer: Any, run_dir: Path) -> Path:
    """Model and tokenizer into RUN/final, renamed into place once complete."""
    final, partial, old = run_dir / FINAL, run_dir / f"{FINAL}.partial", run_dir / f"{FINAL}.old"
    if trainer.is_world_process_zero() and partial.exists():
        shutil.rmtree(partial)
    trainer.accelerator.wait_for_everyone()
    trainer.save_model(str(partial))  # every process: ZeRO-3 gathers the shards
    trainer.accelerator.wait_for_everyone()
    if trainer.is_world_process_zero():
        tokenizer = trainer.processing_class
        if tokenizer is not None and not (partial / "tokenizer_config.json").exists():
            tokenizer.save_pretrained(str(partial))
        if final.exists():
            final.rename(old)
        partial.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    return final


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
    run = cfg.run_dir
    if not resume:  # (with --resume the folder is read only after the main process is done)
        checkpoints = find_checkpoints(run)
        if checkpoints or (run / FINAL).exists():
            what = checkpoints[0].name if checkpoints else FINAL
            raise ConfigError(
                f"{cfg.source}: output_dir {run} already holds a run ({what}): pass --resume "
                "to continue it, or choose another output_dir"
            )
    return rows, dropped


def _process_state() -> Any:
    """accelerate's view of this process (main or not) and its barrier."""
    from accelerate import PartialState

    return PartialState()


def prepare_run_dir(cfg: RunConfig, resume: bool, state: Any) -> Path | None:
    """The run folder, ready to train in; returns the checkpoint to resume from (or None).

    The main process alone changes the folder (incomplete checkpoints set aside,
    `config.yaml`, `metrics.jsonl` cut back to the checkpoint) while the others wait; then the
    others find the same checkpoint, which is now the newest folder.
    """
    run = cfg.run_dir
    checkpoint = None
    if state.is_main_process:
        checkpoint = resume_checkpoint(run) if resume else None
        run.mkdir(parents=True, exist_ok=True)
        import yaml

        from longwrite.io.files import atomic_write_text

        atomic_write_text(run / "config.yaml", yaml.safe_dump(cfg.to_json(), sort_keys=False))
        trim_metrics(run / METRICS_FILE, (checkpoint_step(checkpoint) or 0) if checkpoint else 0)
    state.wait_for_everyone()
    if not state.is_main_process and resume:
        checkpoint = resume_checkpoint(run, set_aside=False)
    return checkpoint


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
    args = build_grpo_config(cfg, weights)
    run = cfg.run_dir
    state = _process_state()
    checkpoint = prepare_run_dir(cfg, resume, state)
    if state.is_main_process:
        note = f"resuming from {checkpoint}" if checkpoint else "starting"
        stream.write(
            f"{note}: {len(rows)} prompts ({dropped} dropped without a length), "
            f"{world_size()} process(es), rewards {', '.join(cfg.rewards.enabled())}\n"
        )
        stream.flush()
    with state.main_process_first():
        model = str(_tiny_model(run)) if cfg.model == TINY else cfg.model

    from transformers import PrinterCallback, ProgressCallback
    from trl import GRPOTrainer

    from longwrite.rl.data import to_dataset

    try:
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=funcs,
            args=args,
            train_dataset=to_dataset(rows),
            callbacks=_callbacks(run, stream),
        )
        trainer.remove_callback(PrinterCallback)
        trainer.remove_callback(ProgressCallback)
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        final = save_final(trainer, run)
    finally:
        for func in funcs:
            if hasattr(func, "close"):
                func.close()
    return TrainResult(
        run_dir=run,
        final_dir=final,
        steps=trainer.state.global_step,
        resumed_from=checkpoint,
        seconds=time.monotonic() - started,
        prompts=len(rows),
        dropped=dropped,
    )
