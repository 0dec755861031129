"""Command-line options shared by `longwrite` (write) and `longwrite batch`.

Both commands take the same engine, sampling and length-control options; declaring each once
here keeps their names, help texts and panels identical. Defaults stay in the signatures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from longwrite.engines.base import DEFAULT_MODEL

LENGTH = "Length control"
ENGINE = "Engine"
SAMPLING = "Sampling"
OUTPUT = "Output"

BestOf = Annotated[
    int,
    typer.Option(help="Sample K candidates, keep the best by the rewards.", rich_help_panel=LENGTH),
]
MaxRounds = Annotated[
    int,
    typer.Option(
        help="Continuation rounds when the answer ends short (0: none).", rich_help_panel=LENGTH
    ),
]
RangeModel = Annotated[
    str | None,
    typer.Option(
        help="OpenAI-compatible URL of an LLM that predicts the length a prompt needs when it "
        "states none.",
        rich_help_panel=LENGTH,
    ),
]
Model = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help=f"Model folder or Hugging Face id [{DEFAULT_MODEL}; with a server: the model it "
        "serves].",
        rich_help_panel=ENGINE,
    ),
]
EngineName = Annotated[
    Literal["auto", "vllm", "openai", "transformers"],
    typer.Option(
        help="Backend. auto: --server/LONGWRITE_SERVER if set, else vLLM on a GPU, else "
        "transformers.",
        rich_help_panel=ENGINE,
    ),
]
Tp = Annotated[
    int | None,
    typer.Option(help="vLLM: tensor-parallel GPUs (default: all visible).", rich_help_panel=ENGINE),
]
MaxModelLen = Annotated[int, typer.Option(help="vLLM: context length.", rich_help_panel=ENGINE)]
GpuMemoryUtilization = Annotated[
    float, typer.Option(help="vLLM: share of GPU memory to use.", rich_help_panel=ENGINE)
]
Device = Annotated[
    str, typer.Option(help="transformers: auto, cpu, cuda, mps.", rich_help_panel=ENGINE)
]
Dtype = Annotated[
    str, typer.Option(help="auto, float32, bfloat16, float16.", rich_help_panel=ENGINE)
]
MaxTokens = Annotated[
    int | None,
    typer.Option(
        help="Most tokens to generate (default: from the target; 15500 without one).",
        rich_help_panel=SAMPLING,
    ),
]
Temperature = Annotated[float, typer.Option(help="0 means greedy.", rich_help_panel=SAMPLING)]
TopP = Annotated[float, typer.Option("--top-p", help="Nucleus sampling.", rich_help_panel=SAMPLING)]
Seed = Annotated[
    int | None,
    typer.Option(help="Random seed (same seed, same text).", rich_help_panel=SAMPLING),
]
NoThink = Annotated[
    bool,
    typer.Option(
        "--no-think", help="Ask for the document directly, without planning.",
        rich_help_panel=SAMPLING,
    ),
]  # fmt: skip
NoLog = Annotated[
    bool,
    typer.Option(
        "--no-log", help="Keep this run out of the run log (or env LONGWRITE_NO_LOG=1).",
        rich_help_panel=OUTPUT,
    ),
]  # fmt: skip
GUARDS = "Guards"
GuardRetries = Annotated[
    int,
    typer.Option(
        help="Fresh samples after the text loops; then the text before the loop is kept.",
        rich_help_panel=GUARDS,
    ),
]
NoGuard = Annotated[
    bool,
    typer.Option(
        "--no-guard", help="Let loops run (no loop detection while writing).",
        rich_help_panel=GUARDS,
    ),
]  # fmt: skip
ThinkBudget = Annotated[
    int,
    typer.Option(
        help="Most thinking tokens; then the thinking is closed and the answer opened "
        "(0: no cap). Also the length budget's thinking allowance.",
        rich_help_panel=GUARDS,
    ),
]
SECTIONS = "Sections"
Sections = Annotated[
    int | None,
    typer.Option(
        help="Write in N sections: plan once, then one pass per section (default: only "
        "when the target does not fit one pass).",
        rich_help_panel=SECTIONS,
    ),
]
OnePass = Annotated[
    bool,
    typer.Option("--one-pass", help="Never split into sections.", rich_help_panel=SECTIONS),
]
PlanOnly = Annotated[
    bool,
    typer.Option(
        "--plan-only", help="Print the sections' outline (Markdown; --json: structured) and stop.",
        rich_help_panel=SECTIONS,
    ),
]  # fmt: skip
PlanFile = Annotated[
    Path | None,
    typer.Option(
        "--plan", help='Write to this plan: its text is the thinking, its ## headings (or '
        'its list) the sections, optional "(N words)", a lone # heading the title.',
        rich_help_panel=SECTIONS,
    ),
]  # fmt: skip
Parallel = Annotated[
    int,
    typer.Option(
        "--parallel", help="Write up to N sections at once (a server's concurrency, or several "
        "--server). Each section then sees the plan and the outline, not the text before it.",
        rich_help_panel=SECTIONS,
    ),
]  # fmt: skip
