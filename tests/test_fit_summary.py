"""``FitResult.summary()``, its notebook form, the new fields' persistence and ``result.init``.

The fits repeat test_convergence.py's (same shapes, objective and cached
Adam(1e-2)), so in one pytest run they reuse its compiled programs.
"""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vikl
from vikl import _init
from vikl._fit_result import FitResult, _sparkline

MEAN = np.array([1.0, -2.0, 0.5])
COV = np.array([[2.0, 0.6, 0.0], [0.6, 1.0, -0.3], [0.0, -0.3, 0.5]])
TARGET = vikl.MultivariateNormal(jnp.asarray(MEAN, jnp.float32),
                                 covariance_matrix=jnp.asarray(COV, jnp.float32))
META = "__vikl_metadata__"


@pytest.fixture(scope="module")
def converged():
    return vikl.fit(vikl.families.full_rank(3), TARGET, optimizer=1e-2, init=None,
                    key=jax.random.PRNGKey(0), progress=False)


@pytest.fixture(scope="module")
def fixed():
    return vikl.fit(vikl.families.full_rank(3), TARGET, optimizer=1e-2, num_steps=300,
                    key=jax.random.PRNGKey(3), progress=False)


def test_summary_of_a_converged_fit(converged):
    text = converged.summary()
    lines = text.splitlines()
    assert len(lines) <= 24 and max(map(len, lines[:3])) <= 120  # one screen
    assert lines[0].startswith(f"vikl.FitResult: MultivariateNormal, {converged.num_steps} steps")
    assert f"stopping:    converged at step {converged.converged_at}" in text
    assert converged.convergence in text
    assert f"average of the last {converged.averaged_over} iterates" in text
    assert f"k-hat:       {float(converged.khat):.3f} (good" in text
    assert f"of {converged.diagnostics.num_samples} importance draws" in text
    assert "warnings:    none" in text
    spark = lines[2].strip()
    assert len(spark) == 40 and set(spark) <= set("▁▂▃▄▅▆▇█") and spark[0] == "█"
    html = converged._repr_html_()
    assert html.startswith("<pre") and "k-hat" in html and "<" not in html[5:].split("</pre>")[0]


def test_summary_of_a_fixed_step_fit_and_of_warnings(fixed):
    text = fixed.summary()
    assert "fixed num_steps (no stopping rule); last iterate returned" in text
    assert "average of the last" not in text
    warned = dataclasses.replace(fixed, warnings=("k-hat is 0.93 > 0.7: ...", "the fitted scale ..."))
    text = warned.summary()
    assert "warnings:    2\n  - k-hat is 0.93 > 0.7: ...\n  - the fitted scale ..." in text


def test_sparkline_follows_the_loss():
    s = _sparkline(np.linspace(10.0, 0.0, 400), width=40)
    assert len(s) == 40 and s[-1] == "▁" and list(s) == sorted(s, reverse=True)
    assert _sparkline(np.ones(50)) == "▁" * 40
    assert _sparkline(np.array([np.nan, np.inf])) == ""
    spiky = np.r_[1e9, np.linspace(2.0, 1.0, 399)]  # one huge early loss does not flatten the rest
    assert len(set(_sparkline(spiky)[1:])) > 4


def test_new_fields_round_trip_and_old_files_still_load(tmp_path, converged, fixed):
    converged.save(tmp_path / "c.npz")
    back = FitResult.load(tmp_path / "c.npz")
    for name in ("converged", "converged_at", "convergence", "averaged_over", "init", "warnings",
                 "num_steps"):
        assert getattr(back, name) == getattr(converged, name), name
    for a, b in zip(jax.tree_util.tree_leaves(back.params), jax.tree_util.tree_leaves(converged.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert back.summary() == converged.summary()
    with np.load(tmp_path / "c.npz") as z:
        entries = {k: z[k] for k in z.files}
    meta = json.loads(str(entries[META]))
    assert meta["version"] == 4 and meta["converged"] is True  # 4: its q is full rank
    # a fixed-step result is written without the converge fields (format 4 only for its
    # full-rank factor; tests/test_constrained_fit.py checks format 1) and loads with the defaults
    fixed.save(tmp_path / "f.npz")
    with np.load(tmp_path / "f.npz") as z:
        fixed_meta = json.loads(str(z[META]))
        assert fixed_meta["version"] == 4 and "converged" not in fixed_meta
    old = FitResult.load(tmp_path / "f.npz")
    assert (old.converged, old.converged_at, old.convergence, old.averaged_over, old.init,
            old.warnings) == (None, None, None, 1, None, ())
    # damaged new fields are refused, naming the entry
    for field, bad in (("converged", "yes"), ("averaged_over", 0), ("warnings", [1])):
        m = dict(meta, **{field: bad})
        np.savez(tmp_path / "bad.npz", **{**entries, META: np.array(json.dumps(m))})
        with pytest.raises(ValueError, match=field):
            FitResult.load(tmp_path / "bad.npz")


def test_result_names_the_initializer_that_changed_q0(monkeypatch):
    calls = []

    def fake_for_fit(q0, target, *, init, optimizer, key, converge):
        calls.append((init, converge))
        return vikl.MultivariateNormal(jnp.asarray(MEAN, jnp.float32), scale_tril=jnp.eye(3)), optimizer

    monkeypatch.setattr(_init, "for_fit", fake_for_fit)
    q0 = vikl.families.full_rank(3)
    res = vikl.fit(q0, TARGET, optimizer=1e-2, num_steps=300, key=jax.random.PRNGKey(3),
                   progress=False, init="pathfinder")
    assert res.init == "pathfinder" and calls == [("pathfinder", False)]
    assert "init:        pathfinder" in res.summary().splitlines()[1]
    plain = vikl.fit(q0, TARGET, optimizer=1e-2, num_steps=300, key=jax.random.PRNGKey(3),
                     progress=False)  # init="auto" does nothing with num_steps given
    assert plain.init is None and len(calls) == 1
    assert plain.losses[0] != res.losses[0]  # the first ran from the initializer's q0
