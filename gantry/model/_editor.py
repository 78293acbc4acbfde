"""What nodes and collections ask of the model: record edits, read the edit log.

A leaf of ``gantry.model``: :mod:`gantry.model._collection` and
:mod:`gantry.model._nodes` type their model as :class:`Editor`, and
:class:`gantry.model._model.Model` (which builds them) satisfies it, so the
tree never imports the model that owns it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from gantry.model._edits import EditLog

__all__ = ["Editor"]


class Editor(Protocol):
    """The part of :class:`~gantry.model._model.Model` a node or collection uses.

    Each method records one edit for the file ids and returns how many rows it
    recorded (see :meth:`gantry.model._model.Model.set_element`).
    """

    log: EditLog

    def set_element(
        self, fids: Iterable[int], key: Any, value: Any, *, vr: str | None = None
    ) -> int: ...

    def delete_element(self, fids: Iterable[int], key: Any) -> int: ...

    def revert_element(self, fids: Iterable[int], key: Any) -> int: ...

    def exclude(self, fids: Iterable[int], reason: str) -> int: ...

    def restore(self, fids: Iterable[int]) -> int: ...
