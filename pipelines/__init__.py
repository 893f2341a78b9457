"""Built-in pipelines, by name: what `orch run classification` resolves to.

`BUILTIN` maps a pipeline name to its `Pipeline`; nothing is built at import time.
"""

from orchestrator import Pipeline

from .classification import classification
from .regression import regression

BUILTIN: dict[str, Pipeline] = {p.name: p for p in (classification, regression)}

__all__ = ["BUILTIN", "classification", "regression"]
