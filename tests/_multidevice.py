"""Runs a check script in a fresh interpreter on a forced 4-device CPU mesh.

JAX fixes the device count when it starts, so multi-device checks cannot run in the test
process: the script gets ``XLA_FLAGS=--xla_force_host_platform_device_count=4`` and prints
its results as one JSON line last.
"""

import json
import os
import subprocess
import sys
from pathlib import Path


def run_on_four_cpu_devices(script, out_dir):
    """Runs ``script out_dir``; returns the dict of its last stdout line (asserts exit code 0)."""
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4").strip()
    env["JAX_PLATFORMS"] = "cpu"
    env.pop("JAX_ENABLE_X64", None)
    proc = subprocess.run([sys.executable, str(script), str(out_dir)], env=env,
                          capture_output=True, text=True, timeout=600,
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])
