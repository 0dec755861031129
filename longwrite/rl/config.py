"""A training recipe: YAML in, frozen dataclasses out, every mistake caught before a model loads.

A GRPO run on many GPUs can spend ten minutes loading weights before it reads a mistyped key,
so `load_config` checks everything it can on its own: unknown keys (with the closest known
key as a suggestion), value types, the group arithmetic of the batch, and that the files it
names exist. Each fault is one `ConfigError` line naming the file and the key.

Layout of a recipe (every section optional but `model` and `data`; see `rl/README.md`)::

    model: Qwen/Qwen2.5-1.5B      # a folder, a Hugging Face id, or `tiny`
    data: data/rl.jsonl           # from `longwrite rl prepare`, or raw prompts stating lengths
    output_dir: runs/qwen-1.5b    # the run folder (default runs/<config name>)
    rollout: {engine, num_generations, temperature, top_p, max_completion_length, vllm_*}
    rewards: {length: {...}, format: {...}, writing: {...}}   # the rewards that are on
    train: {max_steps, learning_rate, per_device_train_batch_size, ...}
    trl: {}                       # any other GRPOConfig field, passed through as is

Choices:

* Defaults are the paper's (reference §2): 32 completions per prompt, clip 0.2, no KL term,
  rollout temperature 0.8 and top_p 1.0, 14,000 completion tokens; the rewards are averaged
  after each is normalised within its group (`normalize_then_sum`, fixed in `train`).
* Names follow TRL's `GRPOConfig` wherever a field maps one to one, so TRL's documentation
  applies; `rollout.engine` folds `use_vllm` and `vllm_mode` into one choice.
* Without a `rewards` section, length and format are on (the writing reward needs a model);
  with one, exactly the rewards it lists are on.
* A float may be written `1e-6`: PyYAML reads that as a string (YAML 1.1), so numeric strings
  are accepted where a float is expected, and nowhere else.
* Relative paths are relative to the working directory, as on any command line.
* `model: tiny` means the tiny random model of `longwrite.tiny`, built into the run folder on
  first use: the CPU smoke recipe needs no download.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from longwrite.errors import LongwriteError

TINY = "tiny"
ENGINES = ("transformers", "vllm-colocate", "vllm-server")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")


class ConfigError(LongwriteError):
    """A fault in a recipe: one line naming the file and the key."""


@dataclass(frozen=True)
class RolloutConfig:
    """How completions are sampled (the paper's settings by default)."""

    engine: str = "transformers"  # transformers | vllm-colocate | vllm-server
    num_generations: int = 32  # the group size G
    temperature: float = 0.8
    top_p: float = 1.0
    max_completion_length: int = 14_000  # tokens, thinking included
    vllm_server: str | None = None  # vllm-server: base URL, e.g. http://10.0.0.2:8000
    vllm_gpu_memory_utilization: float = 0.3  # vllm-colocate: share of each GPU for vLLM
    vllm_tensor_parallel_size: int = 1  # vllm-colocate
    vllm_max_model_length: int | None = None
    vllm_enable_sleep_mode: bool = False


@dataclass(frozen=True)
class LengthRewardConfig:
    weight: float = 1.0
    max_words: int | None = None  # the paper's Lmax; None: scoring.rewards' default


@dataclass(frozen=True)
class FormatRewardConfig:
    weight: float = 1.0


@dataclass(frozen=True)
class WritingRewardConfig:
    """Writing quality from a sequence-classification reward model OR an LLM judge."""

    weight: float = 1.0
    model: str | None = None  # reward model folder or Hub id
    device: str = "auto"  # where the reward model runs: auto, cpu, cuda, cuda:N
    batch_size: int = 8
    max_length: int = 16_384  # tokens of the answer the reward model sees
    judge: str | None = None  # OpenAI-compatible server URL of the judge
    judge_model: str | None = None  # default: the first model the server lists
    concurrency: int = 8  # judge requests in flight
    attempts: int = 3  # per completion, for failures and unreadable replies
    judge_max_tokens: int = 1024
    judge_context: int = 32_768  # the judge's context in tokens when its server does not say
    judge_temperature: float = 0.0
    timeout: float = 600.0  # seconds per judge request


@dataclass(frozen=True)
class RewardsConfig:
    length: LengthRewardConfig | None = None
    format: FormatRewardConfig | None = None
    writing: WritingRewardConfig | None = None

    def enabled(self) -> list[str]:
        return [name for name in ("length", "format", "writing") if getattr(self, name)]


@dataclass(frozen=True)
class TrainConfig:
    max_steps: int = 150  # optimizer steps (the paper: about 150)
    learning_rate: float = 1e-6  # not published
    per_device_train_batch_size: int = 32  # completions per device per micro-step
    gradient_accumulation_steps: int = 1
    epsilon: float = 0.2  # the clip range
    beta: float = 0.0  # KL coefficient: 0 loads no reference model
    save_steps: int = 10
    save_total_limit: int | None = 2  # checkpoints kept (None: all)
    logging_steps: int = 1
    seed: int = 0
    precision: str = "auto"  # auto (bf16 on a GPU, else fp32) | bf16 | fp16 | fp32
    gradient_checkpointing: bool = True


@dataclass(frozen=True)
class RunConfig:
    model: str
    data: str
    output_dir: str
    rollout: RolloutConfig = RolloutConfig()
    rewards: RewardsConfig = RewardsConfig()
    train: TrainConfig = TrainConfig()
    trl: dict[str, Any] = field(default_factory=dict)
    source: str = "<config>"  # the file it came from, for messages

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir)

    def completions_per_step(self, processes: int) -> int:
        t = self.train
        return t.per_device_train_batch_size * processes * t.gradient_accumulation_steps

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out.pop("source")
        return out


_SECTIONS: dict[str, type] = {
    "rollout": RolloutConfig,
    "rewards": RewardsConfig,
    "train": TrainConfig,
}
_TOP = ("model", "data", "output_dir", "rollout", "rewards", "train", "trl")
_DEFAULT_REWARDS = {"length": {}, "format": {}}


def known_keys() -> list[str]:
    """Every dotted key a recipe may set (except the free-form `trl.*`)."""
    keys = ["model", "data", "output_dir"]
    for name, cls in _SECTIONS.items():
        for f in dataclasses.fields(cls):
            sub = _dataclass_of(_hints(cls)[f.name])
            if sub is None:
                keys.append(f"{name}.{f.name}")
            else:
                keys += [f"{name}.{f.name}.{g.name}" for g in dataclasses.fields(sub)]
    return keys


def suggest(key: str, candidates: list[str]) -> str:
    """' (did you mean 'x'?)' for the closest candidate (or section), '' when none is close."""
    sections = {c.rsplit(".", i)[0] for c in candidates for i in range(1, c.count(".") + 1)}
    candidates = sorted(set(candidates) | sections)
    leaf = key.rsplit(".", 1)[-1]
    same_leaf = [c for c in candidates if c.rsplit(".", 1)[-1] == leaf]
    close = same_leaf or difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
    if not close:  # a typo in the last part only: compare the leaves
        leaves = {c.rsplit(".", 1)[-1]: c for c in candidates if c.startswith(key[: -len(leaf)])}
        match = difflib.get_close_matches(leaf, list(leaves), n=1, cutoff=0.6)
        close = [leaves[match[0]]] if match else []
    return f" (did you mean '{close[0]}'?)" if close else ""


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _optional(tp: Any) -> tuple[Any, bool]:
    """(the type without None, whether None is allowed)."""
    args = typing.get_args(tp)
    if type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0], True
    return tp, False


def _dataclass_of(tp: Any) -> type | None:
    base, _ = _optional(tp)
    return base if dataclasses.is_dataclass(base) else None


_TYPE_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _coerce(value: Any, tp: Any, key: str, where: str) -> Any:
    """`value` as type `tp`, or a ConfigError naming `key`."""
    base, nullable = _optional(tp)
    if value is None:
        if nullable:
            return None
        raise ConfigError(f"{where}: {key} must be {_TYPE_NAMES.get(base, base)}, not null")
    ok = False
    if base is bool:
        ok = isinstance(value, bool)
    elif base is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif base is float:
        if isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
            value = float(value)
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif base is str:
        ok = isinstance(value, str)
    elif typing.get_origin(base) is dict:
        ok = isinstance(value, dict)
    if not ok:
        raise ConfigError(f"{where}: {key} must be {_TYPE_NAMES.get(base, base)}, not {value!r}")
    return value


def _build(cls: type, raw: Any, prefix: str, where: str) -> Any:
    """An instance of dataclass `cls` from the mapping `raw` (keys checked, values typed)."""
    if raw is None or raw is True:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: {prefix} must be a mapping of keys, not {raw!r}")
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        dotted = f"{prefix}.{key}"
        if key not in names:
            raise ConfigError(f"{where}: unknown key '{dotted}'{suggest(dotted, known_keys())}")
        sub = _dataclass_of(hints[key])
        if sub is not None:
            off = value is None or value is False
            kwargs[key] = None if off else _build(sub, value, dotted, where)
        else:
            kwargs[key] = _coerce(value, hints[key], dotted, where)
    return cls(**kwargs)


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


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
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
    for key in raw:
        if key not in _TOP:
            raise ConfigError(f"{source}: unknown key '{key}'{suggest(str(key), known_keys())}")
    for key in ("model", "data"):
        if raw.get(key) in (None, ""):
            raise ConfigError(f"{source}: {key} is required")
    model = _coerce(raw["model"], str, "model", source)
    data = _coerce(raw["data"], str, "data", source)
    output_dir = raw.get("output_dir")
    if output_dir is None:
        output_dir = str(Path("runs") / Path(source).stem)
    output_dir = _coerce(output_dir, str, "output_dir", source)
    rewards_raw = raw.get("rewards", _DEFAULT_REWARDS)
    trl = raw.get("trl") or {}
    if not isinstance(trl, dict):
        raise ConfigError(f"{source}: trl must be a mapping of GRPOConfig fields, not {trl!r}")
    cfg = RunConfig(
        model=model,
        data=data,
        output_dir=output_dir,
        rollout=_build(RolloutConfig, raw.get("rollout"), "rollout", source),
        rewards=_build(RewardsConfig, rewards_raw, "rewards", source),
        train=_build(TrainConfig, raw.get("train"), "train", source),
        trl=dict(trl),
        source=source,
    )
    check_values(cfg)
    return cfg


def check_values(cfg: RunConfig) -> None:
    """Ranges and combinations that the types alone do not catch."""
    src, r, t, w = cfg.source, cfg.rollout, cfg.train, cfg.rewards.writing

    def fail(key: str, message: str) -> None:
        raise ConfigError(f"{src}: {key} {message}")

    if r.engine not in ENGINES:
        fail("rollout.engine", f"must be one of {', '.join(ENGINES)}, not {r.engine!r}")
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
    for key in ("max_steps", "per_device_train_batch_size", "gradient_accumulation_steps"):
        if getattr(t, key) < 1:
            fail(f"train.{key}", "must be at least 1")
    if t.save_steps < 1 or t.logging_steps < 1:
        fail("train.save_steps" if t.save_steps < 1 else "train.logging_steps", "must be >= 1")
    if t.learning_rate <= 0:
        fail("train.learning_rate", "must be positive")
    if t.precision not in PRECISIONS:
        fail("train.precision", f"must be one of {', '.join(PRECISIONS)}, not {t.precision!r}")
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
        raw = _merge(raw, parse_set(overrides, source))
    cfg = config_from_mapping(raw, source)
    if for_training:
        check_batch(cfg, world_size() if processes is None else processes)
        check_files(cfg)
    return cfg
