"""The main job's options, as the user gave them: one typed value for the command, `batch`,
`continue`, `revise` and the Python API.

Why a module of its own: the stages below the command (`generate.job`, `generate.sectioned`)
all take these options, and neither may import the other's module to get the type.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from longwrite.engines import EngineOptions
from longwrite.engines.base import DEFAULT_TEMPERATURE, DEFAULT_TOP_P
from longwrite.length.budget import THINK_TOKENS

if TYPE_CHECKING:
    from longwrite.generate.guards import Guards


@dataclass(frozen=True)
class WriteOptions:
    """The main command's options, as the user gave them."""

    prompt: str
    words: int | None = None
    max_tokens: int | None = None
    temperature: float = DEFAULT_TEMPERATURE
    top_p: float = DEFAULT_TOP_P
    seed: int | None = None
    think: bool = True
    output: Path | None = None
    thinking: str = "hide"
    as_json: bool = False
    dry_run: bool = False
    best_of: int = 1
    max_rounds: int = 2
    range_model: str | None = None
    engine: EngineOptions = EngineOptions()
    log: bool = False  # record the run in the run log (the command: on unless --no-log)
    guard: bool = True  # the loop guard (`--no-guard` turns it off)
    guard_retries: int = 2
    think_budget: int = THINK_TOKENS  # the budget's thinking allowance too; 0: no cap
    sections: int | None = None  # write in N sections (None: only when one pass cannot hold it)
    one_pass: bool = False  # never split, even when the target does not fit one pass
    plan_only: bool = False  # print the outline and stop
    plan_file: Path | None = None  # the user's outline: skip planning
    parallel: int = 1  # sections written at once (1: one after another)
    sources: tuple[str, ...] = ()  # --source: folders, files or index names to write from
    embed_server: str | None = None  # with sources: dense retrieval fused with BM25

    @property
    def guards(self) -> Guards:
        from longwrite.generate.guards import Guards

        return Guards(self.guard, self.guard_retries, self.think_budget)
