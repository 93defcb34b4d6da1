"""FitResult files: atomic saves that survive a failed write, and loads that refuse bad files.

Every damaged or foreign input must raise ``ValueError`` naming the path (never a raw
``EOFError``/``KeyError``/``AttributeError``/``RecursionError``), and values a
constructor would refuse (a negative scale) must not load.
"""

import errno
import json
import os
import re
import subprocess
import sys
import textwrap
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vikl
from vikl import FitResult

META = "__vikl_metadata__"


@pytest.fixture(scope="module")
def result():
    return vikl.fit(vikl.Normal(0.0, 1.0), vikl.Normal(3.0, 2.0), num_steps=20,
                    key=jax.random.PRNGKey(0), progress=False)


@pytest.fixture
def saved(result, tmp_path):
    path = tmp_path / "fit.npz"
    result.save(path)
    return path


def _leaves(r):
    return jax.tree_util.tree_leaves((r.distribution, r.params, r.losses, r.opt_state))


def _same(a, b):
    la, lb = _leaves(a), _leaves(b)
    return len(la) == len(lb) and all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(la, lb))


def _entries(path):
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def _write(path, entries, meta=None):
    entries = dict(entries)
    if meta is not None:
        entries[META] = np.array(meta if isinstance(meta, str) else json.dumps(meta))
    np.savez(path, **entries)
    return path


def _refused(path, what=""):
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*" + what) as info:
        FitResult.load(path)
    return str(info.value)


# ----------------------------------------------------------------------------- atomic save
def _broken_savez(exc):
    def savez(f, **arrays):
        f.write(b"PK\x03\x04 a partial archive")  # what a disk-full write leaves behind
        raise exc
    return savez


@pytest.mark.parametrize("exc", [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()])
def test_failed_write_keeps_the_previous_file(result, saved, monkeypatch, exc):
    before = sorted(os.listdir(saved.parent))
    monkeypatch.setattr(np, "savez", _broken_savez(exc))
    with pytest.raises(type(exc)):
        result.save(saved)
    monkeypatch.undo()
    assert sorted(os.listdir(saved.parent)) == before  # the temporary file is gone
    assert _same(FitResult.load(saved), result)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="RLIMIT_FSIZE is POSIX")
def test_file_size_limit_midway_keeps_the_previous_file(result, saved):
    # A real short write: the kernel refuses bytes past RLIMIT_FSIZE (EFBIG), as a full disk would.
    script = textwrap.dedent(f"""
        import resource, signal, sys
        from vikl import FitResult
        res = FitResult.load({str(saved)!r})
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (600, 600))
        try:
            res.save({str(saved)!r})
        except OSError as err:
            print("refused", err.errno)
            sys.exit(0)
        sys.exit("the save did not fail")
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "refused" in out.stdout
    assert os.listdir(saved.parent) == [saved.name]
    assert _same(FitResult.load(saved), result)


def test_save_keeps_permissions_and_follows_symlinks(result, saved, tmp_path):
    os.chmod(saved, 0o640)
    result.save(saved)
    assert os.stat(saved).st_mode & 0o777 == 0o640
    link = tmp_path / "link.npz"
    link.symlink_to(saved)
    result.save(link)
    assert link.is_symlink() and _same(FitResult.load(link), result)
    umask = os.umask(0o022)
    os.umask(umask)
    result.save(tmp_path / "new.npz")
    assert os.stat(tmp_path / "new.npz").st_mode & 0o777 == 0o666 & ~umask


# ----------------------------------------------------------------------------- damaged files
def test_truncated_files_raise_value_error(saved, tmp_path):
    data = saved.read_bytes()
    for n in sorted({0, 1, 10, 100, len(data) // 3, len(data) // 2, len(data) - 30, len(data) - 1}):
        cut = tmp_path / f"cut{n}.npz"
        cut.write_bytes(data[:n])
        _refused(cut)


def test_random_and_foreign_bytes_raise_value_error(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(20):
        junk = tmp_path / f"junk{i}.npz"
        junk.write_bytes(rng.bytes(int(rng.integers(1, 5000))))
        _refused(junk)
    np.save(tmp_path / "array.npy", np.zeros(3))
    _refused(tmp_path / "array.npy", "not an .npz")
    with zipfile.ZipFile(tmp_path / "zip.npz", "w") as z:
        z.writestr(META + ".npy", rng.bytes(300))
    _refused(tmp_path / "zip.npz")
    with pytest.raises(FileNotFoundError):
        FitResult.load(tmp_path / "missing.npz")


def test_flipped_bytes_never_escape_as_other_errors(saved, tmp_path):
    data = bytearray(saved.read_bytes())
    rng = np.random.default_rng(1)
    for i in range(40):
        bad = bytearray(data)
        for j in rng.integers(0, len(bad), 8):
            bad[j] ^= int(rng.integers(1, 256))
        path = tmp_path / f"flip{i}.npz"
        path.write_bytes(bytes(bad))
        try:
            FitResult.load(path)  # a flip inside stored float data can leave a valid file
        except ValueError as err:
            assert str(path) in str(err)


def test_missing_or_ill_typed_entries(saved, tmp_path):
    entries = _entries(saved)
    meta = json.loads(str(entries[META]))
    for key in sorted(meta):
        broken = {k: v for k, v in meta.items() if k != key}
        _refused(_write(tmp_path / f"no_{key}.npz", entries, broken))
    for key, value in [("num_steps", "20"), ("num_steps", 7), ("batch_size", -1), ("batch_size", True),
                       ("version", True), ("trace", {"a": 1}), ("opt_state", [1, 2]), ("key", None),
                       ("distribution", {"list": []}), ("diagnostics", {"dict": {}}),
                       ("optimizer", {"adam": -1.0}), ("objective", {"class": "Nope"}),
                       ("objective", {"class": "ReverseKL", "fields": {"bogus": 1}}), ("params", 3)]:
        message = _refused(_write(tmp_path / f"bad_{key}.npz", entries, {**meta, key: value}))
        assert "damaged or not a vikl FitResult" not in message  # each case has its own words
    for name in ("losses", meta["distribution"]["fields"]["loc"]["array"]):
        _refused(_write(tmp_path / f"lost_{name}.npz", {k: v for k, v in entries.items() if k != name}),
                 "missing")
    _refused(_write(tmp_path / "list.npz", entries, "[1, 2]"), "JSON object")
    _refused(_write(tmp_path / "notjson.npz", entries, "{not json"), "unreadable")
    _refused(_write(tmp_path / "numbers.npz", {**entries, META: np.arange(3)}), "one string")


@pytest.mark.parametrize("path, what", [
    ("vikl._distributions.normal:Nope", "not available"),
    ("builtins:int", "not a vikl Distribution"),
    ("vikl._distributions.mvn:MultivariateNormalDiag", "fields"),  # swapped class, other fields
    ("os:system", "not available"),
])
def test_wrong_class_paths(saved, tmp_path, path, what):
    entries = _entries(saved)
    meta = json.loads(str(entries[META]))
    meta["distribution"]["distribution"] = path
    _refused(_write(tmp_path / "cls.npz", entries, meta), what)


def test_wrong_optimizer_state_class(saved, tmp_path):
    entries = _entries(saved)
    text = str(entries[META])
    assert "optax" in text
    swapped = re.sub(r'"optax[^"]*:ScaleByAdamState"', '"vikl._estimators:Estimate"', text)
    assert swapped != text
    _refused(_write(tmp_path / "opt.npz", entries, swapped), "fields")


@pytest.mark.parametrize("field, value", [("scale", -0.5), ("scale", 0.0), ("scale", np.nan), ("loc", np.inf)])
def test_load_refuses_what_the_constructor_refuses(saved, tmp_path, field, value):
    entries = _entries(saved)
    meta = json.loads(str(entries[META]))
    name = meta["distribution"]["fields"][field]["array"]
    entries[name] = np.full_like(entries[name], value)
    path = _write(tmp_path / "value.npz", entries)
    kwargs = {"loc": 0.0, "scale": 1.0, field: value}
    try:
        vikl.Normal(**kwargs)
    except ValueError as err:  # the same check, the same words
        message = _refused(path, f"{field} must be")
        assert str(err).split("; got")[0].split(": ", 1)[1] in message
    else:  # the constructor accepts it (infinite loc before issue 19 item 10): so does load
        assert FitResult.load(path).distribution.loc.shape == ()
    assert field != "scale" or "must be" in _refused(path)


def test_int_parameter_and_shape_mismatch_are_refused(saved, tmp_path):
    entries = _entries(saved)
    meta = json.loads(str(entries[META]))
    name = meta["distribution"]["fields"]["scale"]["array"]
    _refused(_write(tmp_path / "int.npz", {**entries, name: np.ones((), np.int32)}), "floating")
    _refused(_write(tmp_path / "shape.npz", {**entries, name: np.ones(3, np.float32)}), "batch shapes")


def test_deep_nesting_raises_value_error(saved, tmp_path):
    entries = _entries(saved)
    meta = json.loads(str(entries[META]))
    for depth in (1_000, 100_000):
        nested = '{"list": [' * depth + "]}" * depth
        text = json.dumps({**meta, "params": "@@"}).replace('"@@"', nested)
        _refused(_write(tmp_path / f"deep{depth}.npz", entries, text))


def test_batched_and_float64_results_still_round_trip(tmp_path):
    res = vikl.fit(vikl.Normal(0.0, 1.0), vikl.Normal(3.0, 2.0), num_steps=10,
                   key=jax.random.split(jax.random.PRNGKey(1), 3), progress=False)
    res.save(tmp_path / "b.npz")
    assert _same(FitResult.load(tmp_path / "b.npz"), res)
    with jax.enable_x64(True):
        q0 = vikl.MultivariateNormalDiag(jnp.zeros(2, jnp.float64), jnp.ones(2, jnp.float64))
        res64 = vikl.fit(q0, vikl.MultivariateNormalDiag(jnp.ones(2, jnp.float64), jnp.ones(2, jnp.float64)),
                         num_steps=10, key=jax.random.PRNGKey(2), progress=False)
        res64.save(tmp_path / "f64.npz")
        back = FitResult.load(tmp_path / "f64.npz")
        assert back.distribution.loc.dtype == jnp.float64 and _same(back, res64)
    _refused(tmp_path / "f64.npz", "64-bit")  # without x64 it cannot load exactly


def test_load_from_an_open_file(result, saved):
    with open(saved, "rb") as f:
        assert _same(FitResult.load(f), result)


# ----------------------------------------------------------------------------- modules and layouts
def test_bijector_children_round_trip(tmp_path):
    """A q holding a learnable bijector (a vikl Module that is not a Distribution) saves and loads."""
    q0 = vikl.Transformed(vikl.Normal(0.0, 1.0), vikl.bijectors.Affine(0.5, 2.0))
    res = vikl.fit(q0, vikl.Normal(3.0, 2.0), num_steps=10, key=jax.random.PRNGKey(3), progress=False)
    res.save(tmp_path / "m.npz")
    back = FitResult.load(tmp_path / "m.npz")
    assert isinstance(back.distribution.bijector, vikl.bijectors.Affine) and _same(back, res)
    meta = json.loads(str(_entries(tmp_path / "m.npz")[META]))
    assert meta["version"] == 1  # no layout: still written in format 1
    meta["distribution"]["fields"]["bijector"]["module"] = "vikl._distributions.normal:Normal"
    _refused(_write(tmp_path / "bad.npz", _entries(tmp_path / "m.npz"), meta), "not a vikl Module")
    meta["distribution"]["fields"]["bijector"]["module"] = "vikl.bijectors._elementwise:Affine"
    name = meta["distribution"]["fields"]["bijector"]["fields"]["scale"]["array"]
    entries = {**_entries(tmp_path / "m.npz"), name: np.full((), -1.0, np.float32)}
    _refused(_write(tmp_path / "neg.npz", entries, meta), "scale must be")


def test_constrained_result_round_trips(tmp_path):
    res = vikl.fit(vikl.Normal(0.0, 1.0), vikl.Gamma(2.0, 1.0), num_steps=10,
                   key=jax.random.PRNGKey(4), progress=False)
    res.save(tmp_path / "c.npz")
    back = FitResult.load(tmp_path / "c.npz")
    assert _same(back, res) and type(back.layout) is type(res.layout)
    np.testing.assert_array_equal(back.draws(jax.random.PRNGKey(0), 20), res.draws(jax.random.PRNGKey(0), 20))
    meta = json.loads(str(_entries(tmp_path / "c.npz")[META]))
    assert meta["version"] == 2 and meta["constrained"] is True
    meta["constrained"] = "yes"
    _refused(_write(tmp_path / "bad.npz", _entries(tmp_path / "c.npz"), meta), "constrained")


# ----------------------------------------------------------------------------- format 4
def test_full_rank_factor_map_of_format_3_files_is_converted_on_load(tmp_path):
    # Format 4 trains scale_tril as diag(exp(diag u)) (I + tril(u, -1)); formats <= 3 stored
    # u = tril(L, -1) + diag(log diag L). An old file must load to the same q, with params in
    # the new map and no optimizer state (Adam's moments were in the old coordinates).
    target = vikl.MultivariateNormal(jnp.array([1.0, -2.0]),
                                     scale_tril=jnp.array([[3.0, 0.0], [1.5, 0.02]]))
    q0 = vikl.MultivariateNormal(jnp.zeros(2), scale_tril=jnp.eye(2))
    r = vikl.fit(q0, target, num_steps=30, key=jax.random.PRNGKey(1), progress=False)
    path = tmp_path / "fr.npz"
    r.save(path)
    entries = _entries(path)
    meta = json.loads(str(entries[META]))
    assert meta["version"] == 4
    new_u = np.asarray(r.params["scale_tril"])
    tril = np.asarray(r.distribution.scale_tril)
    np.testing.assert_allclose(np.tril(new_u, -1), np.tril(tril, -1) / np.diag(tril)[:, None], rtol=1e-6)
    # Rewrite it as the format-3 writer did.
    [(name, _)] = [(k, v) for k, v in entries.items() if np.array_equal(v, new_u)]
    entries[name] = np.tril(tril, -1) + np.diag(np.log(np.diag(tril)))
    meta["version"] = 3
    old = _write(tmp_path / "old.npz", entries, meta)
    back = FitResult.load(old)
    assert back.opt_state is None
    np.testing.assert_allclose(back.params["scale_tril"], new_u, rtol=2e-6, atol=1e-7)
    np.testing.assert_array_equal(back.distribution.scale_tril, r.distribution.scale_tril)
    with pytest.raises(ValueError, match="no optimizer state.*format 4"):
        vikl.fit(back, target, num_steps=5, key=jax.random.PRNGKey(2), progress=False)
    # The same file written today round-trips exactly and continues.
    again = FitResult.load(path)
    assert _same(again, r)
    vikl.fit(again, target, num_steps=5, key=jax.random.PRNGKey(2), progress=False)
