"""The adversarial sweep script (benchmarks/adversarial_sweep.py) runs and writes its files."""

import json

import mpmath as mp
import numpy as np

from benchmarks import adversarial_sweep as sweep


def test_quick_sweep_on_two_pairs_writes_summary_and_json(tmp_path):
    out = tmp_path / "sweep.md"
    argv = ["--quick", "--pairs", "Normal-Normal,Bernoulli-Bernoulli", "--out", str(out), "--no-progress"]
    assert sweep.main(argv) == 0
    text = out.read_text()
    for section in ("## Counts", "## Near-equal pairs", "## Failures by pair", "kl_rule",
                    "near_equal_vs_mpmath", "grad_zero_at_p_eq_q", "entropy_vs_mpmath"):
        assert section in text
    data = json.loads(out.with_suffix(".json").read_text())
    counts = {(c["check"], c["dtype"]): c for c in data["counts"]}
    for dt in ("float32", "float64"):
        assert counts["kl_rule", dt]["checked"] > 100
        assert counts["grad_zero_at_p_eq_q", dt]["checked"] == 6  # 2 pairs x 3 scales
    assert {f["pair"] for f in data["failures"]} <= {"Normal-Normal", "Bernoulli-Bernoulli", "Normal",
                                                     "Bernoulli"}
    assert {w["pair"] for w in data["near_equal_worst"]} == {"Normal-Normal", "Bernoulli-Bernoulli"}


def test_reference_formulas_against_quadrature():
    # The sweep's mpmath references are textbook formulas: check two against quadrature.
    sp, sq = sweep.spec_pair("Gamma", "Gamma")
    p, q = {"concentration": np.float64(2.5), "rate": np.float64(1.5)}, {"concentration": np.float64(1.7),
                                                                          "rate": np.float64(0.8)}

    def logpdf(a, b, x):
        return a * mp.log(b) + (a - 1) * mp.log(x) - b * x - mp.loggamma(a)

    with mp.workdps(30):
        quad = mp.quad(lambda x: mp.exp(logpdf(2.5, 1.5, x)) * (logpdf(2.5, 1.5, x) - logpdf(1.7, 0.8, x)),
                       [0, 1, mp.inf])
        assert abs(sweep.mp_kl(sp, sq, p, q) - quad) < 1e-20
    sd = sweep.SPECS["Dirichlet"]
    # A two-component Dirichlet is a Beta: same entropy.
    with mp.workdps(40):
        beta = sweep._beta_entropy(mp.mpf(3e4), mp.mpf(1e4))
        assert abs(sweep.mp_entropy(sd, {"concentration": np.array([3e4, 1e4])}) - beta) < 1e-30
        assert abs(beta - mp.mpf("-4.71639066206208")) < 1e-13


def test_accuracy_rule():
    assert sweep.accurate(1.0 + 1e-5, 1.0, "float32", 1e-4, 0.0)
    assert not sweep.accurate(1.0 + 1e-3, 1.0, "float32", 1e-4, 0.0)
    assert sweep.accurate(float("inf"), 1e39, "float32", 1e-4, 0.0)  # beyond float32's range
    assert not sweep.accurate(float("inf"), 1e10, "float32", 1e-4, 0.0)
    assert not sweep.accurate(float("nan"), 1.0, "float32", 1e-4, 0.0)
    assert sweep._kl_rule(-1e-30) == "negative" and sweep._kl_rule(-0.0) is None
