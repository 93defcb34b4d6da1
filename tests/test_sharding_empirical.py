"""Forward-KL fits to vikl.Empirical data sharded on a forced 4-device CPU mesh (in a subprocess).

JAX fixes the device count when it starts, so the checks run in a fresh interpreter with
``XLA_FLAGS=--xla_force_host_platform_device_count=4``: see tests/_sharded_empirical.py
(one step's loss and gradient, full-data and minibatch fits equal to one device up to
round-off, the full-data fit equal to the maximum-likelihood Normal, save/load exact). In the
default run (CI needs it).
"""

from pathlib import Path

from tests._multidevice import run_on_four_cpu_devices

SCRIPT = Path(__file__).with_name("_sharded_empirical.py")


def test_sharded_empirical_fit_matches_one_device(tmp_path):
    out = run_on_four_cpu_devices(SCRIPT, tmp_path)
    assert out["step_max_abs_diff"] < 1e-5
    assert out["full_fit_max_abs_diff_loc"] < 1e-4 and out["minibatch_fit_max_abs_diff_loc"] < 1e-4
    assert (tmp_path / "sharded_empirical.npz").exists()
