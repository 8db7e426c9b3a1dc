import pytest
import torch

from lmkit.env import environment_report, pick_device


def test_pick_device_defaults_to_best_available(monkeypatch):
    monkeypatch.delenv("LMKIT_DEVICE", raising=False)
    expected = (
        "cuda"
        if torch.cuda.is_available()
        else ("mps" if torch.backends.mps.is_available() else "cpu")
    )
    assert pick_device().type == expected
    assert pick_device("cpu") == torch.device("cpu")


def test_pick_device_env_override(monkeypatch):
    monkeypatch.setenv("LMKIT_DEVICE", "cpu")
    assert pick_device() == torch.device("cpu")


def test_unknown_or_missing_device_is_a_clear_error(monkeypatch):
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        pick_device("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="not available.*available: "):
        pick_device("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_is_picked_first():
    assert pick_device().type == "cuda"


def test_environment_report_has_versions():
    report = environment_report()
    assert report["torch"] == torch.__version__
    assert {"python", "device", "numpy", "matplotlib"} <= set(report)


def test_device_name_is_readable():
    from lmkit.env import device_name

    assert isinstance(device_name("cpu"), str) and device_name("cpu")
