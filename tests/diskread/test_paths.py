"""Paths given by a caller are checked before anything is looked up; names read are shown
safely; a link's target is resolved inside the guest's file system, or not at all."""

import datetime

import pytest

from diskread import BadPath, Entry, join_path, split_path


def link(path: str, target: str, *, cut: bool = False) -> Entry:
    return Entry(
        path=path,
        name=path.rsplit("/", 1)[-1],
        type="symlink",
        size=len(target),
        mode="lrwxrwxrwx",
        permissions=0o777,
        uid=0,
        gid=0,
        modified=datetime.datetime(2026, 5, 28, tzinfo=datetime.UTC),
        inode=12,
        target=target,
        target_cut=cut,
    )


def test_a_path_splits_into_its_names_from_the_root():
    assert split_path("/home//alice/") == ["home", "alice"]


@pytest.mark.parametrize("path", [None, "", "/"])
def test_no_path_or_slash_is_the_root(path):
    assert split_path(path) == []


@pytest.mark.parametrize("path", ["/etc/../etc/hostname", "..", "/./etc"])
def test_a_path_with_dots_is_refused(path):
    with pytest.raises(BadPath, match=r"may not contain '\.' or '\.\.'"):
        split_path(path)


@pytest.mark.parametrize("path", ["/etc/\x01", "/etc/\x7f", "/a\nb"])
def test_a_path_with_control_characters_is_refused(path):
    with pytest.raises(BadPath, match="control characters"):
        split_path(path)


def test_a_path_longer_than_path_max_is_refused():
    with pytest.raises(BadPath, match="at most 4096 characters"):
        split_path("/a" * 2049)


def test_a_name_longer_than_255_bytes_is_refused():
    with pytest.raises(BadPath, match="at most 255 bytes"):
        split_path("/" + "é" * 128)


def test_a_path_that_is_not_text_is_refused():
    with pytest.raises(BadPath, match="as text"):
        split_path(b"/etc")


def test_a_name_that_is_not_utf8_is_shown_with_replacement_characters():
    name = b"caf\xe9".decode("utf-8", "surrogateescape")
    assert join_path(["home", name]) == "/home/caf\ufffd"


def test_a_relative_link_target_resolves_beside_the_link():
    assert link("/etc/alternatives/editor", "../vim/vimrc").target_path == "/etc/vim/vimrc"


def test_an_absolute_link_target_resolves_from_the_root():
    assert link("/home/alice/x", "/etc/hostname").target_path == "/etc/hostname"


def test_a_link_target_climbing_out_of_the_file_system_resolves_to_nothing():
    assert link("/escape", "../../etc").target_path is None


def test_a_cut_link_target_resolves_to_nothing():
    assert link("/long", "x" * 10, cut=True).target_path is None
