"""Type hints for the built-in steps that name library classes without importing them.

A step's hints are read whenever its pipeline is built, cached runs included, so a hint
that is the class itself would import pandas or scikit-learn before anything is known to
run. Each name here is a `LazyHint` at run time (and the real class for type checkers):
it prints as the class does in graphs and errors (`pandas.DataFrame`,
`sklearn.Pipeline`), and the graph's edge check, which cannot compare it with a class
without importing it, accepts any output for it and lets it feed any input. The
libraries are imported inside the functions that use them; the code fingerprint counts
their versions from those imports.
"""

from __future__ import annotations

import typing
from typing import TYPE_CHECKING, Any


class LazyHint:
    """A hint naming class `name` of module `module`, shown as `shown`; never imports it."""

    __slots__ = ("module", "name", "shown")

    def __init__(self, module: str, name: str, shown: str) -> None:
        self.module = module
        self.name = name
        self.shown = shown

    def __repr__(self) -> str:
        return self.shown

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LazyHint) and (other.module, other.name) == (
            self.module,
            self.name,
        )

    def __hash__(self) -> int:
        return hash((LazyHint, self.module, self.name))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Hints must be callable for `typing`; calling one says where the class lives."""
        raise TypeError(f"{self.shown} is a type hint here; import {self.name} from {self.module}")

    def __or__(self, other: Any) -> Any:
        return typing.Union[self, other]  # noqa: UP007  (a LazyHint is no class for `|`)

    def __ror__(self, other: Any) -> Any:
        return typing.Union[other, self]  # noqa: UP007


if TYPE_CHECKING:
    from numpy import ndarray
    from pandas import DataFrame, Series
    from sklearn.base import BaseEstimator
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline as SklearnPipeline
else:
    ndarray = LazyHint("numpy", "ndarray", "numpy.ndarray")
    DataFrame = LazyHint("pandas", "DataFrame", "pandas.DataFrame")
    Series = LazyHint("pandas", "Series", "pandas.Series")
    BaseEstimator = LazyHint("sklearn.base", "BaseEstimator", "sklearn.BaseEstimator")
    ColumnTransformer = LazyHint(
        "sklearn.compose", "ColumnTransformer", "sklearn.ColumnTransformer"
    )
    SklearnPipeline = LazyHint("sklearn.pipeline", "Pipeline", "sklearn.Pipeline")

__all__ = [
    "BaseEstimator",
    "ColumnTransformer",
    "DataFrame",
    "LazyHint",
    "Series",
    "SklearnPipeline",
    "ndarray",
]
