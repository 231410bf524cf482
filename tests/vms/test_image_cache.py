"""A Debian image build is kept and reused while its recipe stays the same."""

import json

import pytest

from vms import image_debian


def test_a_build_of_the_same_recipe_is_reused(tmp_path, monkeypatch):
    folder = tmp_path / f"debian-12-{image_debian.recipe_key()}"
    folder.mkdir()
    info = {"kernel_version": "6.1.0-1-cloud-amd64", "virtual_size": 2**31, "seconds": 61.5}
    (folder / "build.json").write_text(json.dumps(info))
    monkeypatch.setattr(image_debian, "build", lambda work_dir: pytest.fail("built again"))

    files, build = image_debian.build_cached(tmp_path)

    assert files.root_disk == folder / "root.qcow2"
    assert build == {**info, "cached": True}


def test_a_changed_recipe_is_built_anew(tmp_path, monkeypatch):
    (tmp_path / "debian-12-0000000000000000").mkdir()
    built = []

    def build(work_dir):
        built.append(work_dir)
        work_dir.mkdir(parents=True)
        return image_debian._files_in(
            work_dir, {"kernel_version": "6.1.0-1-cloud-amd64", "virtual_size": 2**31}
        )

    monkeypatch.setattr(image_debian, "build", build)

    files, build_info = image_debian.build_cached(tmp_path)

    assert len(built) == 1
    assert files.root_disk.parent.name == f"debian-12-{image_debian.recipe_key()}"
    assert build_info["cached"] is False
    # The next time, it is the kept one.
    assert image_debian.build_cached(tmp_path)[1]["cached"] is True


def test_build_image_debian_says_whether_it_reused_a_build(db, monkeypatch, capsys):
    from django.core.management import call_command

    from tests.factories import image_row
    from vms.management.commands import build_image

    calls = []

    def build_debian(*, host):
        calls.append(host)
        return image_row(slug="debian-12"), {"seconds": 61.5, "cached": True}

    monkeypatch.setattr(build_image, "host_ensure_default", lambda: "the local host")
    monkeypatch.setattr(build_image, "image_build_debian", build_debian)

    call_command("build_image", "debian")
    assert calls == ["the local host"]
    assert "reused a build that took 61.5 s" in capsys.readouterr().out

    call_command("build_image", "debian")  # registered: kept
    assert len(calls) == 1
