"""The parts of `ks` that need no server: its configuration and the names it writes files under."""

import email.message

import pytest

from ks import cli


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("KS_URL", "KS_TOKEN", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / ".config" / "ks").mkdir(parents=True)
    return tmp_path


def test_a_config_file_without_a_section_is_read(home):
    (home / ".config" / "ks" / "config").write_text("url = http://ks.test\ntoken = ks_secret\n")

    assert cli.read_config() == ("http://ks.test", "ks_secret")


def test_the_environment_wins_over_the_config_file(home, monkeypatch):
    (home / ".config" / "ks" / "config").write_text("[ks]\nurl = http://file.test\ntoken = a\n")
    monkeypatch.setenv("KS_URL", "http://env.test")

    assert cli.read_config() == ("http://env.test", "a")


class Response:
    def __init__(self, disposition: str):
        self.headers = email.message.Message()
        self.headers["Content-Disposition"] = disposition


@pytest.mark.parametrize(
    ("disposition", "name"),
    [
        ('attachment; filename="before-upgrade.qcow2"', "before-upgrade.qcow2"),
        ('attachment; filename="../../etc/passwd"', "passwd"),
        ("attachment", None),
    ],
)
def test_a_downloaded_files_name_never_leaves_the_current_folder(disposition, name):
    assert cli._attachment_name(Response(disposition)) == name
