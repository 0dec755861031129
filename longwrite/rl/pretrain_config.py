"""The recipe of `longwrite rl pretrain` (stage 0): its keys, checks and loading.

Same conventions as `rl train`'s recipe (`config`, `schema`): strict frozen pydantic models,
`--set key=value` overrides, every fault one `ConfigError` line naming the file and the key,
all of it before a model loads. Layout::

    model: Qwen/Qwen2.5-1.5B          # a folder, a Hugging Face id, or `tiny`
    output_dir: runs/pretrain-1.5b    # default runs/<config name>
    corpus:
      sources:                        # a mapping, so `--set corpus.sources.books.path=X` works
        books: {path: data/books, weight: 0.99}          # field: text (JSONL, parquet, datasets)
        cot:   {path: data/cot.jsonl, weight: 0.01, field: text}
      seq_length: 32768               # tokens per packed sequence
      min_tokens: 512                 # shorter documents are dropped (and counted)
      packing: auto                   # auto | masked | plain (attention across documents)
    train: {max_steps, learning_rate, lr_scheduler_type, warmup_steps, ...}
    cost: {mfu: 0.4, gpu_tflops: null, gpus: null}  # what the cost estimate assumes
    trainer: {}                       # any other TrainingArguments field, passed as is

Batch sizes count sequences: a step trains on per_device_train_batch_size x processes x
gradient_accumulation_steps x seq_length tokens.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator

from longwrite.rl.config import is_local_path, merge, parse_set, read_yaml
from longwrite.rl.schema import (
    TINY,
    ConfigError,
    Number,
    Precision,
    Recipe,
    Section,
    fault_line,
)

Packing = Literal["auto", "masked", "plain"]


class SourceConfig(Section):
    path: str
    weight: Number = 1.0  # share of the tokens, relative to the other sources' weights
    field: str = "text"  # the text field of JSONL rows, parquet columns, saved datasets


class CorpusConfig(Section):
    sources: dict[str, SourceConfig]
    seq_length: int = 4096
    min_tokens: int = 64
    packing: Packing = "auto"
    seed: int = 0  # the order of files within each pass


class PretrainTrainConfig(Section):
    max_steps: int = 1000
    learning_rate: Number = 1e-5
    lr_scheduler_type: str = "cosine"
    warmup_steps: Number = 0.01  # below 1: a share of max_steps (as in TrainingArguments)
    weight_decay: Number = 0.1
    max_grad_norm: Number = 1.0
    per_device_train_batch_size: int = 1  # sequences
    gradient_accumulation_steps: int = 1
    save_steps: int = 500
    save_total_limit: int | None = 2
    logging_steps: int = 1
    seed: int = 0
    precision: Precision = "auto"
    gradient_checkpointing: bool = True


class CostConfig(Section):
    mfu: Number = 0.4  # model FLOPs utilisation assumed for the hours
    gpu_tflops: Number | None = None  # peak dense bf16 TFLOPS per GPU; None: known cards
    gpus: int | None = None  # GPUs (= processes) of the launch; None: those of this launch


class PretrainConfig(Recipe):
    model: str
    corpus: CorpusConfig
    train: PretrainTrainConfig = PretrainTrainConfig()
    cost: CostConfig = CostConfig()
    trainer: dict[Any, Any] = Field(default_factory=dict)  # checked against TrainingArguments

    @field_validator("train", "cost", mode="before")
    @classmethod
    def _empty_section(cls, value: Any) -> Any:
        return {} if value is None or value is True else value

    @field_validator("trainer", mode="before")
    @classmethod
    def _trainer_or_empty(cls, value: Any) -> Any:
        return value or {}

    def sequences_per_step(self, processes: int) -> int:
        return self._per_step(processes)


def check_pretrain_values(cfg: PretrainConfig) -> None:
    """Ranges and combinations the types cannot express."""

    def fail(key: str, message: str) -> None:
        raise ConfigError(f"{cfg.source}: {key} {message}")

    c, t = cfg.corpus, cfg.train
    if not c.sources:
        fail("corpus.sources", "must name at least one source")
    for name, s in c.sources.items():
        if s.weight <= 0:
            fail(f"corpus.sources.{name}.weight", "must be positive")
    if c.seq_length < 2:
        fail("corpus.seq_length", "must be at least 2")
    if c.min_tokens < 0:
        fail("corpus.min_tokens", "must be >= 0")
    for key in ("max_steps", "per_device_train_batch_size", "gradient_accumulation_steps",
                "save_steps", "logging_steps"):  # fmt: skip
        if getattr(t, key) < 1:
            fail(f"train.{key}", "must be at least 1")
    if t.learning_rate <= 0:
        fail("train.learning_rate", "must be positive")
    if t.warmup_steps < 0:
        fail("train.warmup_steps", "must be >= 0")
    if not 0 < cfg.cost.mfu <= 1:
        fail("cost.mfu", "must be in (0, 1]")
    if cfg.cost.gpus is not None and cfg.cost.gpus < 1:
        fail("cost.gpus", "must be at least 1")
    if cfg.cost.gpu_tflops is not None and cfg.cost.gpu_tflops <= 0:
        fail("cost.gpu_tflops", "must be positive")


def check_pretrain_files(cfg: PretrainConfig) -> None:
    """The model folder and every source exist (Hub ids are left to the Hub)."""
    from longwrite.rl.corpus import CorpusError, is_saved_dataset, source_files

    if cfg.model != TINY and is_local_path(cfg.model) and not Path(cfg.model).is_dir():
        raise ConfigError(f"{cfg.source}: model: no such model folder: {cfg.model}")
    for name, s in cfg.corpus.sources.items():
        path = Path(s.path)
        try:
            if not is_saved_dataset(path):
                source_files(path)
        except CorpusError as e:
            raise ConfigError(f"{cfg.source}: corpus.sources.{name}.path: {e}") from None
    if cfg.run_dir.exists() and not cfg.run_dir.is_dir():
        raise ConfigError(f"{cfg.source}: output_dir: {cfg.run_dir} is a file, not a folder")


def pretrain_from_mapping(raw: dict[str, Any], source: str) -> PretrainConfig:
    raw = dict(raw)
    if raw.get("model") in (None, ""):
        raw.pop("model", None)
    if raw.get("output_dir") is None:
        raw["output_dir"] = str(Path("runs") / Path(source).stem)
    try:
        cfg = PretrainConfig.model_validate(raw, context={"source": source})
    except ValidationError as e:
        raise fault_line(e, source, PretrainConfig) from None
    check_pretrain_values(cfg)
    return cfg


def load_pretrain_config(path: str | Path, overrides: list[str] | None = None) -> PretrainConfig:
    """The checked pretraining recipe at `path` with `--set` overrides applied."""
    source = str(path)
    raw = read_yaml(path)
    if overrides:
        raw = merge(raw, parse_set(overrides, source))
    cfg = pretrain_from_mapping(raw, source)
    check_pretrain_files(cfg)
    return cfg
