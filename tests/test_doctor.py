"""python -m jittor_sbvsr.doctor: one line per check, a fix for every problem, exit status 1 on FAIL."""
import jittor_utils
import numpy

from jittor_sbvsr import doctor


def test_report_on_this_machine(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no weights here: a note, not a failure
    code = doctor.main()
    out = capsys.readouterr().out
    names = [line.split()[1] for line in out.splitlines() if line.split() and line.split()[0] in ("ok", "note", "FAIL")]
    for name in ("python", "numpy", "jittor", "oneDNN", "CUDA", "correlation", "cache", "weights", "imageio-ffmpeg"):
        assert name in names, out
    assert "fix: for upstream's results put self_blind_vsr_gaussian.pt there" in out
    assert "infer uses the shipped demo weights" in out and "sbvsr_demo_x4.pkl" in out
    assert code == (1 if "FAIL" in out else 0)


def test_weights_without_any_file(tmp_path, monkeypatch):
    from jittor_sbvsr import infer

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(infer, "DEMO_WEIGHTS", str(tmp_path / "none.pkl"))
    check = doctor.check_weights()
    assert check.status == "note" and "--demo runs an untrained network" in check.detail


def test_non_ascii_cache_path_is_a_problem(monkeypatch, tmp_path):
    path = tmp_path / "缓存"
    path.mkdir()
    monkeypatch.setattr(jittor_utils, "cache_path", str(path))
    check = doctor.check_cache()
    assert check.status == "FAIL" and "non-ASCII" in check.detail and "JITTOR_HOME" in check.fix


def test_numpy_2_is_a_problem(monkeypatch):
    monkeypatch.setattr(numpy, "__version__", "2.1.0")
    check = next(c for c in doctor.check_packages() if c.name == "numpy")
    assert check.status == "FAIL" and check.fix == "pip install 'numpy<2'"
