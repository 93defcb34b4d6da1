"""Forward-KL fits to vikl.Empirical data sharded on a forced 4-device CPU mesh (in a subprocess).

JAX fixes the device count when it starts, so the checks run in a fresh interpreter with
``XLA_FLAGS=--xla_force_host_platform_device_count=4``: see tests/_sharded_empirical.py
(one step's loss and gradient, full-data and minibatch fits equal to one device up to
round-off, the full-data fit equal to the maximum-likelihood Normal, save/load exact). In the
default run (CI needs it).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).with_name("_sharded_empirical.py")


def test_sharded_empirical_fit_matches_one_device(tmp_path):
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4").strip()
    env["JAX_PLATFORMS"] = "cpu"
    env.pop("JAX_ENABLE_X64", None)
    proc = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=600,
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["step_max_abs_diff"] < 1e-5
    assert out["full_fit_max_abs_diff_loc"] < 1e-4 and out["minibatch_fit_max_abs_diff_loc"] < 1e-4
    assert (tmp_path / "sharded_empirical.npz").exists()
