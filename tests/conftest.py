"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def _session_log_home(tmp_path_factory: pytest.TempPathFactory):
    """A run log for session- and module-scoped fixtures, which start before `_log_home`."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LONGWRITE_HOME", str(tmp_path_factory.mktemp("longwrite-session") / "home"))
        mp.delenv("LONGWRITE_NO_LOG", raising=False)
        _no_user_config(mp, tmp_path_factory.mktemp("longwrite-session-config"))
        yield


@pytest.fixture(autouse=True)
def _log_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test logs into a folder of its own: no test ever writes to the real home (the
    CLI runs in subprocesses inherit the environment)."""
    home = tmp_path_factory.mktemp("longwrite-home") / "home"
    monkeypatch.setenv("LONGWRITE_HOME", str(home))
    monkeypatch.delenv("LONGWRITE_NO_LOG", raising=False)
    _no_user_config(monkeypatch, home.parent / "config")
    return home


def _no_user_config(mp: pytest.MonkeyPatch, folder: Path) -> None:
    """No test reads the user's config file or settings from the environment: the config
    folder is the test's own (empty), and every LONGWRITE_<KEY> of a setting is unset (the
    server and its key are set by the tests that need them)."""
    import os

    mp.setenv("XDG_CONFIG_HOME", str(folder))
    kept = {"LONGWRITE_HOME", "LONGWRITE_NO_LOG", "LONGWRITE_SERVER", "LONGWRITE_API_KEY"}
    for name in [n for n in os.environ if n.startswith("LONGWRITE_") and n not in kept]:
        mp.delenv(name)


@pytest.fixture
def log_home(_log_home: Path) -> Path:
    """The LONGWRITE_HOME of this test (not created until something logs)."""
    return _log_home


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random Qwen2 model (longwrite.tiny), built once per test session."""
    from longwrite.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")
