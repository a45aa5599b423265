"""The flow example runs end to end (short) and reports sensible numbers."""
import os
import re
import subprocess
import sys

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")


def test_flow_double_well_example(tmp_path):
    out = tmp_path / "flow.png"
    result = subprocess.run([sys.executable, os.path.join(EXAMPLES, "flow_double_well.py"), "--steps", "150",
                             "--out", str(out)], capture_output=True, text=True, check=True)
    assert out.exists() and out.stat().st_size > 0
    kl = float(re.search(r"reverse KL\(q \|\| p\) = ([-0-9.e]+)", result.stdout).group(1))
    ess = float(re.search(r"Kish ESS of the importance weights: ([0-9.]+)", result.stdout).group(1))
    # A flow that has learnt the dominant well: small KL (>= 0 up to Monte Carlo error), high ESS.
    assert -0.01 < kl < 0.1
    assert ess > 0.8


def test_bg_double_well_example(tmp_path):
    out = tmp_path / "bg.png"
    result = subprocess.run([sys.executable, os.path.join(EXAMPLES, "bg_double_well.py"), "--out", str(out)],
                            capture_output=True, text=True, check=True)
    assert out.exists() and out.stat().st_size > 0

    def probability(label):
        return float(re.search(label + r"\s+([0-9.]+)", result.stdout).group(1))

    exact = probability(r"P\(x1 < 0\): exact")
    assert probability("Langevin alone") > 0.999          # never leaves the major well
    assert abs(probability(r"Langevin \+ flow moves") - exact) < 0.006
    assert abs(probability("importance sampling") - exact) < 0.003
