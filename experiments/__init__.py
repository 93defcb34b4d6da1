"""Checkout alias of :mod:`vikl.experiments`, so that ``python -m experiments.<name>`` works
from a clone of the repository.

The scripts live in ``vikl/experiments`` and are installed with vikl as
``vikl.experiments`` (run them anywhere with ``python -m vikl.experiments.<name>``).
This folder is not installed: a package called ``experiments`` in site-packages would
shadow any user's own. Setting ``__path__`` makes ``experiments.<name>`` load the
same files under this name.
"""

import vikl.experiments as _experiments

__path__ = list(_experiments.__path__)
EXPERIMENTS = _experiments.EXPERIMENTS
__all__ = ["EXPERIMENTS"]
