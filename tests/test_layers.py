"""The contracts in `.importlinter`: the apps depend on each other in one direction, and the disk
reader (`diskread`) is a library that imports no Django and no app, and the command-line client
(`ks`) speaks to the service over HTTP only."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.test.utils import isolate_apps

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
    "terminal",
    "diskread",
    "ks",
]


def lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache"], cwd=cwd, capture_output=True, text=True, check=False
    )


def test_the_contracts_hold():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 4 kept, 0 broken." in result.stdout


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


# The layers of the apps, lowest first, as `.importlinter` has them; Django's own apps are below.
LAYER = {
    "core": 0,
    "accounts": 1,
    "operations": 2,
    "vms": 3,
    "snapshots": 3,
    "schedules": 4,
    "sharing": 4,
    "transfers": 4,
}


def upward_links(models) -> list[str]:
    """Every relation from a model to a model of a higher layer (foreign keys, one-to-ones,
    many-to-manys; a generic relation is not one)."""
    found = []
    for model in models:
        if model._meta.app_label not in LAYER:
            continue  # Django's own apps (the admin's log names the user model)
        source = LAYER[model._meta.app_label]
        for field in model._meta.get_fields(include_hidden=True):
            if not field.is_relation or field.auto_created or field.related_model is None:
                continue
            target = LAYER.get(field.related_model._meta.app_label, -1)
            if target > source:
                found.append(
                    f"{model._meta.label}.{field.name} -> {field.related_model._meta.label}"
                )
    return found


def test_no_relation_points_up_the_layers():
    from django.apps import apps

    assert upward_links(apps.get_models()) == []


@isolate_apps("operations")
def test_a_relation_up_the_layers_is_found():
    from django.db import models

    from vms.models import VM

    class Upward(models.Model):  # noqa: DJ008
        vm = models.ForeignKey(VM, on_delete=models.CASCADE)

        class Meta:
            app_label = "operations"

    assert upward_links([Upward]) == ["operations.Upward.vm -> vms.VM"]


@pytest.mark.parametrize("module", ["django.conf", "vms.models"])
def test_the_command_line_client_importing_django_or_an_app_breaks_its_contract(tmp_path, module):
    code = copy_of_the_code(tmp_path)
    (code / "ks" / "adapted.py").write_text(f"import {module}  # noqa\n")

    result = lint_imports(code)

    assert result.returncode != 0
    assert f"ks is not allowed to import {module.split('.')[0]}" in result.stdout
