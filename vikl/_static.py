"""The hashable non-array part of a pytree, so compiled programs are cached by structure.

``jax.jit`` programs of :func:`vikl.fit` and of the initializers take a target's (or a
``q``'s) arrays as arguments and its non-array part as a static argument: a second call
with the same structure and shapes, but other numbers, reuses the compiled program.
"""

import jax
import numpy as np


def _is_array(x) -> bool:
    return isinstance(x, (jax.Array, np.ndarray, np.generic))


class _Static:
    """The non-array part of a pytree, hashable (by value where possible, else identity)."""

    def __init__(self, tree):
        leaves, treedef = jax.tree_util.tree_flatten(tree)
        self.treedef = treedef
        self.mask = tuple(_is_array(leaf) for leaf in leaves)
        self.leaves = tuple(None if m else leaf for leaf, m in zip(leaves, self.mask))
        key = (treedef, self.leaves, self.mask)
        try:
            self._hash = hash(key)
            self._key = key
        except TypeError:
            self._key = ("id", id(tree))
            self._ref = tree
            self._hash = hash(self._key)

    def __hash__(self):
        return self._hash

    def __eq__(self, other):
        if not isinstance(other, _Static):
            return False
        try:
            return bool(self._key == other._key)
        except Exception:  # e.g. arrays in pytree aux data
            return False

    def rebuild(self, dynamic):
        it = iter(dynamic)
        leaves = [next(it) if m else leaf for leaf, m in zip(self.leaves, self.mask)]
        return jax.tree_util.tree_unflatten(self.treedef, leaves)


def _split_static(tree):
    leaves = jax.tree_util.tree_leaves(tree)
    return _Static(tree), [leaf for leaf in leaves if _is_array(leaf)]
