"""The snapshots of a VM (or of a user) as a tree by `parent`, built in memory from rows loaded
once: no query here, whatever the number of snapshots.

A snapshot's children are the snapshots taken on top of it; a restore or a new VM started from a
snapshot starts a branch. The VM's current disk is a node of its own ("You are here"), a child of
the snapshot it builds on. Everything is iterative, so a chain of thousands of snapshots does not
meet Python's recursion limit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from snapshots.models import Snapshot, SnapshotKind

# Consecutive scheduled snapshots in one branch collapse into one node from this many on.
RUN_MIN = 3


@dataclass
class Node:
    """A snapshot of the tree, or the VM's current disk (`snapshot` None)."""

    snapshot: Snapshot | None
    children: list[Node] = field(default_factory=list)

    @property
    def here(self) -> bool:
        return self.snapshot is None


@dataclass
class Line:
    """One line of the drawn tree: a node, or a run of scheduled snapshots collapsed into one,
    `depth` forks from its root."""

    depth: int
    node: Node | None = None
    run: list[Node] = field(default_factory=list)
    fork: bool = False  # the first line of a branch that starts at a fork

    @property
    def first(self) -> Snapshot:
        return self.run[0].snapshot

    @property
    def last(self) -> Snapshot:
        return self.run[-1].snapshot


def _by_time(node: Node):
    return (node.snapshot.created_at, str(node.snapshot.pk)) if node.snapshot else (None, "")


def _roots_itself(snapshot: Snapshot, parent: Snapshot | None) -> bool:
    """Whether a snapshot starts a tree of its own: its parent is not among those drawn, it was
    imported, or its VM is gone while its parent's is not (a deleted VM's snapshots stay together
    rather than hang off another VM's)."""
    if parent is None or snapshot.kind == SnapshotKind.IMPORTED:
        return True
    return snapshot.source_vm_id is None and parent.source_vm_id is not None


def snapshot_tree(snapshots: Iterable[Snapshot], current_id=None, *, here=False) -> list[Node]:
    """The trees of `snapshots`, oldest root first, children oldest first. With `here`, the VM's
    current disk is a node after the snapshot `current_id` (a root when it builds on none of
    them)."""
    nodes = {snapshot.pk: Node(snapshot) for snapshot in snapshots}
    roots: list[Node] = []
    for node in nodes.values():
        snapshot = node.snapshot
        parent = nodes.get(snapshot.parent_id)
        if _roots_itself(snapshot, parent.snapshot if parent else None):
            roots.append(node)
        else:
            parent.children.append(node)
    for node in nodes.values():
        node.children.sort(key=_by_time)
    roots.sort(key=_by_time)
    if here:
        current = nodes.get(current_id)
        (current.children if current else roots).append(Node(None))
    return roots


def _runnable(node: Node) -> bool:
    return (
        node.snapshot is not None
        and node.snapshot.kind == SnapshotKind.SCHEDULED
        and len(node.children) <= 1
    )


def tree_lines(roots: list[Node], *, run_min: int = RUN_MIN) -> list[Line]:
    """The tree drawn line by line, depth first: a chain stays at one depth, and the branches of
    a fork go one deeper, each after the one before it. `run_min` or more scheduled snapshots in
    a row of one chain are one line."""
    lines: list[Line] = []
    stack = [(root, 0, False) for root in reversed(roots)]
    while stack:
        node, depth, fork = stack.pop()
        run = [node]
        while _runnable(run[-1]) and run[-1].children and _runnable(run[-1].children[0]):
            run.append(run[-1].children[0])
        if _runnable(node) and len(run) >= run_min:
            lines.append(Line(depth, run=run, fork=fork))
            node = run[-1]
        else:
            lines.append(Line(depth, node=node, fork=fork))
        children = node.children
        if len(children) == 1:
            stack.append((children[0], depth, False))
        else:
            stack.extend((child, depth + 1, True) for child in reversed(children))
    return lines


def tree_order(roots: list[Node]) -> list[Node]:
    """Every node of the trees, each before its children (depth first, oldest first)."""
    order: list[Node] = []
    stack = list(reversed(roots))
    while stack:
        node = stack.pop()
        order.append(node)
        stack.extend(reversed(node.children))
    return order
