"""Timing and reporting helpers shared by the benchmark scripts."""

from __future__ import annotations

import os

# One BLAS thread: LAPACK threads collapse when another process holds a core.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from importlib import metadata  # noqa: E402

import numpy as np  # noqa: E402

REPEATS = 5
WARMUP = 3


def block(x):
    """Waits for JAX arrays (and pytrees of them) and for CUDA torch tensors; passes anything else through."""
    dev = getattr(x, "device", None)
    if getattr(dev, "type", None) == "cuda":  # a torch tensor on a GPU: wait for its stream
        import torch

        torch.cuda.synchronize(dev)
        return x
    try:
        import jax

        return jax.block_until_ready(x)
    except (ImportError, TypeError):
        return x


class Timing(tuple):
    """``(first, median, out)`` as :func:`timed` returns it, plus ``best``, the fastest
    timed call, and ``cpu``, the median process CPU time of the timed calls."""

    best: float
    cpu: float


def _time_call(fn):
    """(wall seconds, process CPU seconds, result) of one call."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = block(fn())
    return time.perf_counter() - t0, time.process_time() - c0, out


def timed(cases, repeats: int = REPEATS, warmup: int = WARMUP, seed: int = 0):
    """Times several implementations of one problem against each other.

    ``cases`` maps a row label to a zero-argument callable. Per case, in the
    order given: one cold call (timed: the ``first`` of the result; trace +
    compile for jitted code), then ``warmup`` untimed calls, so that no row pays
    alone for one-time costs left after compilation (first use of fresh
    buffers, of a thread pool). Then
    ``repeats`` passes, each calling every case once, in a new random order per
    pass, and timing each call. BENCH_PROBLEMS.md's protocol (median of 5 timed
    calls after one cold call) is the default; the interleaving is ours: on a
    shared 2-core machine a library's worker threads, or another process, slow
    whatever runs next for a while, and one call at a time in shuffled order
    spreads that over every row alike instead of over a whole block of one row's
    calls.

    Returns:
      label -> :class:`Timing` ``(first, median of the timed calls, last result)``
      with ``best`` the fastest timed call (on a shared machine the steadier
      number for millisecond kernels) and ``cpu`` their median CPU time.
    """
    order = np.random.default_rng(seed)
    labels = list(cases)
    first, outs = {}, {}
    for label in labels:
        first[label], _, outs[label] = _time_call(cases[label])
        for _ in range(warmup):
            outs[label] = block(cases[label]())
    wall = {label: [] for label in labels}
    cpu = {label: [] for label in labels}
    for _ in range(repeats):
        for i in order.permutation(len(labels)):
            label = labels[i]
            t, c, outs[label] = _time_call(cases[label])
            wall[label].append(t)
            cpu[label].append(c)
    result = {}
    for label in labels:
        row = Timing((first[label], statistics.median(wall[label]), outs[label]))
        row.best = min(wall[label])
        row.cpu = statistics.median(cpu[label])
        result[label] = row
    return result


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(pkg):
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return "-"


def machine_line() -> str:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    pkgs = ", ".join(f"{p} {_version(p)}" for p in ("jax", "numpyro", "blackjax", "torch", "numpy", "scipy"))
    try:
        import jax

        dev = jax.devices()[0]
        jax_dev = f"JAX device {dev.platform}: {getattr(dev, 'device_kind', '?')}"
    except Exception:  # pragma: no cover
        jax_dev = "JAX device unknown"
    return (
        f"machine: {cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
        f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}; {jax_dev}; {pkgs}"
    )


def markdown_table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(lines)


def fmt(x, digits=3) -> str:
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    if x == 0:
        return "0"
    return f"{x:.{digits}g}"
