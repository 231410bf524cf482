"""The rules of the snapshot tree (snapshots.tree): built in memory from snapshots by `parent`,
with the VM's current disk as "You are here" and runs of scheduled snapshots collapsed."""

import uuid
from datetime import UTC, datetime, timedelta

from snapshots.models import Snapshot, SnapshotKind
from snapshots.tree import snapshot_tree, tree_lines

START = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)
VM_ID = uuid.uuid4()


def snap(name, parent=None, *, kind=SnapshotKind.MANUAL, day=0, vm_id=VM_ID):
    """An unsaved snapshot: the tree needs no database."""
    return Snapshot(
        id=uuid.uuid4(),
        name=name,
        parent_id=parent.pk if parent else None,
        kind=kind,
        source_vm_id=vm_id,
        source_vm_name="web",
        created_at=START + timedelta(days=day),
    )


def names(nodes):
    return [node.snapshot.name if node.snapshot else "HERE" for node in nodes]


def chain(first, count, *, kind=SnapshotKind.SCHEDULED, day=1):
    snapshots, parent = [], first
    for i in range(count):
        parent = snap(f"s{i}", parent, kind=kind, day=day + i)
        snapshots.append(parent)
    return snapshots


def test_snapshots_hang_under_the_one_they_were_taken_on():
    a = snap("a")
    b = snap("b", a, day=1)
    [root] = snapshot_tree([b, a])
    assert root.snapshot is a
    assert names(root.children) == ["b"]


def test_a_restore_starts_a_branch():
    a = snap("a")
    b = snap("b", a, day=1)
    c = snap("c", a, day=2)  # taken after restoring a
    [root] = snapshot_tree([a, b, c])
    assert names(root.children) == ["b", "c"]
    lines = tree_lines([root])
    assert [(line.node.snapshot.name, line.depth, line.fork) for line in lines] == [
        ("a", 0, False),
        ("b", 1, True),
        ("c", 1, True),
    ]


def test_you_are_here_follows_the_current_snapshot():
    a = snap("a")
    b = snap("b", a, day=1)
    [root] = snapshot_tree([a, b], a.pk, here=True)
    assert names(root.children) == ["b", "HERE"]
    assert root.children[1].here


def test_you_are_here_is_a_root_when_the_disk_builds_on_no_snapshot():
    assert names(snapshot_tree([snap("a")], None, here=True)) == ["a", "HERE"]


def test_without_here_there_is_no_you_are_here_node():
    a = snap("a")
    [root] = snapshot_tree([a], a.pk)
    assert root.children == []


def test_a_run_of_scheduled_snapshots_is_one_line():
    a = snap("a")
    run = chain(a, 14)
    lines = tree_lines(snapshot_tree([a, *run], run[-1].pk, here=True))
    assert len(lines) == 3
    assert lines[0].node.snapshot is a
    assert [node.snapshot for node in lines[1].run] == run
    assert (lines[1].first, lines[1].last) == (run[0], run[-1])
    assert lines[2].node.here


def test_two_scheduled_snapshots_in_a_row_stay_apart():
    a = snap("a")
    run = chain(a, 2)
    lines = tree_lines(snapshot_tree([a, *run]))
    assert [line.run for line in lines] == [[], [], []]


def test_a_scheduled_snapshot_a_branch_starts_from_ends_the_run():
    a = snap("a")
    run = chain(a, 8)
    branch = snap("after-restore", run[4], day=20)
    lines = tree_lines(snapshot_tree([a, *run, branch]))
    drawn = [
        (line.node.snapshot.name if line.node else len(line.run), line.depth) for line in lines
    ]
    assert drawn == [("a", 0), (4, 0), ("s4", 0), (3, 1), ("after-restore", 1)]


def test_a_manual_snapshot_breaks_a_run():
    a = snap("a")
    first = chain(a, 3)
    manual = snap("manual", first[-1], day=10)
    second = chain(manual, 3, day=11)
    lines = tree_lines(snapshot_tree([a, *first, manual, *second]))
    assert [len(line.run) for line in lines] == [0, 3, 0, 3]


def test_a_snapshot_whose_parent_is_not_drawn_is_a_root():
    other_vms = snap("elsewhere", vm_id=uuid.uuid4())
    seeded = snap("seeded", other_vms, day=1)  # the first snapshot of a VM started from it
    assert names(snapshot_tree([seeded])) == ["seeded"]


def test_an_imported_snapshot_is_a_root():
    a = snap("a")
    imported = snap("imported", a, kind=SnapshotKind.IMPORTED, day=1)
    assert names(snapshot_tree([a, imported])) == ["a", "imported"]


def test_a_deleted_vms_snapshots_are_a_tree_of_their_own():
    a = snap("a")
    seeded = snap("of-deleted", a, day=1, vm_id=None)
    after = snap("after", seeded, day=2, vm_id=None)
    roots = snapshot_tree([a, seeded, after])
    assert names(roots) == ["a", "of-deleted"]
    assert names(roots[1].children) == ["after"]


def test_a_long_chain_is_drawn_without_recursion():
    a = snap("a")
    snapshots = [a, *chain(a, 5000, kind=SnapshotKind.MANUAL)]
    assert len(tree_lines(snapshot_tree(snapshots))) == 5001
