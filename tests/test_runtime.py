"""Jittor set-up inside the package: works offline from a clean environment, respects user values (read back
from Jittor's flags: the package sets its variables for Jittor's import only)."""
import os
import platform
import re
import subprocess
import sys

import pytest

from conftest import ROOT
from jittor_sbvsr import runtime

REPORT = ("import jittor_sbvsr; from jittor_sbvsr import runtime; jt = runtime.init(); print(jittor_sbvsr.report()); "
          "print('log_silent=' + str(jt.flags.log_silent))")


def run_clean(code, **extra_env):
    """Run python code with only PATH and HOME set (plus extra_env), from the repository root."""
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), **extra_env}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)


def test_clean_environment_import_reports_onednn_on():
    proc = run_clean(REPORT)
    assert proc.returncode == 0, proc.stderr
    report = proc.stdout.splitlines()[-2]
    assert report.startswith("jittor 1.3.11")
    assert "device cpu" in report and "oneDNN on" in report and "correlation " in report
    # the channels-last convolutions name their oneDNN: the wheel's oneDNN 3 where setup.py installs it
    expected = "wheel: oneDNN 3." if platform.machine() == "x86_64" else "oneDNN "
    assert re.search(r"\| inference convs NHWC \((wheel|jittor): oneDNN \d+\.\d+\.\d+\)$", report), report
    assert f"NHWC ({expected}" in report
    assert proc.stdout.splitlines()[-1] == "log_silent=1"


def test_user_values_win():
    proc = run_clean(REPORT, log_silent="0")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "log_silent=0"


def test_installed_numpy_is_below_2():
    import numpy

    assert int(numpy.__version__.split(".")[0]) < 2


@pytest.mark.parametrize("version", ["2.0.0", "2.4.6"])
def test_numpy_2_is_refused(version):
    with pytest.raises(ImportError, match="numpy<2"):
        runtime.check_numpy(version)
