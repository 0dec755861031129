"""GRPO training of a LongWriter-Zero style writer, on TRL's `GRPOTrainer`.

The project owns the recipe, TRL owns the algorithm: `config` turns a YAML file into frozen
dataclasses and then into a `GRPOConfig`; `data` applies the think template and gives every
prompt its word range; `rewards` wraps `longwrite.scoring.rewards` (and a writing reward model or an
LLM judge) as TRL reward functions; `train` builds the trainer, its checkpoints, metrics and
progress display; `plots` draws the curves; `cli` is the thin `longwrite rl` command group.

Nothing here imports torch, transformers or trl at module level, so `longwrite --help` stays
fast; they load once a command needs them.
"""
