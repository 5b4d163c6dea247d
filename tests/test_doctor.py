"""python -m jittor_sbvsr.doctor: one line per check, a fix for every problem, exit status 1 on FAIL."""
import json
import os
import subprocess
import sys

import numpy

from conftest import ROOT
from jittor_sbvsr import doctor


def test_report_on_this_machine(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no weights here: a note, not a failure
    code = doctor.main()
    out = capsys.readouterr().out
    names = [line.split()[1] for line in out.splitlines() if line.split() and line.split()[0] in ("ok", "note", "FAIL")]
    for name in ("python", "numpy", "jittor", "oneDNN", "CUDA", "correlation", "cache", "weights", "imageio-ffmpeg",
                 "bf16"):
        assert name in names, out
    assert names.index("cache") < names.index("jittor")  # checked before the import compiles into it
    assert "fix: for upstream's results put self_blind_vsr_gaussian.pt there" in out
    assert "infer uses the shipped demo weights" in out and "sbvsr_demo_x4.pkl" in out
    assert code == (1 if "FAIL" in out else 0)


def test_bf16_advice_follows_the_measured_speed(monkeypatch):
    """doctor measures bf16 against fp32 instead of trusting the CPU's flags, and advises fp32 when bf16 is
    not faster."""
    from cuda_ops import conv_onednn
    from jittor_sbvsr import runtime

    jt = runtime.init()
    if not conv_onednn.available() or conv_onednn.bf16_support() == "none":
        return
    speed = doctor.bf16_speed(jt, conv_onednn, repeats=2)
    assert 0.05 < speed < 20
    for measured, status in ((0.6, "note"), (1.9, "ok")):
        monkeypatch.setattr(doctor, "bf16_speed", lambda *a, **k: measured)
        check = doctor.check_bf16(jt)
        assert check.status == status and f"{measured:.2f}x the speed of fp32" in check.detail, check
        assert ("keep the default --precision fp32" in (check.fix or "")) == (status == "note")


def test_weights_without_any_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(doctor, "DEMO_WEIGHTS", str(tmp_path / "none.pkl"))
    check = doctor.check_weights()
    assert check.status == "note" and "--demo runs an untrained network" in check.detail


def home_with(tmp_path, name, config=None):
    """A home folder ``tmp_path/name`` whose ~/.cache/jittor/config.json holds ``config`` (text), if given."""
    home = tmp_path / name
    (home / ".cache" / "jittor").mkdir(parents=True)
    if config is not None:
        (home / ".cache" / "jittor" / "config.json").write_text(config, encoding="utf-8")
    return home


def cache_cases(tmp_path):
    """name -> (home folder, platform, status, words of the detail, words of the fix)."""
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    recorded = json.dumps({"JITTOR_HOME": str(blocker)})
    persistence = ("config.json as the default for every later run", "to undo, delete the JITTOR_HOME entry")
    return {
        "non-ASCII home on Linux works": (home_with(tmp_path, "用户"), "linux", "ok", ("用户",), ()),
        "non-ASCII home on Windows": (home_with(tmp_path, "用户2"), "win32", "FAIL", ("non-ASCII",),
                                      ("export JITTOR_HOME=",) + persistence),
        "double quote in the path": (home_with(tmp_path, 'a"b'), "linux", "FAIL", ("double quote",),
                                     ("export JITTOR_HOME=",) + persistence),
        "cache cannot be created": (home_with(tmp_path, "h1", recorded), "linux", "FAIL",
                                    (f"{blocker}/.cache/jittor cannot be created or written",),
                                    ("export JITTOR_HOME=/a/writable/folder",) + persistence),
        "settings folder cannot be created": (blocker, "linux", "FAIL", ("cannot be created", "fails to import"),
                                              ("HOME",)),
        "settings file is not JSON": (home_with(tmp_path, "h2", "{oops"), "linux", "FAIL", ("not valid JSON",),
                                      ("delete",)),
    }


def test_cache_checks(tmp_path, monkeypatch):
    monkeypatch.delenv("JITTOR_HOME", raising=False)  # read by the check only; never set by these tests
    for name, (home, platform, status, detail, fix) in cache_cases(tmp_path).items():
        monkeypatch.setenv("HOME", str(home))
        monkeypatch.setattr(doctor.sys, "platform", platform)
        check = doctor.check_cache()
        assert check.status == status, (name, check)
        assert all(w in check.detail for w in detail) and all(w in check.fix for w in fix), (name, check)


def test_cache_is_checked_before_jittor_is_imported(tmp_path):
    code = "import sys; from jittor_sbvsr import doctor; print(doctor.check_cache().status, 'jittor' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True,
                          text=True, timeout=120)
    assert proc.stdout.split() == ["ok", "False"], proc.stderr


def test_import_failure_from_the_cache_points_at_the_cache(monkeypatch):
    def read_only(*_args):
        raise PermissionError(13, "Permission denied", "/home/u/.cache/jittor/jt1.3.11")

    monkeypatch.setattr(doctor.runtime, "jittor", read_only)
    check = next(doctor.check_jittor(cache_ok=False))
    assert check.status == "FAIL" and "Permission denied" in check.detail
    assert check.fix == "fix the cache problem reported above first"
    assert "pip install" in next(doctor.check_jittor(cache_ok=True)).fix


def test_numpy_2_is_a_problem(monkeypatch):
    monkeypatch.setattr(numpy, "__version__", "2.1.0")
    check = next(c for c in doctor.check_packages() if c.name == "numpy")
    assert check.status == "FAIL" and check.fix == "pip install 'numpy<2'"


def test_a_bad_setting_is_one_failed_check(monkeypatch):
    monkeypatch.setenv("SBVSR_ONEDNN", "newest")
    checks = list(doctor.check_jittor())
    assert [(c.status, c.name) for c in checks] == [("FAIL", "settings")]
    assert "SBVSR_ONEDNN='newest' is not a oneDNN choice" in checks[0].detail


def test_an_unusable_oneDNN_choice_is_one_failed_check_and_no_crash(monkeypatch):
    from cuda_ops import onednn_library

    present = onednn_library.installed()
    monkeypatch.setattr(onednn_library, "installed", lambda: {k: v for k, v in present.items() if k != "wheel"})
    monkeypatch.setenv("SBVSR_ONEDNN", "wheel")
    checks = {c.name: c for c in doctor.check_jittor()}
    assert checks["conv-oneDNN"].status == "FAIL" and "not installed" in checks["conv-oneDNN"].detail
    assert "bf16" not in checks
