"""The apps depend on each other in one direction: the layers contract in `.importlinter`."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

LINT_IMPORTS = str(Path(sys.executable).with_name("lint-imports"))
PACKAGES = [
    "koding_snapshots",
    "core",
    "accounts",
    "operations",
    "vms",
    "snapshots",
    "schedules",
    "sharing",
    "transfers",
]


def lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache"], cwd=cwd, capture_output=True, text=True, check=False
    )


def test_no_app_imports_one_above_it():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("lower", "upper"),
    [
        ("core", "operations"),
        ("accounts", "vms"),
        ("vms", "snapshots"),
        ("snapshots", "schedules"),
        ("schedules", "transfers"),
    ],
)
def test_an_upward_import_breaks_the_contract(tmp_path, lower, upper):
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / ".importlinter", tmp_path)
    (tmp_path / lower / "upward.py").write_text(f"import {upper}.models  # noqa\n")

    result = lint_imports(tmp_path)

    assert result.returncode != 0
    assert f"{lower} is not allowed to import {upper}" in result.stdout
