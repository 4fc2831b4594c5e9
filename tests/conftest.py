import os

import pytest

from engine.registry import check_device
from tests.checkpoints import write_dream_checkpoint


def pytest_addoption(parser):
    parser.addoption(
        "--device",
        default=os.environ.get("UNMASK_TEST_DEVICE", "cpu"),
        help="device for the engine tests: cpu (default), cuda[:n] or mps; also UNMASK_TEST_DEVICE",
    )


def pytest_configure(config):
    try:
        check_device(config.getoption("--device"))
    except ValueError as e:
        raise pytest.UsageError(f"--device: {e}") from None


@pytest.fixture(scope="session")
def device(pytestconfig) -> str:
    return pytestconfig.getoption("--device")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A tiny random Dream-layout checkpoint folder with its own byte-level BPE tokenizer."""
    return write_dream_checkpoint(tmp_path_factory.mktemp("tiny_dream"))


@pytest.fixture(scope="session")
def gemma_checkpoint(tmp_path_factory):
    """(folder, transformers reference): a tiny random DiffusionGemma saved by transformers + tokenizer."""
    from tests.gemma_checkpoints import write_gemma_checkpoint  # transformers loads only when a test asks

    return write_gemma_checkpoint(tmp_path_factory.mktemp("tiny_gemma"))
