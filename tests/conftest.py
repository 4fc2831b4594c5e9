import pytest

from tests.checkpoints import write_dream_checkpoint


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A tiny random Dream-layout checkpoint folder with its own byte-level BPE tokenizer."""
    return write_dream_checkpoint(tmp_path_factory.mktemp("tiny_dream"))
