"""A disk is the chain of qcow2 layer files its caller names, bottom first: the backing files
written inside the layers are never used, and a chain that does not fit together is refused."""

import pytest

from diskread import Disk, NotReadable, Ranges, changed_ranges, common_layers, layer_ranges
from tests.diskread.images import MIB, make_base, make_tree, run


def test_a_chain_reads_the_top_layers_changes_over_the_layers_below(chain):
    with Disk(chain("four")) as disk:
        assert disk.read_text("/home/alice/data/file3") == "3\n"  # four's own
        assert disk.read_text("/etc/new.txt") == "brand new\n"  # two's
        assert disk.read_text("/home/alice/notes.txt") == "first line\n"  # one's


def test_a_layer_larger_than_the_one_below_reads_zeros_past_its_end(tmp_path):
    (tmp_path / "root").mkdir()
    make_tree(tmp_path / "root", {"/f": "x\n"}, {})
    make_base(tmp_path / "root", tmp_path / "small.raw", tmp_path / "small.qcow2", 8 * MIB)
    run("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
        tmp_path / "small.qcow2", tmp_path / "big.qcow2", "16M")  # fmt: skip
    with Disk([tmp_path / "small.qcow2", tmp_path / "big.qcow2"]) as disk:
        disk.stream.seek(12 * MIB)
        assert disk.stream.read(4096) == b"\x00" * 4096
        assert disk.read_text("/f") == "x\n"


def test_a_bottom_layer_naming_a_backing_file_is_refused(pool):
    with pytest.raises(NotReadable, match="names a backing file"):
        Disk([pool / "two.qcow2"])


def test_a_layer_without_a_backing_file_above_another_is_refused(pool):
    with pytest.raises(NotReadable, match="chain is inconsistent"):
        Disk([pool / "one.qcow2", pool / "dirty.qcow2"])


def test_a_missing_layer_file_is_refused_with_a_sentence(pool):
    with pytest.raises(NotReadable, match="not on this machine"):
        Disk([pool / "one.qcow2", pool / "nothing.qcow2"])


def test_a_symbolic_link_in_place_of_a_layer_file_is_not_opened(pool, tmp_path):
    (tmp_path / "link.qcow2").symlink_to(pool / "one.qcow2")
    with pytest.raises(NotReadable, match="cannot be opened"):
        Disk([tmp_path / "link.qcow2"])


def test_a_file_that_is_not_qcow2_is_refused(tmp_path):
    (tmp_path / "raw.img").write_bytes(b"\0" * 65536)
    with pytest.raises(NotReadable, match="not a readable qcow2 image"):
        Disk([tmp_path / "raw.img"])


def test_no_layers_is_refused():
    with pytest.raises(NotReadable, match="no disk layers"):
        Disk([])


def test_a_layer_holds_the_ranges_of_its_own_clusters_only(pool):
    ranges = layer_ranges(pool / "two.qcow2")
    assert ranges and all(end - start == 64 * 1024 for start, end in ranges)
    assert sum(end - start for start, end in ranges) < 2 * MIB  # of a 64 MiB disk


def test_chains_sharing_no_layer_may_differ_anywhere(pool):
    assert changed_ranges([pool / "dirty.qcow2"], [pool / "one.qcow2"], 0) is None


def test_siblings_may_differ_where_either_layer_above_their_ancestor_holds_data(chain):
    both = changed_ranges(chain("two"), chain("three"), 1)
    two = Ranges(layer_ranges(chain("two")[-1]))
    three = Ranges(layer_ranges(chain("three")[-1]))
    assert both.total >= max(two.total, three.total)
    assert all(both.touches(start, end) for start, end in zip(two.starts, two.ends, strict=True))


def test_chains_share_the_layer_files_both_start_with(chain):
    assert common_layers(chain("four"), chain("three")) == 1
    assert common_layers(chain("four"), chain("two")) == 2


def test_ranges_merge_and_report_their_overlap():
    ranges = Ranges([(10, 20), (0, 5), (15, 30)])
    assert (ranges.starts, ranges.ends, ranges.total) == ([0, 10], [5, 30], 25)
    assert ranges.overlap(3, 12) == [(3, 5), (10, 12)]
    assert not ranges.touches(5, 10)
