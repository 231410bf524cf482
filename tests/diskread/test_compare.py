"""Comparing two disks gives exactly what was added, removed and changed, in path order, a page
at a time, reading file contents only where the layers above their common ancestor hold data."""

import pytest

from diskread import BadCursor, Disk, compare_chains, compare_disks, text_diff


def paths(changes):
    return [c.path for c in changes]


def test_compare_with_the_layer_below_gives_exactly_its_changes(chain):
    result = compare_chains(chain("one"), chain("two"))
    assert paths(result.added) == ["/etc/new.txt", "/opt"]
    assert paths(result.removed) == ["/etc/motd"]
    assert paths(result.changed) == ["/etc/config.ini"]
    assert result.next is None


def test_a_change_has_its_sizes_what_changed_and_a_text_diff(chain):
    config = compare_chains(chain("one"), chain("two")).changed[0]
    assert (config.type, config.size_before, config.size_after) == ("file", 12, 13)
    assert config.changes == ("size", "modified", "content")
    assert config.diff == (
        "--- a/etc/config.ini\n+++ b/etc/config.ini\n@@ -1,3 +1,3 @@\n a=1\n-b=2\n+b=20\n c=3\n"
    )


def test_an_added_and_a_removed_file_have_one_size(chain):
    result = compare_chains(chain("one"), chain("two"))
    assert (result.added[0].size_before, result.added[0].size_after) == (None, 10)
    assert (result.removed[0].size_before, result.removed[0].size_after) == (8, None)


def test_compare_reads_contents_only_where_the_layers_changed(chain):
    result = compare_chains(chain("one"), chain("two"))
    assert result.bytes_compared < 256 * 1024  # big.bin (3 MiB) is never read
    assert 0 < result.changed_region_bytes < 2 * 1024**2


def test_compare_without_diffs_leaves_them_out(chain):
    result = compare_chains(chain("one"), chain("two"), diffs=False)
    assert result.changed[0].diff is None


def test_compare_the_other_way_round_swaps_added_and_removed(chain):
    result = compare_chains(chain("two"), chain("one"))
    assert paths(result.added) == ["/etc/motd"]
    assert paths(result.removed) == ["/etc/new.txt", "/opt"]


def test_siblings_compare_by_the_union_above_their_common_ancestor(chain):
    result = compare_chains(chain("two"), chain("three"))
    assert paths(result.added) == ["/etc/motd"]
    assert paths(result.removed) == ["/empty", "/etc/new.txt", "/home/alice/data/file2", "/opt"]
    assert paths(result.changed) == ["/etc/config.ini", "/home/alice/notes.txt"]
    assert "+second line\n" in result.changed[1].diff


def test_two_layers_apart_add_up_both_layers_changes(chain):
    result = compare_chains(chain("one"), chain("four"))
    assert paths(result.added) == ["/etc/new.txt", "/home/alice/data/file3", "/opt"]
    assert paths(result.removed) == ["/etc/motd"]
    assert {c.path: c.changes for c in result.changed} == {
        "/etc/config.ini": ("size", "modified", "content"),
        "/etc/hostname": ("mode",),
    }


def test_a_change_in_a_folder_whose_entries_did_not_change_is_found(chain):
    # /etc is the same folder in two and four (its entries are read once); /etc/hostname is not.
    result = compare_chains(chain("two"), chain("four"))
    assert paths(result.added) == ["/home/alice/data/file3"]
    assert result.removed == []
    assert {c.path: c.changes for c in result.changed} == {"/etc/hostname": ("mode",)}


def test_unrelated_disks_compare_in_full(chain):
    result = compare_chains(chain("dirty"), chain("two"))
    assert result.changed_region_bytes is None  # no common layer: everything may differ
    assert paths(result.added) == ["/etc/new.txt", "/opt"]
    assert paths(result.removed) == ["/etc/motd"]
    assert paths(result.changed) == ["/etc/config.ini"]
    assert result.needs_recovery is True


def test_a_comparison_without_bounds_finds_the_same_changes(chain):
    with Disk(chain("one")) as old, Disk(chain("four")) as new:
        full = compare_disks(old, new, None)
    bounded = compare_chains(chain("one"), chain("four"))
    assert (paths(full.added), paths(full.removed), paths(full.changed)) == (
        paths(bounded.added),
        paths(bounded.removed),
        paths(bounded.changed),
    )
    assert full.bytes_compared > bounded.bytes_compared


def test_a_comparison_comes_a_page_at_a_time_with_a_cursor_to_the_next(chain):
    whole = compare_chains(chain("one"), chain("three"))
    pages, cursor = [], None
    while True:
        page = compare_chains(chain("one"), chain("three"), cursor=cursor, limit=2)
        assert page.count <= 2
        pages.append(page)
        cursor = page.next
        if cursor is None:
            break
    assert len(pages) > 1
    for kind in ("added", "removed", "changed"):
        assert [c.path for p in pages for c in getattr(p, kind)] == paths(getattr(whole, kind))


@pytest.mark.parametrize("cursor", ["not!a!cursor", "AA", "x" * 9000])
def test_a_comparison_cursor_not_handed_out_is_refused(chain, cursor):
    with pytest.raises(BadCursor, match="not handed out"):
        compare_chains(chain("one"), chain("two"), cursor=cursor)


def test_a_diff_of_a_file_that_is_not_text_is_left_out():
    assert text_diff(b"a\0b", b"a\0c", ["bin"]) is None


def test_a_diff_without_a_final_newline_says_so():
    diff = text_diff(b"a\n", b"b", ["f"])
    assert diff.endswith("+b\n\\ No newline at end of file\n")
