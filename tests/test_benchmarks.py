"""The benchmark harness: timing helpers and a smoke run of the KL benchmark."""

import numpy as np
import pytest

from benchmarks import _common, kl_throughput, normal_kernel_accuracy


class _FakeClock:
    """``time.perf_counter`` for :func:`_common.timed`: each timed call lasts the next
    duration queued for the case that ran (the case records its label when called)."""

    def __init__(self, durations):
        self.durations = {label: iter(d) for label, d in durations.items()}
        self.now, self.started, self.label = 0.0, False, None

    def __call__(self):
        if not self.started:
            self.started = True
            return self.now
        self.started = False
        self.now += next(self.durations[self.label])
        return self.now


def test_timed_first_median_best_and_interleaving(monkeypatch):
    # first call, then 5 timed calls per case (warm-up calls are untimed)
    clock = _FakeClock({"a": [5.0, 3.0, 1.0, 4.0, 2.0, 9.0], "b": [7.0, 1.0, 1.0, 1.0, 1.0, 1.0]})
    monkeypatch.setattr(_common.time, "perf_counter", clock)
    calls = []

    def case(label):
        def fn():
            clock.label = label
            calls.append(label)
            return len(calls)
        return fn

    result = _common.timed({"a": case("a"), "b": case("b")}, repeats=5, warmup=3)
    assert result["a"][0] == 5.0 and result["b"][0] == 7.0  # the cold calls
    assert result["a"][1] == 3.0 and result["a"].best == 1.0
    assert result["b"][1] == 1.0
    assert len(calls) == 2 * (1 + 3 + 5)
    assert calls[:8] == ["a"] * 4 + ["b"] * 4  # cold and warm-up calls in the given order
    assert result["a"].cpu >= 0 and result["b"].cpu >= 0  # median process CPU time
    assert result["a"][2] == max(i + 1 for i, c in enumerate(calls) if c == "a")  # last result
    # After the cold and warm-up calls, the timed calls alternate: one per case per pass,
    # in a shuffled order (not "a" then "b" in every pass).
    passes = [calls[8 + 2 * i: 10 + 2 * i] for i in range(5)]
    assert all(sorted(p) == ["a", "b"] for p in passes)
    assert len({tuple(p) for p in passes}) == 2


def test_kl_throughput_quick_run(tmp_path):
    pytest.importorskip("numpyro")
    pytest.importorskip("torch")
    out = tmp_path / "kl.md"
    assert kl_throughput.main(["--quick", "--rounds", "1", "--out", str(out)]) == 0
    text = out.read_text()
    for section in ("K1(a)", "K1(b)", "K1(c)", "K2", "ACCURACY"):
        assert f"### {section}" in text
    assert "machine:" in text and "vikl (jit)" in text


def test_normal_kernel_accuracy_quick_run(capsys):
    worst = normal_kernel_accuracy.main(["--quick"])
    eps = float(np.finfo(np.float32).eps)
    assert worst["vikl square_ratio_term"] <= 16 * eps
    assert worst["textbook"] > 1e3 * eps  # the cancellation (and underflow) the kernel avoids
    assert "| vikl square_ratio_term | 3.7 |" in capsys.readouterr().out
