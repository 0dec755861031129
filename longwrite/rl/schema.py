"""The keys of a training recipe: their types and defaults, as frozen pydantic models.

A recipe is small but a mistake in it is dear (a GRPO run can load weights for ten minutes
before it reads a mistyped key), so the models are strict: `extra="forbid"` (an unknown key is
an error, with the closest known key suggested), no coercion between types (`"5"` is not `5`,
`1` is not `true`) except two on purpose: an integer is a good float, and a float may be written
`1e-6`, which PyYAML reads as a string (YAML 1.1). pydantic reports every fault it finds;
`fault_line` turns its report into the one line the user sees, naming the file and the key.

Defaults are the paper's (reference §2): 32 completions per prompt, clip 0.2, no KL term,
rollout temperature 0.8 and top_p 1.0, 14,000 completion tokens. Names follow TRL's
`GRPOConfig` wherever a field maps one to one, so TRL's documentation applies; `rollout.engine`
folds `use_vllm` and `vllm_mode` into one choice. Without a `rewards` section, length and
format are on (the writing reward needs a model); with one, exactly the rewards it lists are
on (`length: true` turns one on with its defaults, `false` or null off).

Ranges, combinations and the files a recipe names are checked in `config`, after the types.
"""

from __future__ import annotations

import difflib
import re
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
)

from longwrite.errors import LongwriteError, quoted
from longwrite.scoring.judge import DEFAULT_CONTEXT as JUDGE_CONTEXT

TINY = "tiny"
Engine = Literal["transformers", "vllm-colocate", "vllm-server"]
Precision = Literal["auto", "bf16", "fp16", "fp32"]
ENGINES: tuple[str, ...] = typing.get_args(Engine)
PRECISIONS: tuple[str, ...] = typing.get_args(Precision)
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


class ConfigError(LongwriteError):
    """A fault in a recipe: one line naming the file and the key."""


def _numeric_text(value: Any) -> Any:
    """`1e-6` as YAML 1.1 reads it (a string) -> 1e-06; anything else is left to the type."""
    if isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
        return float(value)
    return value


# A float that may be written `1e-6` (and nowhere else does a string pass for a number).
Number = Annotated[float, BeforeValidator(_numeric_text)]


class _Section(BaseModel):
    """Strict: no key it does not know, no value of another type (`5` is not `"5"`, `1` is
    not `true`), an integer where a number is expected is taken as that number."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


Section = _Section  # the base of other recipes' sections (`pretrain_config`)


class Recipe(_Section):
    """A whole recipe file (`rl train`'s, `rl pretrain`'s): where it came from, for messages
    (`source`, not one of its keys), and where its run writes."""

    output_dir: str
    _source: str = PrivateAttr(default="<config>")

    def model_post_init(self, context: Any) -> None:
        if isinstance(context, dict) and "source" in context:
            self._source = context["source"]

    @property
    def source(self) -> str:
        return self._source

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir)

    def _per_step(self, processes: int) -> int:
        """Sequences one optimizer step takes: per device, times processes, times
        accumulation (both recipes' `train` sections name them the same)."""
        t = self.train  # type: ignore[attr-defined]
        return t.per_device_train_batch_size * processes * t.gradient_accumulation_steps

    def to_json(self) -> dict[str, Any]:
        return self.model_dump()


class RolloutConfig(_Section):
    """How completions are sampled (the paper's settings by default)."""

    engine: Engine = "transformers"
    num_generations: int = 32  # the group size G
    temperature: Number = 0.8
    top_p: Number = 1.0
    max_completion_length: int = 14_000  # tokens, thinking included
    vllm_server: str | None = None  # vllm-server: base URL, e.g. http://10.0.0.2:8000
    vllm_gpu_memory_utilization: Number = 0.3  # vllm-colocate: share of each GPU for vLLM
    vllm_tensor_parallel_size: int = 1  # vllm-colocate
    vllm_max_model_length: int | None = None
    vllm_enable_sleep_mode: bool = False


class LengthRewardConfig(_Section):
    weight: Number = 1.0
    max_words: int | None = None  # the paper's Lmax; None: scoring.rewards' default


class FormatRewardConfig(_Section):
    weight: Number = 1.0


class WritingRewardConfig(_Section):
    """Writing quality from a sequence-classification reward model OR an LLM judge."""

    weight: Number = 1.0
    model: str | None = None  # reward model folder or Hub id
    device: str = "auto"  # where the reward model runs: auto, cpu, cuda, cuda:N
    batch_size: int = 8
    max_length: int = 16_384  # tokens of the answer the reward model sees
    judge: str | None = None  # OpenAI-compatible server URL of the judge
    judge_model: str | None = None  # default: the first model the server lists
    judge_chat: bool = False  # ask over /v1/chat/completions (the judge's chat template)
    concurrency: int = 8  # judge requests in flight
    attempts: int = 3  # per completion, for failures and unreadable replies
    judge_max_tokens: int = 1024
    judge_context: int = JUDGE_CONTEXT  # the judge's context in tokens when its server does not say
    judge_temperature: Number = 0.0
    timeout: Number = 600.0  # seconds per judge request


class RewardsConfig(_Section):
    length: LengthRewardConfig | None = None
    format: FormatRewardConfig | None = None
    writing: WritingRewardConfig | None = None

    @field_validator("length", "format", "writing", mode="before")
    @classmethod
    def _switch(cls, value: Any) -> Any:
        """`length: false` (or null) turns a reward off; `length: true` on, as it comes."""
        if value is None or value is False:
            return None
        return {} if value is True else value

    def enabled(self) -> list[str]:
        return [name for name in ("length", "format", "writing") if getattr(self, name)]


class TrainConfig(_Section):
    max_steps: int = 150  # optimizer steps (the paper: about 150)
    learning_rate: Number = 1e-6  # not published
    per_device_train_batch_size: int = 32  # completions per device per micro-step
    gradient_accumulation_steps: int = 1
    epsilon: Number = 0.2  # the clip range
    beta: Number = 0.0  # KL coefficient: 0 loads no reference model
    save_steps: int = 10
    save_total_limit: int | None = 2  # checkpoints kept (None: all)
    logging_steps: int = 1
    seed: int = 0
    precision: Precision = "auto"  # auto: bf16 on a GPU that has it, else fp32
    gradient_checkpointing: bool = True


_DEFAULT_REWARDS = RewardsConfig(length=LengthRewardConfig(), format=FormatRewardConfig())


class RunConfig(Recipe):
    """A whole recipe; `source` (the file it came from, for messages) is not one of its keys."""

    model: str
    data: str
    rollout: RolloutConfig = RolloutConfig()
    rewards: RewardsConfig = _DEFAULT_REWARDS  # length and format: writing needs a model
    train: TrainConfig = TrainConfig()
    trl: dict[Any, Any] = Field(default_factory=dict)  # checked against GRPOConfig in train

    @field_validator("rollout", "rewards", "train", mode="before")
    @classmethod
    def _empty_section(cls, value: Any) -> Any:
        return {} if value is None or value is True else value

    @field_validator("trl", mode="before")
    @classmethod
    def _trl_or_empty(cls, value: Any) -> Any:
        return value or {}

    def completions_per_step(self, processes: int) -> int:
        return self._per_step(processes)


def _model_of(tp: Any) -> type[BaseModel] | None:
    """The section class inside an annotation (`X` or `X | None`), else None."""
    for candidate in (tp, *typing.get_args(tp)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _keys_of(cls: type[BaseModel], prefix: str) -> list[str]:
    keys = []
    for name, info in cls.model_fields.items():
        sub = _model_of(info.annotation)
        keys += _keys_of(sub, f"{prefix}{name}.") if sub else [f"{prefix}{name}"]
    return keys


def known_keys(root: type[BaseModel] | None = None) -> list[str]:
    """Every dotted key a recipe (`root`, by default `rl train`'s) may set, except the
    free-form pass-through sections (`trl.*`, `trainer.*`)."""
    keys = _keys_of(root or RunConfig, "")
    return [key for key in keys if key not in ("trl", "trainer")]


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


_EXPECTED = {
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "string_type": "a string",
    "model_type": "a mapping of keys",
    "dict_type": "a mapping of keys",
}
_PASS_THROUGH = {  # the free-form mappings, handed to TRL / transformers as they are
    "trl": "a mapping of GRPOConfig fields",
    "trainer": "a mapping of TrainingArguments fields",
}


def _choices(loc: tuple[Any, ...], root: type[BaseModel]) -> tuple[Any, ...]:
    """The values a Literal key allows, found by walking the models along `loc` (a part
    that is not a field is the key of a mapping of sections)."""
    cls: type[BaseModel] | None = root
    tp: Any = None
    for part in loc:
        if cls is not None and part in cls.model_fields:
            tp = cls.model_fields[part].annotation
        cls = _model_of(tp)
    return typing.get_args(tp)


def pass_through(
    source: str, section: str, given: dict[Any, Any], known: type, owned: dict[str, str]
) -> dict[str, Any]:
    """A recipe's pass-through section (`trl`, `trainer`) checked against the dataclass
    `known` it feeds: no key the recipe sets elsewhere (`owned`: key -> where to set it), no
    key the dataclass lacks (with a suggestion). Returns the section as given."""
    import dataclasses

    fields = [f.name for f in dataclasses.fields(known)]
    for key in given:
        if key in owned:
            raise ConfigError(f"{source}: {section}.{key}: set {owned[key]} instead")
        if key not in fields:
            hint = suggest(f"{section}.{key}", [f"{section}.{name}" for name in fields])
            raise ConfigError(f"{source}: unknown key '{section}.{key}'{hint}")
    return dict(given)


def fault_line(
    error: ValidationError, source: str, root: type[BaseModel] | None = None
) -> ConfigError:
    """pydantic's report as one line: an unknown key first (a typo explains the rest)."""
    faults = error.errors()
    first = min(faults, key=lambda f: f["type"] not in ("extra_forbidden", "invalid_key"))
    kind, loc, value = first["type"], first["loc"], first["input"]
    key = ".".join(map(str, loc))
    shown = "null" if value is None else quoted(value)
    if kind in ("extra_forbidden", "invalid_key"):
        message = f"unknown key '{key}'{suggest(key, known_keys(root))}"
    elif kind == "missing":
        message = f"{key} is required"
    elif kind == "literal_error":
        message = f"{key} must be one of {', '.join(_choices(loc, root or RunConfig))}, not {shown}"
    elif kind == "dict_type" and key in _PASS_THROUGH:
        message = f"{key} must be {_PASS_THROUGH[key]}, not {shown}"
    elif kind in _EXPECTED:
        message = f"{key} must be {_EXPECTED[kind]}, not {shown}"
    else:  # nothing in the recipe's types leads here; say pydantic's own words
        message = f"{key}: {first['msg']}"
    return ConfigError(f"{source}: {message}")
