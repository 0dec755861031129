"""`longwrite rl pretrain`: continual pretraining on long-form text (stage 0 of the recipe).

transformers' `Trainer` owns the loop (optimizer, schedule, accelerate/DeepSpeed,
checkpoints); this module owns the order of the run and the data: a packed stream from
`corpus`, whose position ids keep attention inside each document, and a collator whose
labels never ask a document's first token to be predicted from the one before it. It reuses
`rl train`'s run folder (`run_dir`: checkpoints, `--resume` after a kill, `final/`), its
metrics log and progress line (`metrics`), so `rl plot` draws the loss too.

Why not TRL's `SFTTrainer(packing=True)`: its packing works on a materialised dataset (the
whole corpus tokenised in memory, best-fit packing that cuts long documents), while
continual pretraining streams billions of tokens mixed by weight; the Trainer with an
iterable of packed sequences is what transformers offers for that.

Before any model loads, the cost of the run is printed: tokens per step and in total,
6 x parameters x tokens FLOPs, and the hours at `cost.mfu` of the GPUs' peak (`--dry-run`
stops there; the parameters are counted on the meta device, no weights are read).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from longwrite.rl.config import TINY, ConfigError, world_size
from longwrite.rl.pretrain_config import PretrainConfig
from longwrite.rl.run_dir import (
    check_ours,
    check_unused,
    prepare_run_dir,
    save_final,
    tiny_model,
)
from longwrite.rl.schema import pass_through

# Peak dense bf16 TFLOPS of the cards we know (spec sheets, without sparsity).
GPU_TFLOPS = {"H200": 989.0, "H100": 989.0, "B200": 2250.0, "A100": 312.0, "L40S": 362.0,
              "L4": 121.0, "A10": 125.0, "4090": 165.0}  # fmt: skip
REFERENCE_GPU = "H100"

# TrainingArguments fields that the recipe's own keys set: `trainer:` must not set them again.
OWNED = {"output_dir": "output_dir", "bf16": "train.precision", "fp16": "train.precision",
         **{k: f"train.{k}" for k in ("max_steps", "learning_rate", "lr_scheduler_type",
            "warmup_steps", "weight_decay", "max_grad_norm", "per_device_train_batch_size",
            "gradient_accumulation_steps", "save_steps", "save_total_limit", "logging_steps",
            "seed", "gradient_checkpointing")}}  # fmt: skip


@dataclass(frozen=True)
class Cost:
    parameters: int
    tokens_per_step: int
    steps: int
    gpus: int
    gpu: str  # the card the hours assume
    tflops: float | None  # its peak
    mfu: float

    @property
    def tokens(self) -> int:
        return self.tokens_per_step * self.steps

    @property
    def flops(self) -> float:
        return 6.0 * self.parameters * self.tokens

    @property
    def hours(self) -> float | None:
        if not self.tflops:
            return None
        return self.flops / (self.gpus * self.tflops * 1e12 * self.mfu) / 3600

    def line(self) -> str:
        """The cost, one line.

        >>> Cost(1_000_000_000, 1_000_000, 1000, 8, "H100", 989.0, 0.4).line()
        'cost: 1.00M tokens/step x 1000 steps = 1.00B tokens; 6 x 1.00B params x tokens = 6.00e+18 FLOPs; 0.53 h on 8 x H100 at 40% of 989 TFLOPS'
        """  # noqa: E501
        where = (
            f"{self.hours:.2f} h on {self.gpus} x {self.gpu} at {self.mfu:.0%} of "
            f"{self.tflops:g} TFLOPS"
            if self.hours is not None
            else f"hours unknown for {self.gpu}: set cost.gpu_tflops"
        )
        return (
            f"cost: {_si(self.tokens_per_step)} tokens/step x {self.steps} steps = "
            f"{_si(self.tokens)} tokens; 6 x {_si(self.parameters)} params x tokens = "
            f"{self.flops:.2e} FLOPs; {where}"
        )


def _si(n: float) -> str:
    for unit, size in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return f"{n:g}"


def count_parameters(model: str) -> int:
    """Parameters of `model` from its config alone (meta device: no weights read)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model)
    with torch.device("meta"):
        net = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in net.parameters())


def visible_gpus() -> tuple[int, str | None]:
    """(GPUs of this launch, the card's name) as torch sees them; (0, None) without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return 0, None
    return max(world_size(), torch.cuda.device_count()), torch.cuda.get_device_name(0)


def estimate_cost(cfg: PretrainConfig, model: str) -> Cost:
    """The run's cost on `cost.gpus` GPUs (else those of this launch), of the visible kind
    (else `REFERENCE_GPU`), at `cost.gpu_tflops` (else the card's known peak)."""
    seen, name = visible_gpus()
    gpus = cfg.cost.gpus or seen or world_size()
    tflops = cfg.cost.gpu_tflops
    card = name or f"{REFERENCE_GPU} (none visible here)"
    if tflops is None:
        known = [k for k in GPU_TFLOPS if k in (name or REFERENCE_GPU)]
        tflops = GPU_TFLOPS[known[0]] if known else None
    return Cost(
        parameters=count_parameters(model),
        tokens_per_step=cfg.sequences_per_step(gpus) * cfg.corpus.seq_length,
        steps=cfg.train.max_steps,
        gpus=gpus,
        gpu=card,
        tflops=tflops,
        mfu=cfg.cost.mfu,
    )


# ---- data ---------------------------------------------------------------------------------


def check_sources(cfg: PretrainConfig) -> None:
    """Every source yields a first document with its text field (before any model loads)."""
    from longwrite.rl.corpus import CorpusError, source_texts

    for name, s in cfg.corpus.sources.items():
        try:
            first = next(source_texts(s.path, s.field), None)
        except CorpusError as e:
            raise ConfigError(f"{cfg.source}: corpus.sources.{name}: {e}") from None
        if first is None:
            raise ConfigError(f"{cfg.source}: corpus.sources.{name}: {s.path} has no document")


def packing_mode(cfg: PretrainConfig, model: Any) -> tuple[bool, str]:
    """(masked, the line that says so): position-id packing where the model builds its mask
    with transformers' `create_causal_mask` (which reads packed position ids), else plain."""
    if cfg.corpus.packing == "plain":
        return False, "packing: plain (attention crosses documents; packing: plain)"
    module = sys.modules.get(type(model).__module__)
    if hasattr(module, "create_causal_mask"):
        return True, "packing: position ids restart at each document: attention stays within it"
    if cfg.corpus.packing == "masked":
        raise ConfigError(
            f"{cfg.source}: corpus.packing: masked is not possible with "
            f"{type(model).__name__}: set auto or plain"
        )
    return False, f"packing: plain ({type(model).__name__} cannot mask documents apart)"


def packed_dataset(cfg: PretrainConfig, tokenizer: Any, masked: bool, stats: Any) -> Any:
    """A torch IterableDataset of packed sequences, the same stream on every iteration."""
    import torch

    from longwrite.rl.corpus import SourceStats, documents, mix, pack, source_texts

    c = cfg.corpus
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ConfigError(f"{cfg.source}: model: its tokenizer has no end-of-document token")

    def tokenize(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    def source(name: str):  # noqa: ANN202 - epoch -> documents
        s = c.sources[name]

        def start(epoch: int) -> Iterator[list[int]]:
            seed = c.seed * 1000 + epoch if (c.seed or epoch) else 0
            # documents and drops are counted in the first pass only (each once); the tokens
            # as `mix` hands them out, every pass included
            part = stats.sources.setdefault(name, SourceStats()) if epoch == 0 else SourceStats()
            return documents(source_texts(s.path, s.field, seed=seed), tokenize, eos,
                             c.min_tokens, part)  # fmt: skip

        return start

    class Packed(torch.utils.data.IterableDataset):
        def __iter__(self) -> Iterator[dict[str, Any]]:
            stats.sources.clear()  # a new pass (the Trainer's skip on resume included)
            streams = {name: source(name) for name in c.sources}
            weights = {name: s.weight for name, s in c.sources.items()}
            for seq in pack(mix(streams, weights, stats), c.seq_length, masked=masked):
                yield {"input_ids": torch.tensor(seq.input_ids),
                       "position_ids": torch.tensor(seq.position_ids)}  # fmt: skip

    return Packed()


def collate(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack the sequences; labels are the inputs except each document's first token (whose
    position id is 0): with attention kept inside documents it has nothing to be read from."""
    import torch

    ids = torch.stack([r["input_ids"] for r in rows])
    positions = torch.stack([r["position_ids"] for r in rows])
    labels = ids.masked_fill(positions == 0, -100)
    return {"input_ids": ids, "position_ids": positions, "labels": labels}


# ---- the run ------------------------------------------------------------------------------


def training_arguments(cfg: PretrainConfig) -> Any:
    import warnings

    import torch
    from transformers import TrainingArguments

    # transformers 5 renames its own `gradient_checkpointing` field: noise, not advice
    warnings.filterwarnings("ignore", message=r".*`(is_)?gradient_checkpointing` is deprecated")

    t = cfg.train
    gpu = torch.cuda.is_available()
    bf16 = t.precision == "bf16" or (
        t.precision == "auto" and gpu and torch.cuda.is_bf16_supported()
    )
    kwargs: dict[str, Any] = {
        "output_dir": cfg.output_dir, "max_steps": t.max_steps, "learning_rate": t.learning_rate,
        "lr_scheduler_type": t.lr_scheduler_type, "warmup_steps": t.warmup_steps,
        "weight_decay": t.weight_decay, "max_grad_norm": t.max_grad_norm,
        "per_device_train_batch_size": t.per_device_train_batch_size,
        "gradient_accumulation_steps": t.gradient_accumulation_steps,
        "save_strategy": "steps", "save_steps": t.save_steps,
        "save_total_limit": t.save_total_limit, "logging_steps": t.logging_steps,
        "seed": t.seed, "bf16": bf16, "fp16": t.precision == "fp16",
        "gradient_checkpointing": t.gradient_checkpointing, "report_to": "none",
        "disable_tqdm": True, "remove_unused_columns": False, "dataloader_pin_memory": gpu,
    }  # fmt: skip
    kwargs.update(pass_through(cfg.source, "trainer", cfg.trainer, TrainingArguments, OWNED))
    try:
        return TrainingArguments(**kwargs)
    except (ValueError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"{cfg.source}: transformers rejects the settings: {first}") from None


def _record(tokens_per_step: int):  # noqa: ANN202 - the metrics.jsonl record of a log
    last: list[tuple[int, float]] = []

    def record(step: int, logs: dict[str, Any], now: float) -> dict[str, Any]:
        out: dict[str, Any] = {"step": step, "time": now, "loss": logs.get("loss")}
        for key in ("learning_rate", "grad_norm"):
            if key in logs:
                out[key] = logs[key]
        out["tokens"] = step * tokens_per_step
        if last and step > last[0][0]:  # the first log has no earlier one to measure from
            out["tokens_per_second"] = (step - last[0][0]) * tokens_per_step / (now - last[0][1])
        last[:] = [(step, now)]
        out["trainer"] = dict(logs)
        return out

    return record


def _line(step: int, total: int, record: dict[str, Any], eta: float | None) -> str:
    from longwrite.display.status import format_duration

    parts = [f"step {step}/{total}", f"loss {record.get('loss') or 0:.3f}"]
    if "tokens_per_second" in record:
        parts.append(f"{record['tokens_per_second']:,.0f} tokens/s")
    if "learning_rate" in record:
        parts.append(f"lr {record['learning_rate']:.2e}")
    if eta is not None:
        parts.append(f"ETA {format_duration(eta)}")
    return " · ".join(parts)


@dataclass(frozen=True)
class PretrainResult:
    run_dir: Path
    final_dir: Path | None  # None: a dry run
    steps: int
    resumed_from: Path | None
    seconds: float


def run_pretrain(cfg: PretrainConfig, *, resume: bool = False, dry_run: bool = False,
                 stream: TextIO | None = None) -> PretrainResult:  # fmt: skip
    """Print the cost, then train `cfg` (from its last complete checkpoint with `resume`)."""
    stream = stream if stream is not None else sys.stderr
    started = time.monotonic()
    check_sources(cfg)
    if not resume and not dry_run:
        check_unused(cfg)
    elif not dry_run:
        check_ours(cfg)
    args = None if dry_run else training_arguments(cfg)
    from accelerate import PartialState

    state = PartialState()
    if cfg.model == TINY:
        with state.main_process_first():
            model_path = str(tiny_model(cfg.run_dir))
    else:
        model_path = cfg.model
    cost = estimate_cost(cfg, model_path)
    if state.is_main_process:
        stream.write(cost.line() + "\n")
        stream.flush()
    if dry_run:
        return PretrainResult(cfg.run_dir, None, 0, None, time.monotonic() - started)
    from longwrite.rl.corpus import CorpusError

    checkpoint, metrics = prepare_run_dir(cfg, resume, state)
    try:
        trainer, stats = _trainer(cfg, args, model_path, metrics, stream, cost, state)
        if state.is_main_process:
            note = f"resuming from {checkpoint}" if checkpoint else "starting"
            stream.write(f"{note}: {world_size()} process(es)\n")
            stream.flush()
        try:
            trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        except CorpusError as e:  # found while streaming: say which recipe
            raise ConfigError(f"{cfg.source}: {e}") from None
        final = save_final(trainer, cfg.run_dir)
        if state.is_main_process:
            stream.write(stats.line() + "\n")
    finally:
        if metrics is not None:
            metrics.close()
    return PretrainResult(cfg.run_dir, final, trainer.state.global_step, checkpoint,
                          time.monotonic() - started)  # fmt: skip


def _trainer(cfg: PretrainConfig, args: Any, model_path: str, metrics: Any, stream: TextIO,
             cost: Cost, state: Any) -> tuple[Any, Any]:  # fmt: skip
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        PrinterCallback,
        ProgressCallback,
        Trainer,
    )
    from transformers.utils import logging as hf_logging

    from longwrite.rl.corpus import CorpusStats
    from longwrite.rl.metrics import run_callbacks

    hf_logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path)
    model.config.use_cache = False  # with a cache, transformers does not read packed positions
    masked, line = packing_mode(cfg, model)
    if state.is_main_process:
        stream.write(line + "\n")
    stats = CorpusStats()
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=packed_dataset(cfg, tokenizer, masked, stats),
        data_collator=collate,
        processing_class=tokenizer,
        callbacks=run_callbacks(
            metrics,
            stream,
            record=_record(cost.tokens_per_step),
            line=_line,
            ready="loss",
            label="pretrain",
        ),  # fmt: skip
    )
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    return trainer, stats
