"""`check_model_dir`: a wrong model path is one line naming the field, the path and what is missing.

Only the names of the files matter to the check (it reads nothing), so the directories here hold empty files.
"""

import json

import pytest

from alignjax.config_errors import ConfigError
from alignjax.models import check_model_dir


def _model_dir(directory, *names):
    directory.mkdir(exist_ok=True)
    for name in names:
        (directory / name).touch()
    return directory


def _error(path, **kwargs) -> str:
    with pytest.raises(ConfigError) as raised:
        check_model_dir(str(path), **kwargs)
    message = str(raised.value)
    assert "\n" not in message
    return message


def test_a_complete_directory_passes(tmp_path):
    check_model_dir(str(_model_dir(tmp_path / "m", "config.json", "model.safetensors", "tokenizer.json")))


def test_a_missing_local_directory_is_named_with_its_field(tmp_path):
    message = _error(tmp_path / "runs" / "sft", field="reference.path")
    assert message == f"reference.path={str(tmp_path / 'runs' / 'sft')!r}: no such directory"


def test_a_hub_id_says_how_to_download_it():
    message = _error("meta-llama/Llama-3.2-1B")
    assert message.startswith("model.path='meta-llama/Llama-3.2-1B': no such directory")
    assert "hf download meta-llama/Llama-3.2-1B --local-dir DIR" in message


def test_a_file_is_not_a_directory(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    assert "not a directory" in _error(tmp_path / "config.json")


def test_an_empty_directory_is_called_empty(tmp_path):
    assert "the directory is empty; expected a Hugging Face model directory" in _error(tmp_path)


def test_a_tokenizer_alone_lacks_config_and_weights(tmp_path):
    message = _error(_model_dir(tmp_path, "tokenizer.json", "tokenizer_config.json"), field="--model")
    assert message == (
        f"--model={str(tmp_path)!r}: no config.json, no weights (neither model.safetensors nor "
        "model.safetensors.index.json)"
    )


def test_pytorch_weights_are_named_as_unread(tmp_path):
    message = _error(_model_dir(tmp_path, "config.json", "pytorch_model.bin", "tokenizer.json"))
    assert "no weights" in message and "pytorch_model.bin is not read, only safetensors" in message


def test_tokenizer_files_are_required_only_when_the_tokenizer_comes_from_here(tmp_path):
    directory = _model_dir(tmp_path, "config.json", "model.safetensors")
    assert "no tokenizer files (none of tokenizer.json, tokenizer.model" in _error(directory)
    check_model_dir(str(directory), tokenizer=False)


def test_an_index_naming_absent_shards(tmp_path):
    directory = _model_dir(tmp_path, "config.json", "tokenizer.model")
    index = {"weight_map": {"embed": "model-00001-of-00002.safetensors"}}
    (directory / "model.safetensors.index.json").write_text(json.dumps(index))
    assert "names files that do not exist: ['model-00001-of-00002.safetensors']" in _error(directory)
