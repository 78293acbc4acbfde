"""Sequence items the plan removes whole (SR content items), worker side.

A plan row whose path ends with an item index (``0040A730[1].0040A730[3]``,
action ``X``) removes that item (:mod:`gantry.sr._drop`).  :func:`drop_items`
deletes them, drops a sequence they leave empty, renumbers Referenced Content
Item Identifiers (0040,DB73) that counted the removed siblings, and returns
the other rows with their paths read in the new tree, so applying the rest of
the plan and verifying the output see one consistent tree.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Final

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from gantry.errors import ExportError

__all__ = ["drop_items", "has_item_rows", "renumber"]

Action = tuple[str, str, str, str | None]
_CONTENT: Final = 0x0040A730
_REFERENCED_ITEM: Final = 0x0040DB73


def has_item_rows(actions: list[Action]) -> bool:
    """Whether any row removes a whole sequence item."""
    return any(path.endswith("]") for path, *_ in actions)


def _split(path: str) -> list[tuple[str, int]]:
    """``A[1].B[2]`` -> ``[("A", 1), ("B", 2)]`` (the item steps of an item path)."""
    out = []
    for part in path.split("."):
        tag, _, rest = part.partition("[")
        out.append((tag, int(rest.rstrip("]"))))
    return out


def renumber(path: str, removed: dict[str, list[int]]) -> str | None:
    """``path`` of the original tree in the tree without the ``removed`` items.

    ``removed`` maps a sequence's original path to the indices removed from
    it; None when ``path`` lies inside a removed item.

    Examples
    --------
    >>> gone = {"0040A730": [1], "0040A730[3].0040A730": [0]}
    >>> renumber("0040A730[3].0040A730[2].0040A160", gone)
    '0040A730[2].0040A730[1].0040A160'
    >>> renumber("0040A730[1].0040A160", gone) is None
    True
    >>> renumber("00100010", gone)
    '00100010'
    """
    parts = path.split(".")
    original: list[str] = []
    new: list[str] = []
    for part in parts:
        tag, bracket, rest = part.partition("[")
        if not bracket:
            original.append(part)
            new.append(part)
            continue
        index = int(rest.rstrip("]"))
        gone = removed.get(".".join([*original, tag]), ())
        if index in gone:
            return None
        shift = sum(1 for i in gone if i < index)
        original.append(part)
        new.append(f"{tag}[{index - shift}]")
    return ".".join(new)


def drop_items(ds: Dataset, actions: list[Action]) -> list[Action]:
    """Remove the items ``actions`` names from ``ds``; the other actions, renumbered."""
    drops = [(path, _split(path)) for path, _vr, action, _nv in actions if path.endswith("]")]
    if not drops:
        return actions
    if any(action != "X" for path, _vr, action, _nv in actions if path.endswith("]")):
        raise ExportError("a plan row on a sequence item must remove it (action X)")
    removed: dict[str, list[int]] = defaultdict(list)
    for path, steps in drops:
        container = path.rsplit("[", 1)[0]
        removed[container].append(steps[-1][1])
    # deepest first, and last sibling first: no removal shifts a later one
    for path, steps in sorted(
        drops, key=lambda d: (-len(d[1]), d[0].rsplit("[", 1)[0], -d[1][-1][1])
    ):
        parent: Dataset = ds
        for tag, index in steps[:-1]:
            seq = parent.get(int(tag, 16))
            if seq is None or index >= len(seq.value):
                raise ExportError(f"content item {path} is not in the file any more")
            parent = seq.value[index]
        tag, index = steps[-1]
        seq = parent.get(int(tag, 16))
        if seq is None or index >= len(seq.value):
            raise ExportError(f"content item {path} is not in the file any more")
        items = list(seq.value)
        del items[index]
        if items:
            seq.value = Sequence(items)
        else:
            del parent[int(tag, 16)]  # Type 1C: present only while the item has children
    _renumber_references(ds, dict(removed))
    out = []
    for path, vr, action, new_value in actions:
        if path.endswith("]"):
            continue
        moved = renumber(path, removed)
        if moved is not None:
            out.append((moved, vr, action, new_value))
    return out


def _renumber_references(ds: Dataset, removed: dict[str, list[int]]) -> None:
    """Rewrite each Referenced Content Item Identifier for the new tree."""
    for item in _content_items(ds):
        elem = item.get(_REFERENCED_ITEM)
        if elem is None or elem.value is None:
            continue
        ordinals = [int(v) for v in (elem.value if isinstance(elem.value, list) else [elem.value])]
        if len(ordinals) < 2:
            continue
        path = ".".join(f"0040A730[{n - 1}]" for n in ordinals[1:])
        moved = renumber(path, removed)
        if moved is None:
            raise ExportError(
                "a by-reference content item points into a removed one; run `anonymize` again"
            )
        elem.value = [1, *(int(p.partition("[")[2].rstrip("]")) + 1 for p in moved.split("."))]


def _content_items(ds: Dataset) -> list[Dataset]:
    out = []
    stack = [ds]
    while stack:
        item = stack.pop()
        out.append(item)
        elem = item.get(_CONTENT)
        stack.extend(elem.value or [] if elem is not None else [])
    return out
