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


@pytest.fixture(scope="session")
def wide_gemma(tmp_path_factory):
    """A tiny DiffusionGemma saved by transformers, calm enough to compare quantized copies with
    (tests/gemma_checkpoints.py reference, gain), every linear width a multiple of 256 (GGUF's Q4_K
    super-blocks) and every output a multiple of 16 (torch's CPU int4 kernel)."""
    pytest.importorskip("transformers")
    from tests.gemma_checkpoints import write_gemma_checkpoint

    shape = dict(hidden_size=256, intermediate_size=256, moe_intermediate_size=256, num_attention_heads=8,
                 head_dim=32, global_head_dim=64)
    return write_gemma_checkpoint(tmp_path_factory.mktemp("wide_gemma"), seed=1, gain=1.0, **shape)[0]
