"""The progress bar class: a notebook widget where ipywidgets is installed, else text.

``tqdm.auto`` warns ("IProgress not found") in every Jupyter kernel without
ipywidgets, even when no bar is ever shown; this picks the text bar there instead.
"""

from __future__ import annotations

import importlib.util
from typing import Any

__all__ = ["tqdm"]


def _pick() -> Any:
    if importlib.util.find_spec("ipywidgets") is None:
        from tqdm import tqdm as text_bar

        return text_bar
    from tqdm.auto import tqdm as auto_bar

    return auto_bar


tqdm: Any = _pick()
