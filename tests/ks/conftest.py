import os
import subprocess
import sys

import pytest

from accounts.services import token_create
from tests.conftest import ROOT


class Ks:
    """`ks` as a script runs it: a process of its own, configured by the environment."""

    def __init__(self, env: dict):
        self.env = env

    def __call__(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "ks", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


@pytest.fixture
def ks_env(live_server, alice, tmp_path):
    _token, key = token_create(user=alice, name="ks")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KS_")}
    env.update(KS_URL=live_server.url, KS_TOKEN=key, HOME=str(tmp_path), KS_POLL_SECONDS="0.2")
    env.pop("XDG_CONFIG_HOME", None)
    return env


@pytest.fixture
def ks(ks_env):
    """Alice's `ks`, against the live server."""
    return Ks(ks_env)
