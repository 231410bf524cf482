"""The contracts in `.importlinter`: the apps depend on each other in one direction, and the disk
reader (`diskread`) is a library that imports no Django and no app."""

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
    "diskread",
]


def lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache"], cwd=cwd, capture_output=True, text=True, check=False
    )


def test_the_contracts_hold():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 3 kept, 0 broken." in result.stdout


def copy_of_the_code(tmp_path: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / ".importlinter", tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    ("lower", "upper"),
    [
        ("core", "operations"),
        ("accounts", "vms"),
        ("operations", "snapshots"),
        ("vms", "sharing"),
        ("snapshots", "schedules"),
        ("schedules", "transfers"),
    ],
)
def test_an_upward_import_breaks_the_contract(tmp_path, lower, upper):
    code = copy_of_the_code(tmp_path)
    (code / lower / "upward.py").write_text(f"import {upper}.models  # noqa\n")

    result = lint_imports(code)

    assert result.returncode != 0
    assert f"{lower} is not allowed to import {upper}" in result.stdout


@pytest.mark.parametrize(("one", "other"), [("vms", "snapshots"), ("snapshots", "vms")])
def test_the_two_apps_of_the_domain_may_import_each_other(tmp_path, one, other):
    code = copy_of_the_code(tmp_path)
    (code / one / "sibling.py").write_text(f"import {other}.models  # noqa\n")

    result = lint_imports(code)

    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize(
    "module", ["django.conf", "rest_framework.exceptions", "core.errors", "vms.layers"]
)
def test_the_disk_reader_importing_django_or_an_app_breaks_its_contract(tmp_path, module):
    code = copy_of_the_code(tmp_path)
    (code / "diskread" / "adapted.py").write_text(f"import {module}  # noqa\n")

    result = lint_imports(code)

    assert result.returncode != 0
    assert f"diskread is not allowed to import {module.split('.')[0]}" in result.stdout


@pytest.mark.parametrize("module", ["django.db", "vms.models", "operations.models"])
def test_the_hypervisor_adapter_importing_django_or_the_domain_breaks_its_contract(
    tmp_path, module
):
    code = copy_of_the_code(tmp_path)
    (code / "vms" / "hypervisor" / "adapted.py").write_text(f"import {module}  # noqa\n")

    result = lint_imports(code)

    assert result.returncode != 0
    assert "vms.hypervisor is not allowed to import" in result.stdout
