"""Which oneDNN the channels-last convolutions run on: the wheel's oneDNN 3 and Jittor's oneDNN 2 side by side in
one process give the same fp32 values, the choice is explicit (a bad one stops a command with one line), and a
failed build says why and leaves nothing."""
import glob
import os

import numpy as np
import pytest

from conftest import jt
from cuda_ops import conv_onednn, onednn_library
from infer_support import pan_clip, run_cli, tiny, write_frames  # noqa: F401 (tiny is a fixture)


def test_choice_rules(monkeypatch):
    monkeypatch.setenv(onednn_library.ENV_VAR, "mkl")
    with pytest.raises(ValueError, match="SBVSR_ONEDNN='mkl' is not a oneDNN choice"):
        onednn_library.selected()
    present = onednn_library.installed()
    monkeypatch.setattr(onednn_library, "installed", lambda: {"jittor": present.get("jittor")})
    monkeypatch.setenv(onednn_library.ENV_VAR, "wheel")
    with pytest.raises(RuntimeError, match="SBVSR_ONEDNN=wheel, but that oneDNN is not installed.*pip install"):
        onednn_library.selected()
    monkeypatch.setenv(onednn_library.ENV_VAR, "auto")
    assert onednn_library.selected() is present.get("jittor")


@pytest.mark.skipif(not onednn_library.wheel_expected(),
                    reason="setup.py installs the oneDNN 3 wheel on x86-64 Linux only")
def test_the_wheel_is_installed_and_preferred(monkeypatch):
    monkeypatch.delenv(onednn_library.ENV_VAR, raising=False)
    assert set(onednn_library.installed()) == {"wheel", "jittor"}
    assert onednn_library.selected().name == "wheel"
    assert onednn_library.describe("fp32").startswith("wheel: oneDNN 3.")


def test_both_oneDNNs_in_one_process_agree(monkeypatch):
    """Jittor has oneDNN 2 loaded: the library built against oneDNN 3 must still reach oneDNN 3 (RTLD_DEEPBIND);
    bound to the wrong one it would crash or compute garbage."""
    present = onednn_library.installed()
    if len(present) < 2:
        pytest.skip("needs both oneDNNs")
    rng = np.random.default_rng(1)
    x = jt.array(rng.standard_normal((1, 13, 17, 32)).astype(np.float32))
    weight = jt.array(rng.standard_normal((24, 32, 3, 3)).astype(np.float32) * 0.1)
    got = {}
    for name in present:
        monkeypatch.setenv(onednn_library.ENV_VAR, name)
        assert onednn_library.describe("fp32").startswith(f"{name}: oneDNN {3 if name == 'wheel' else 2}.")
        with jt.no_grad():
            got[name] = {p: conv_onednn.conv2d(x, weight, None, 1, 1, 1, p, relu_slope=0.1).numpy()
                         for p in conv_onednn.PRECISIONS}
    scale = np.abs(got["jittor"]["fp32"]).max()
    assert np.abs(got["wheel"]["fp32"] - got["jittor"]["fp32"]).max() <= 1e-5 * scale
    assert np.abs(got["wheel"]["bf16"] - got["jittor"]["fp32"]).max() <= 2e-2 * scale


def test_failed_build_names_the_cause_and_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError, match=r"building conv_onednn.cc against broken's oneDNN .* failed: .*dnnl.hpp"):
        onednn_library._built.__wrapped__("broken", str(tmp_path), str(tmp_path / "libdnnl.so"))
    import jittor_utils

    assert not glob.glob(os.path.join(jittor_utils.cache_path, "sbvsr_onednn", "conv_broken_*"))


def test_a_bad_choice_stops_a_command_with_one_line(tmp_path, monkeypatch, tiny, capsys):  # noqa: F811
    monkeypatch.setenv(onednn_library.ENV_VAR, "newest")
    _, lr = pan_clip(5)
    code, out, err = run_cli([write_frames(tmp_path / "lr", lr), "--output", tmp_path, "--quiet"], tiny, capsys)
    assert code == 2 and not list(tmp_path.glob("infer_*"))
    assert err.strip().splitlines() == ["infer: error: environment: SBVSR_ONEDNN='newest' is not a oneDNN choice; "
                                        "use one of auto, wheel, jittor"]
