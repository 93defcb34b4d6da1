"""The README's API tour is executed as a doctest: its printed outputs are real."""

import doctest
import pathlib

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_examples_print_what_the_readme_says():
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testfile(str(README), module_relative=False, optionflags=flags, verbose=False)
    assert result.attempted > 10, "the README tour should have examples"
    assert result.failed == 0
