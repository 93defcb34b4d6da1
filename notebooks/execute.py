"""Executes the notebooks top to bottom and stores their outputs in place.

    python notebooks/execute.py                 # all notebooks
    python notebooks/execute.py 02_forward_vs_reverse_kl.ipynb

Uses nbclient with the ``python3`` kernel (``ipykernel`` from the current
environment; jupyter_client runs it with this interpreter). Outputs are stored
so that the notebooks read on GitHub; the test suite runs the same function
without writing (tests/test_notebooks.py).
"""

from __future__ import annotations

import os
import pathlib
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent


def notebooks() -> list[pathlib.Path]:
    """The notebooks in this folder, in order."""
    return sorted(HERE.glob("[0-9]*.ipynb"))


def execute(path, *, timeout: int = 300, write: bool = False):
    """Runs every cell of ``path`` in a fresh kernel; returns the executed notebook.

    Raises ``nbclient.exceptions.CellExecutionError`` naming the failing cell.
    """
    import nbformat
    from nbclient import NotebookClient

    path = pathlib.Path(path)
    book = nbformat.read(path, as_version=4)
    client = NotebookClient(book, timeout=timeout, kernel_name="python3", record_timing=False,
                            resources={"metadata": {"path": str(path.parent)}})
    # The kernel runs in notebooks/; let it import this checkout's vikl even when
    # the package is not installed.
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE.parent), old) if p)
    try:
        client.execute()
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old
    if write:
        nbformat.write(book, path)
    return book


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    paths = [HERE / a if not pathlib.Path(a).exists() else pathlib.Path(a) for a in args] or notebooks()
    for path in paths:
        t0 = time.perf_counter()
        execute(path, write=True)
        print(f"executed {path.name} in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
