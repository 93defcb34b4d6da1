"""The benchmark harness: timing helpers and a smoke run of the KL benchmark."""

import itertools

import pytest

from benchmarks import _common, kl_throughput


def _clock(monkeypatch, durations):
    """Makes ``time.perf_counter`` return ticks so that successive timed calls last ``durations``."""
    ticks = itertools.accumulate(itertools.chain.from_iterable((0.0, d) for d in durations))
    monkeypatch.setattr(_common.time, "perf_counter", lambda: next(ticks))


def test_timed_median_best_and_warmup(monkeypatch):
    calls = []

    def fn():
        calls.append(1)
        return len(calls)

    # first call 5 s; the warm-up calls are not timed; then 5 timed calls.
    _clock(monkeypatch, [5.0, 3.0, 1.0, 4.0, 2.0, 9.0])
    result = _common.timed(fn, repeats=5, warmup=3)
    first, median, out = result
    assert first == 5.0
    assert median == 3.0
    assert result.best == 1.0
    assert len(calls) == 1 + 3 + 5
    assert out == 9  # the last call's result


def _timing(first, median, best, out=None):
    t = _common.Timing((first, median, out))
    t.best = best
    return t


def test_rounds_merge_median_of_medians_and_min_of_mins():
    rounds = iter(
        [
            ({"a": _timing(1.0, 0.5, 0.4, "r1"), "b": _timing(2.0, 0.9, 0.8)}, "ref1"),
            ({"a": _timing(0.1, 0.7, 0.2, "r2"), "b": _timing(0.2, 0.1, 0.05)}, "ref2"),
            ({"a": _timing(0.1, 0.6, 0.3, "r3"), "b": _timing(0.2, 0.3, 0.3)}, "ref3"),
        ]
    )
    rows, ref = kl_throughput._rounds(lambda n: next(rounds), 10, 3)
    assert ref == "ref1"
    assert rows["a"][:3] == (1.0, 0.6, "r1")  # first call and result of round 1
    assert rows["a"].best == 0.2
    assert rows["b"][1] == 0.3 and rows["b"].best == 0.05


@pytest.mark.slow
def test_kl_throughput_quick_run(tmp_path):
    pytest.importorskip("numpyro")
    pytest.importorskip("torch")
    out = tmp_path / "kl.md"
    assert kl_throughput.main(["--quick", "--rounds", "1", "--out", str(out)]) == 0
    text = out.read_text()
    for section in ("K1(a)", "K1(b)", "K1(c)", "K2", "ACCURACY"):
        assert f"### {section}" in text
    assert "machine:" in text and "vikl (jit)" in text
