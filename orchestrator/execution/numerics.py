"""The host's choice of numerical kernels, handed to the containers a step runs in.

The CPU kernels OpenBLAS, MKL, BLIS and NumPy pick decide the last bits of a float
result, so a model fitted with one kernel is other bytes than one fitted with another.
Each library detects the CPU unless a variable names a kernel (`OPENBLAS_CORETYPE=Haswell`
on a machine that would pick SkylakeX). A container gets the host's setting of these
variables, so a step gives in a container the bytes it gives on the host: the cache key,
which does not see the executor, then stands for one output, and `orch reproduce` of a
version made in containers, which rebuilds on the host, finds it identical. A step's own
`env` hint still wins.

A container limited to `cpus` also gets BLAS and OpenMP pools of that many threads
(`thread_env`), not one per core of the machine fighting over its quota.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

KERNEL_VARS = (
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
    "MKL_CBWR",
    "MKL_ENABLE_INSTRUCTIONS",
    "MKL_DEBUG_CPU_TYPE",
    "BLIS_ARCH_TYPE",
    "NPY_DISABLE_CPU_FEATURES",
    "NPY_ENABLE_CPU_FEATURES",
)
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def kernel_env(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The kernel-choosing variables set in `environ` (the host's), by name."""
    return {k: environ[k] for k in KERNEL_VARS if k in environ}


def thread_env(cpus: float | None) -> dict[str, str]:
    """For a container limited to `cpus`: BLAS and OpenMP pools of as many threads (at
    least one); a step's own `env` hint still wins."""
    if cpus is None:
        return {}
    return dict.fromkeys(_THREAD_VARS, str(max(1, int(cpus))))
