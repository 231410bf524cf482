"""The code base stays clean: lint, formatting, and migrations in step with the models."""

import subprocess
import sys

from django.core.management import call_command

from tests.conftest import ROOT


def test_code_passes_ruff_lint():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "."], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout


def test_code_is_ruff_formatted():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout


def test_migrations_are_in_step_with_models(db):
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)
