"""The reader's tests: plain functions over disk images built once per run (`images`), no
database and no Django."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.diskread.images import PARENTS, build_hostile_layers, build_layers


@pytest.fixture(autouse=True)
def empty_cache():
    """The suite's fixture of that name sets up the test database for every test; the reader
    needs none, so here it does nothing."""


def _file_name(name: str) -> str:
    return f"{name}.qcow2"


@pytest.fixture(scope="session")
def pool(tmp_path_factory) -> Path:
    """The layer files of `images.build_layers`, named `<name>.qcow2`."""
    work = tmp_path_factory.mktemp("diskread")
    folder = work / "pool"
    folder.mkdir()
    build_layers(work, folder, _file_name)
    return folder


@pytest.fixture(scope="session")
def chain(pool):
    """`chain(name)`: the layer files of a disk of `images.build_layers`, bottom first."""

    def files(name: str) -> list[Path]:
        found = []
        while name is not None:
            found.append(pool / _file_name(name))
            name = PARENTS.get(name)
        return found[::-1]

    return files


@pytest.fixture(scope="session")
def hostile_pool(tmp_path_factory) -> Path:
    """The layer files of `images.build_hostile_layers`, named `<name>.qcow2`."""
    work = tmp_path_factory.mktemp("diskread-hostile")
    folder = work / "pool"
    folder.mkdir()
    build_hostile_layers(work, folder, _file_name)
    return folder


@pytest.fixture(scope="session")
def hostile(hostile_pool):
    """`hostile(name)`: the one layer file of a hostile disk."""
    return lambda name: [hostile_pool / _file_name(name)]
