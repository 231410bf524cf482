"""Links the apps built on snapshots add to its pages.

snapshots imports no app above it, yet an app above may act on a snapshot (export it) or add
snapshots another way (import one). Such an app registers a link here from its
`AppConfig.ready`: `row` links take the snapshot's id and show on each ready snapshot's row (the
snapshots page and a VM's page), `page` links take no argument and show at the top of the
snapshots page.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Link:
    label: str
    url_name: str


_row: list[Link] = []
_page: list[Link] = []


def register(*, row: Link | None = None, page: Link | None = None) -> None:
    """Add a link to every snapshot's row, the snapshots page, or both (once each)."""
    if row is not None and row not in _row:
        _row.append(row)
    if page is not None and page not in _page:
        _page.append(page)


def context() -> dict:
    return {"snapshot_row_links": list(_row), "snapshot_page_links": list(_page)}
