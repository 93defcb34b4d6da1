"""Data-parallel vikl.Posterior fits on a forced 4-device CPU mesh (in a subprocess).

JAX fixes the device count when it starts, so the checks run in a fresh interpreter with
``XLA_FLAGS=--xla_force_host_platform_device_count=4``: see tests/_sharded_fit.py. They are
in the default run (CI needs them).
"""

from pathlib import Path

from tests._multidevice import run_on_four_cpu_devices

SCRIPT = Path(__file__).with_name("_sharded_fit.py")


def test_sharded_fit_matches_one_device(tmp_path):
    out = run_on_four_cpu_devices(SCRIPT, tmp_path)
    assert out["fit_max_abs_diff_loc"] < 1e-4 and out["full_data_max_abs_diff"] < 1e-3
    assert (tmp_path / "sharded.npz").exists()
