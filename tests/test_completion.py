"""Shell completion: the scripts `longwrite completion SHELL` prints, and a real bash that
sources one and completes a run id, a named server and an option after a prompt.

bash is driven the way readline drives it: COMP_WORDS and COMP_CWORD set, the completion
function called, COMPREPLY read back. zsh and fish may be absent from the machine; their
scripts call `longwrite` back the same way, so the answers to those calls are checked
directly (the words in _TYPER_COMPLETE_ARGS, as their scripts send them).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from longwrite.runlog.store import Store, db_path

BIN = str(Path(sys.executable).parent)  # where the `longwrite` entry point is installed


def env(**extra: str) -> dict[str, str]:
    path = BIN + os.pathsep + os.environ.get("PATH", "")
    return {**os.environ, "PATH": path, "LONGWRITE_SERVER": "", **extra}


def runs(*prompts: str) -> list[str]:
    """Log runs with these prompts (as `longwrite` would start them); their ids, newest last."""
    store = Store.open(db_path())
    try:
        return [store.new_run(kind="write", user_prompt=p, prompt=p, options={}) for p in prompts]
    finally:
        store.close()


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_a_script_that_calls_longwrite_back(shell: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "longwrite", "completion", shell],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"_LONGWRITE_COMPLETE=complete_{shell}" in proc.stdout
    assert "longwrite" in proc.stdout.splitlines()[-1]


def test_completion_of_an_unknown_shell_is_one_line() -> None:
    proc = subprocess.run([sys.executable, "-m", "longwrite", "completion", "tcsh"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr == (
        "longwrite: error: completion: no script for 'tcsh': choose bash, zsh, fish\n"
    )


def bash_complete(*words: str, extra: dict[str, str] | None = None) -> list[str]:
    """What bash offers after `words` (the last one being completed), with the script of
    `longwrite completion bash` sourced."""
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash on this machine")
    array = " ".join(f"'{w}'" for w in words)
    script = (
        "source <(longwrite completion bash) || exit 3\n"
        f"COMP_WORDS=({array}); COMP_CWORD={len(words) - 1}\n"
        "_longwrite_completion longwrite\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    proc = subprocess.run([bash, "--norc", "--noprofile", "-c", script], capture_output=True,
                          text=True, timeout=120, env=env(**(extra or {})))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return [line for line in proc.stdout.splitlines() if line]


def test_bash_completes_a_run_id_for_logs_show_continue_revise_and_export() -> None:
    first, second = runs("Write about tides.", "Write about the moon.")
    for command in (["logs", "show"], ["continue"], ["revise"], ["export"], ["logs", "rm"]):
        assert bash_complete("longwrite", *command, "") == ["last", second, first]
        assert bash_complete("longwrite", *command, first[:7]) == [first]


def test_bash_completes_nothing_for_a_run_id_without_a_log() -> None:
    assert bash_complete("longwrite", "continue", "") == ["last"]


def test_bash_completes_named_servers_and_options_after_a_prompt(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[servers.gpu]\nurl = "http://g:1"\n[servers.cloud]\nurl = "http://c:1"\n')
    named = {"LONGWRITE_CONFIG": str(config)}
    assert bash_complete("longwrite", "--server", "", extra=named) == ["cloud", "gpu"]
    assert bash_complete("longwrite", "batch", "in.jsonl", "--server", "g", extra=named) == ["gpu"]
    assert bash_complete("longwrite", "tides", "--serv", extra=named) == ["--server"]
    assert bash_complete("longwrite", "tides", "--thinking", "") == ["hide", "show", "keep"]
    assert "config" in bash_complete("longwrite", "co")


def test_a_damaged_config_completes_no_server() -> None:
    damaged = {"LONGWRITE_CONFIG": "/dev/null/x"}  # a file that cannot be read
    assert bash_complete("longwrite", "--server", "", extra=damaged) == []


@pytest.mark.parametrize(("shell", "line"), [("zsh", "longwrite logs show "),
                                             ("fish", "longwrite continue ")])  # fmt: skip
def test_zsh_and_fish_are_answered_with_run_ids_and_what_they_are(shell: str, line: str) -> None:
    (run,) = runs("Write about tides.")
    extra = {"_LONGWRITE_COMPLETE": f"complete_{shell}", "_TYPER_COMPLETE_ARGS": line,
             "_TYPER_COMPLETE_FISH_ACTION": "get-args"}  # fmt: skip
    proc = subprocess.run(["longwrite"], capture_output=True, text=True, timeout=60,
                          env=env(**extra))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert run in proc.stdout and "Write about tides." in proc.stdout
