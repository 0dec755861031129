"""`longwrite batch`: many prompts through the main job, resumable (input, runner, pool)."""

DEFAULT_CONCURRENCY = 8  # lines in flight per server
