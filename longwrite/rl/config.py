"""A training recipe: YAML in, frozen models out, every mistake caught before a model loads.

A GRPO run on many GPUs can spend ten minutes loading weights before it reads a mistyped key,
so `load_config` checks everything it can on its own: unknown keys and value types (the
models of `schema`), ranges and combinations the types cannot express, the group arithmetic
of the batch, and that the files it names exist. Each fault is one `ConfigError` line naming
the file and the key.

Layout of a recipe (every section optional but `model` and `data`; see `rl/README.md`)::

    model: Qwen/Qwen2.5-1.5B      # a folder, a Hugging Face id, or `tiny`
    data: data/rl.jsonl           # from `longwrite rl prepare`, or raw prompts stating lengths
    output_dir: runs/qwen-1.5b    # the run folder (default runs/<config name>)
    rollout: {engine, num_generations, temperature, top_p, max_completion_length, vllm_*}
    rewards: {length: {...}, format: {...}, writing: {...}}   # the rewards that are on
    train: {max_steps, learning_rate, per_device_train_batch_size, ...}
    trl: {}                       # any other GRPOConfig field, passed through as is

Choices:

* `--set key=value` overrides are read as YAML scalars and merged over the file.
* Relative paths are relative to the working directory, as on any command line.
* `model: tiny` means the tiny random model of `longwrite.tiny`, built into the run folder on
  first use: the CPU smoke recipe needs no download.
* The recipe's types live in `schema` and are re-exported here: `config` is where callers
  get a recipe and its parts.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from longwrite.rl.schema import (
    ENGINES,
    PRECISIONS,
    TINY,
    ConfigError,
    FormatRewardConfig,
    LengthRewardConfig,
    RewardsConfig,
    RolloutConfig,
    RunConfig,
    TrainConfig,
    WritingRewardConfig,
    fault_line,
    known_keys,
    suggest,
)

__all__ = [
    "ENGINES", "PRECISIONS", "TINY", "ConfigError", "FormatRewardConfig", "LengthRewardConfig",
    "RewardsConfig", "RolloutConfig", "RunConfig", "TrainConfig", "WritingRewardConfig",
    "check_batch", "check_files", "check_values", "config_from_mapping", "known_keys",
    "load_config", "merge", "parse_set", "read_yaml", "suggest", "world_size",
]  # fmt: skip

_HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")


def parse_set(assignments: list[str], where: str) -> dict[str, Any]:
    """`["train.max_steps=5", ...]` -> a nested mapping; values are read as YAML scalars."""
    import yaml

    out: dict[str, Any] = {}
    for item in assignments:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"{where}: --set {item!r} must look like key=value")
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            value = text
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{where}: --set {key}: {part} is both a value and a section")
        node[parts[-1]] = value
    return out


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def read_yaml(path: str | Path) -> dict[str, Any]:
    import yaml

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such config file") from None
    except IsADirectoryError:
        raise ConfigError(f"{p}: is a folder, not a config file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not UTF-8 text") from None
    except OSError as e:
        raise ConfigError(f"{p}: cannot read: {e.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or "invalid YAML"
        raise ConfigError(f"{p}: YAML syntax error{at}: {problem}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: a recipe is a mapping of keys (model, data, train, ...)")
    return raw


def config_from_mapping(raw: dict[str, Any], source: str) -> RunConfig:
    """Check and type a parsed recipe (no file access)."""
    raw = dict(raw)
    for key in ("model", "data"):  # null or empty: as good as missing ("model is required")
        if key in raw and raw[key] in (None, ""):
            del raw[key]
    if raw.get("output_dir") is None:
        raw["output_dir"] = str(Path("runs") / Path(source).stem)
    try:
        cfg = RunConfig.model_validate(raw, context={"source": source})
    except ValidationError as e:
        raise fault_line(e, source) from None
    check_values(cfg)
    return cfg


def _is_url(text: str) -> bool:
    """Whether `text` (`http://host:port` or `host:port`) names a host and a port HTTP can use
    (`http://[::1` does not: it was a traceback where the port is read)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(text if "://" in text else f"http://{text}")
        parts.port  # noqa: B018 - raises ValueError for a port that is not one
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def check_values(cfg: RunConfig) -> None:
    """Ranges and combinations that the types alone do not catch."""
    src, r, t, w = cfg.source, cfg.rollout, cfg.train, cfg.rewards.writing

    def fail(key: str, message: str) -> None:
        raise ConfigError(f"{src}: {key} {message}")

    if r.num_generations < 2:
        fail("rollout.num_generations", "must be at least 2 (GRPO compares within a group)")
    if r.max_completion_length < 1:
        fail("rollout.max_completion_length", "must be positive")
    if r.temperature <= 0:
        fail("rollout.temperature", "must be positive")
    if not 0 < r.top_p <= 1:
        fail("rollout.top_p", "must be in (0, 1]")
    if r.engine == "vllm-server" and not r.vllm_server:
        fail("rollout.vllm_server", "is required with rollout.engine: vllm-server")
    if r.vllm_server and not _is_url(r.vllm_server):
        fail("rollout.vllm_server", "must be a URL like http://HOST:PORT")
    for key in ("max_steps", "per_device_train_batch_size", "gradient_accumulation_steps"):
        if getattr(t, key) < 1:
            fail(f"train.{key}", "must be at least 1")
    if t.save_steps < 1 or t.logging_steps < 1:
        fail("train.save_steps" if t.save_steps < 1 else "train.logging_steps", "must be >= 1")
    if t.learning_rate <= 0:
        fail("train.learning_rate", "must be positive")
    if not cfg.rewards.enabled():
        fail("rewards", "switches every reward off: turn on length, format or writing")
    length = cfg.rewards.length
    if length is not None and length.max_words is not None and length.max_words <= 0:
        fail("rewards.length.max_words", "must be positive")
    if w is not None:
        if (w.model is None) == (w.judge is None):
            fail("rewards.writing", "needs exactly one of model (a reward model) or judge (a URL)")
        if w.batch_size < 1 or w.concurrency < 1 or w.attempts < 1:
            fail("rewards.writing", "batch_size, concurrency and attempts must be at least 1")
        if w.judge_context <= w.judge_max_tokens:
            fail("rewards.writing.judge_context", "must exceed rewards.writing.judge_max_tokens")
    for name in ("length", "format", "writing"):
        reward = getattr(cfg.rewards, name)
        if reward is not None and reward.weight < 0:
            fail(f"rewards.{name}.weight", "must be >= 0")


def world_size() -> int:
    """Processes in this launch (`accelerate launch` and torchrun set WORLD_SIZE)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def check_batch(cfg: RunConfig, processes: int) -> None:
    """Every optimizer step must hold whole groups of `num_generations` completions."""
    total = cfg.completions_per_step(processes)
    g = cfg.rollout.num_generations
    if total % g:
        t = cfg.train
        raise ConfigError(
            f"{cfg.source}: train.per_device_train_batch_size ({t.per_device_train_batch_size}) x "
            f"{processes} process{'es' if processes != 1 else ''} x "
            f"train.gradient_accumulation_steps ({t.gradient_accumulation_steps}) = {total} "
            f"completions per step, not a multiple of rollout.num_generations ({g})"
        )


def is_local_path(name: str) -> bool:
    """Whether a model name must be a local folder (not a Hugging Face id like org/name)."""
    if Path(name).expanduser().exists():
        return True
    return name.startswith((".", "/", "~")) or not _HUB_ID.fullmatch(name)


def check_files(cfg: RunConfig) -> None:
    """The files and folders the recipe names exist (Hub ids are left to the Hub)."""
    src = cfg.source
    if not Path(cfg.data).exists():
        raise ConfigError(f"{src}: data: no such file or folder: {cfg.data}")
    models = [("model", cfg.model)]
    if cfg.rewards.writing is not None and cfg.rewards.writing.model is not None:
        models.append(("rewards.writing.model", cfg.rewards.writing.model))
    for key, name in models:
        if key == "model" and name == TINY:
            continue
        if is_local_path(name) and not Path(name).expanduser().is_dir():
            raise ConfigError(f"{src}: {key}: no such model folder: {name}")
    run = cfg.run_dir
    if run.exists() and not run.is_dir():
        raise ConfigError(f"{src}: output_dir: {run} is a file, not a folder")


def load_config(
    path: str | Path,
    overrides: list[str] | None = None,
    *,
    processes: int | None = None,
    for_training: bool = True,
) -> RunConfig:
    """The checked recipe at `path`, with `--set key=value` overrides applied.

    `for_training=False` (the rollout server) skips the batch arithmetic and the files.
    """
    source = str(path)
    raw = read_yaml(path)
    if overrides:
        raw = merge(raw, parse_set(overrides, source))
    cfg = config_from_mapping(raw, source)
    if for_training:
        check_batch(cfg, world_size() if processes is None else processes)
        check_files(cfg)
    return cfg
