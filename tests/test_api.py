"""The public surface: __all__, docstrings, and the docstring examples (run as doctests)."""

import doctest
import importlib
import pkgutil

import pytest

import vikl


def test_all_matches_exports():
    for name in vikl.__all__:
        assert hasattr(vikl, name), f"vikl.__all__ lists {name!r}, which vikl does not export"
    assert len(set(vikl.__all__)) == len(vikl.__all__), "duplicate names in vikl.__all__"
    public = {
        n
        for n, obj in vars(vikl).items()
        if not n.startswith("_") and not isinstance(obj, type(vikl)) and n not in {"annotations"}
    }
    missing = public - set(vikl.__all__)
    assert not missing, f"exported but not in __all__: {sorted(missing)}"


@pytest.mark.parametrize("name", vikl.__all__)
def test_every_public_name_has_a_docstring(name):
    obj = getattr(vikl, name)
    doc = getattr(obj, "__doc__", None)
    assert doc and doc.strip(), f"vikl.{name} has no docstring"


def _modules():
    yield vikl
    for info in pkgutil.walk_packages(vikl.__path__, "vikl."):
        yield importlib.import_module(info.name)


@pytest.mark.parametrize("module", list(_modules()), ids=lambda m: m.__name__)
def test_docstring_examples_run(module):
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(module, optionflags=flags, verbose=False)
    assert result.failed == 0, f"{result.failed} doctest(s) failed in {module.__name__}"
