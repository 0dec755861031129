"""GRPO training of a LongWriter-Zero style writer, on TRL's `GRPOTrainer`.

The project owns the recipe, TRL owns the algorithm: `config` reads a YAML recipe into the
frozen pydantic models of `schema` and checks it; `data` applies the think template and gives
every prompt its word range; `rewards` wraps `longwrite.scoring.rewards` (and a writing reward
model or an LLM judge) as TRL reward functions; `train` maps the recipe onto `GRPOConfig` and
runs the trainer; `run_dir` owns the run folder (checkpoints, resume, `final/`); `metrics`
writes `metrics.jsonl` and the progress display; `plots` draws the curves; `cli.rl` is the
thin `longwrite rl` command group.

Nothing here imports torch, transformers or trl at module level, so `longwrite --help` stays
fast; they load once a command needs them.
"""
