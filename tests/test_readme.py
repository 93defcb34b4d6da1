"""The README's API tour is executed as a doctest: its printed outputs are real."""

import doctest
import pathlib

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_examples_print_what_the_readme_says():
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testfile(str(README), module_relative=False, optionflags=flags, verbose=False)
    assert result.attempted > 10, "the README tour should have examples"
    assert result.failed == 0


def test_readme_shows_every_experiment_figure_with_its_command():
    from vikl.experiments.__main__ import README_FIGURES

    text = README.read_text()
    for name, pngs in README_FIGURES.items():
        assert f"python -m experiments.{name}" in text, name
        for png in pngs:
            assert (README.parent / "docs" / "figures" / png).is_file(), png
            assert f"docs/figures/{png}" in text, png
