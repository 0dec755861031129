"""The options that several commands share, each declared once (`cli/declare.py`).

One declaration per option: its flags, help, panel, built-in default and, for a setting, its
config key and `LONGWRITE_<KEY>` variable, so that `longwrite` (write), `batch`, `continue`,
the evals and `export` show the same text and take the same defaults, and the config file
(`config/`) knows every key there is. A command lists them after `*`, without defaults, and
is decorated with `declared`; `Engine`, `Sampling` and `Guards` are groups a command takes as
one value. `run_ids` and `server_names` complete a run id and a server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from longwrite.batch import DEFAULT_CONCURRENCY
from longwrite.cli.completion import run_ids, server_names
from longwrite.cli.declare import argument, declared, group, option, setting
from longwrite.defaults import GUARD_RETRIES, MAX_WORDS, THINK_TOKENS
from longwrite.engines import EngineOptions
from longwrite.engines.base import DEFAULT_MODEL, DEFAULT_TEMPERATURE, DEFAULT_TOP_P, MODEL_CONTEXT

__all__ = ["declared"]

LENGTH = "Length control"
ENGINE = "Engine"
SAMPLING = "Sampling"
OUTPUT = "Output"
GUARDS = "Guards"
SECTIONS = "Sections"
SOURCES = "Sources"

Words = setting(
    "words", int | None, None, "--words", "-w", metavar="N", panel=LENGTH,
    help=f"Target length in words (default: what the prompt asks for); at most {MAX_WORDS:,}.",
)  # fmt: skip
BestOf = setting(
    "best_of", int, 1, metavar="K", panel=LENGTH,
    help="Sample K candidates, keep the best by the rewards.",
)  # fmt: skip
MaxRounds = setting(
    "max_rounds", int, 2, metavar="N", panel=LENGTH,
    help="Continuation rounds when the answer ends short (0: none).",
)  # fmt: skip
RangeModel = setting(
    "range_model", str | None, None, metavar="URL", panel=LENGTH,
    help="OpenAI-compatible URL (or a named server) of an LLM that predicts the length a "
    "prompt needs when it states none.",
)  # fmt: skip
Model = setting(
    "model", str | None, None, "--model", "-m", metavar="NAME", panel=ENGINE,
    help=f"Model folder or Hugging Face id (default: {DEFAULT_MODEL}; with a server: the model "
    "it serves).",
)  # fmt: skip
EngineName = setting(
    "engine", Literal["auto", "vllm", "openai", "transformers"], "auto", panel=ENGINE,
    help="Backend. auto: a server if one is given, else vLLM on a GPU, else transformers.",
)  # fmt: skip
Servers = setting(
    "server", list[str] | None, None, "--server", metavar="URL|NAME", panel=ENGINE,
    value_type=str | list[str], autocompletion=server_names,
    help="OpenAI-compatible server: its URL, or the name of a \\[servers.NAME] of the config "
    "file. Repeatable: batch spreads its prompts over the servers, --parallel its sections. "
    "The API key comes from LONGWRITE_API_KEY, or the variable api_key_env names.",
)  # fmt: skip
Tp = setting(
    "tp", int | None, None, metavar="N", panel=ENGINE,
    help="vLLM: tensor-parallel GPUs (default: all visible).",
)  # fmt: skip
MaxModelLen = setting(
    "max_model_len", int, MODEL_CONTEXT, metavar="TOKENS", panel=ENGINE,
    help="vLLM: context length.",
)  # fmt: skip
GpuMemoryUtilization = setting(
    "gpu_memory_utilization", float, 0.9, metavar="SHARE", panel=ENGINE,
    help="vLLM: share of GPU memory to use.",
)  # fmt: skip
Device = setting(
    "device", str, "auto", metavar="DEVICE", panel=ENGINE,
    help="transformers: auto, cpu, cuda, mps.",
)  # fmt: skip
Dtype = setting(
    "dtype", str, "auto", metavar="DTYPE", panel=ENGINE, help="auto, float32, bfloat16, float16."
)
MaxTokens = setting(
    "max_tokens", int | None, None, metavar="N", panel=SAMPLING,
    help="Most tokens to generate (default: from the target; 15500 without one).",
)  # fmt: skip
Temperature = setting(
    "temperature", float, DEFAULT_TEMPERATURE, metavar="T", panel=SAMPLING,
    help="0 means greedy.",
)  # fmt: skip
TopP = setting("top_p", float, DEFAULT_TOP_P, "--top-p", metavar="P", panel=SAMPLING,
               help="Nucleus sampling.")  # fmt: skip
Seed = setting(
    "seed", int | None, None, metavar="N", panel=SAMPLING,
    help="Random seed (same seed, same text).",
)  # fmt: skip
Think = setting(
    "think", bool, True, "--think/--no-think", panel=SAMPLING,
    help="Plan first, in the model's thinking; --no-think asks for the document directly.",
)  # fmt: skip
Thinking = setting(
    "thinking", Literal["hide", "show", "keep"], "hide", panel=OUTPUT,
    help="The model's planning: hide it, show it dim on stderr, or keep it in the output.",
)  # fmt: skip
NoLog = option(
    bool, False, "--no-log", panel=OUTPUT,
    help="Keep this run out of the run log (or env LONGWRITE_NO_LOG=1).",
)  # fmt: skip
Concurrency = setting(
    "concurrency", int, DEFAULT_CONCURRENCY, metavar="N", min=1,
    help="Prompts in flight per server (a local engine: in all; transformers: prompts per batch).",
)  # fmt: skip
GuardRetries = setting(
    "guard_retries", int, GUARD_RETRIES, metavar="N", panel=GUARDS,
    help="Fresh samples after the text loops; then the text before the loop is kept.",
)  # fmt: skip
Guard = setting(
    "guard", bool, True, "--guard/--no-guard", panel=GUARDS,
    help="Loop detection while writing; --no-guard lets loops run.",
)  # fmt: skip
ThinkBudget = setting(
    "think_budget", int, THINK_TOKENS, metavar="TOKENS", panel=GUARDS,
    help="Most thinking tokens; then the thinking is closed and the answer opened (0: no cap). "
    "Also the length budget's thinking allowance.",
)  # fmt: skip
Sections = setting(
    "sections", int | None, None, metavar="N", panel=SECTIONS,
    help="Write in N sections: plan once, then one pass per section (default: only when the "
    "target does not fit one pass).",
)  # fmt: skip
OnePass = option(bool, False, "--one-pass", panel=SECTIONS, help="Never split into sections.")
PlanOnly = option(
    bool, False, "--plan-only", panel=SECTIONS,
    help="Print the sections' outline (Markdown; --json: structured) and stop.",
)  # fmt: skip
PlanFile = option(
    Path | None, None, "--plan", metavar="FILE", panel=SECTIONS,
    help='Write to this plan: its text is the thinking, its ## headings (or its list) the '
    'sections, optional "(N words)", a lone # heading the title.',
)  # fmt: skip
Parallel = setting(
    "parallel", int, 1, "--parallel", metavar="N", panel=SECTIONS,
    help="Write up to N sections at once (a server's concurrency, or several --server). Each "
    "section then sees the plan and the outline, not the text before it.",
)  # fmt: skip
Source = option(
    list[str] | None, None, "--source", metavar="DIR|NAME", panel=SOURCES,
    help="Write from your documents: a folder or file (indexed first; later runs read only "
    "what changed) or the name of an index (`longwrite index`). Repeatable. The passages "
    "most relevant to the request (or to each section) go into the prompt, cited as \\[n]; "
    "a References section ends the document.",
)  # fmt: skip
EmbedServer = setting(
    "embed_server", str | None, None, metavar="URL", panel=SOURCES,
    help="OpenAI-compatible /v1/embeddings server (URL, or URL#MODEL): dense retrieval fused "
    "with BM25 (default: BM25 alone, offline).",
)  # fmt: skip
# The judge of `eval quality`, `writingbench`, `arena` and `grounding`, and the exported
# file's metadata: settings declared here, with the rest, so that the config file knows
# their keys before those commands are imported (`cli/lazy.py`).
JudgeUrl = setting(
    "judge.url", str | None, None, metavar="URL|NAME", autocompletion=server_names,
    help="OpenAI-compatible URL of the judge, or a named server (API key: LONGWRITE_API_KEY, "
    "or the variable api_key_env names). Required, here or in the config file.",
)  # fmt: skip
JudgeModel = setting(
    "judge.model", str | None, None, metavar="NAME",
    help="The judge's model (default: the first the server serves).",
)  # fmt: skip
JudgeConcurrency = setting(
    "judge.concurrency", int, 4, metavar="N", min=1, help="Judge requests at once."
)
ExportAuthor = setting(
    "export.author", str | None, None, metavar="NAME", help="The author, in the file's metadata."
)
ExportLang = setting(
    "export.lang", str | None, None, metavar="LANG",
    help="The language, as en, zh-CN, de (default: zh-CN when the document is mostly Chinese, "
    "else en).",
)  # fmt: skip
# Options that always travel together, each command taking them as one value.
Engine = group(
    EngineOptions, model=Model, engine=EngineName, tp=Tp, max_model_len=MaxModelLen,
    gpu_memory_utilization=GpuMemoryUtilization, device=Device, dtype=Dtype,
)  # fmt: skip
Sampling = group(dict, max_tokens=MaxTokens, temperature=Temperature, top_p=TopP, seed=Seed,
                 think=Think)  # fmt: skip
Guards = group(dict, guard=Guard, guard_retries=GuardRetries, think_budget=ThinkBudget)
RunServer = option(
    str | None, None, "--server", metavar="URL|NAME", panel=ENGINE, autocompletion=server_names,
    help="Another OpenAI-compatible server: a URL or a named one (default: the run's).",
)  # fmt: skip
RunModel = option(
    str | None, None, "--model", "-m", metavar="NAME", panel=ENGINE,
    help="Another model (default: the run's; with --server: the one it serves).",
)  # fmt: skip
RunId = argument(
    str, "last", metavar="ID", autocompletion=run_ids,
    help="Run id, a unique prefix, or `last`.",
)  # fmt: skip
