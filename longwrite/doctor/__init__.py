"""`longwrite doctor`: what this machine has, and whether longwrite will work on it.

Checks are pure functions of a `Machine` snapshot (`gather.py`), so the tests fake a GPU box by
building one. Gathering reads package metadata (never imports torch, vllm or TRL) and asks
`nvidia-smi` for the GPUs; a package is imported only when the user names it with `--check`.
Nothing is downloaded and nothing is written, except a probe file in the run-log home that is
removed at once.
"""
