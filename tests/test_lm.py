"""engine/lm.py: devices the machine lacks are refused with one line before anything loads."""

import pytest
import torch

import engine
from engine.registry import check_device


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has MPS")
def test_mps_without_apple_gpu_is_one_line():
    with pytest.raises(ValueError, match=r"^device 'mps' requested but Apple MPS is not available"):
        engine.load_model(device="mps")


@pytest.mark.parametrize("device", ["tpu", "gpu", "cuda0x"])
def test_unknown_device_names_the_choices(device):
    choices = f"^device '{device}' is not one of cpu, cuda, cuda:N, mps$"
    with pytest.raises(engine.DeviceUnavailable, match=choices):
        check_device(device)


def test_cpu_is_always_there():
    check_device("cpu")
    assert engine.load_model(device="cpu").device.type == "cpu"
