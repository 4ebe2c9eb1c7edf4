"""The teacher/judge config section: every bad value fails before any request, in one line naming its field."""

import pytest

from alignjax.config_errors import ConfigError
from alignjax.generation import OpenAIBackend, generation_config, make_generator
from alignjax.generation.config import CACHE_FILE
from alignjax.generation.local import model_fingerprint

from conftest import save_toy_chat_model


def _error(section, workdir="/tmp/unused", field="generation") -> str:
    with pytest.raises(ConfigError) as caught:
        make_generator(section, workdir, field=field)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_an_unknown_backend_names_the_field_and_the_valid_ones():
    assert _error(generation_config(backend="opneai", model="m")) == (
        "generation.backend: 'opneai' is not one of local, openai"
    )


def test_an_unset_api_key_variable_is_named_with_the_section(monkeypatch):
    monkeypatch.delenv("ALIGNJAX_TEST_JUDGE_KEY", raising=False)
    section = generation_config(backend="openai", model="gpt-judge", api_key_env="ALIGNJAX_TEST_JUDGE_KEY")
    message = _error(section, field="judge")
    assert message.startswith("judge.api_key_env: the environment variable ALIGNJAX_TEST_JUDGE_KEY is not set")
    assert "judge.api_key_env=''" in message  # how to say that the endpoint needs no key


def test_the_key_is_read_from_the_named_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("ALIGNJAX_TEST_JUDGE_KEY", "sk-test")
    section = generation_config(backend="openai", model="gpt-judge", api_key_env="ALIGNJAX_TEST_JUDGE_KEY",
                                base_url="http://127.0.0.1:9/v1")
    with make_generator(section, str(tmp_path)) as generator:  # builds the client; sends nothing
        assert isinstance(generator.backend, OpenAIBackend)
        assert generator.backend.client.api_key == "sk-test"
        assert generator.cache.path == str(tmp_path / CACHE_FILE)


def test_an_endpoint_without_a_key_needs_no_variable(monkeypatch, tmp_path):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    section = generation_config(backend="openai", model="toy", api_key_env="", base_url="http://127.0.0.1:9/v1",
                                cache="none")
    with make_generator(section, None) as generator:
        assert generator.cache is None


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (dict(model=""), "generation.model: empty; give a model directory"),
        (dict(model="/no/such/dir"), "generation.model='/no/such/dir': "),
        (dict(backend="openai", model="m", api_key_env="", max_concurrency=0),
         "generation.max_concurrency: must be >= 1, got 0"),
        (dict(backend="openai", model="m", api_key_env="", timeout_s=0.0), "generation.timeout_s: must be > 0"),
        (dict(backend="openai", model="m", api_key_env="", temperature=-1.0),
         "generation.temperature: must be >= 0 (0: greedy), got -1.0"),
        (dict(backend="openai", model="m", api_key_env="", top_p=0.0), "generation.top_p: must be in (0, 1]"),
    ],
)
def test_bad_values_name_their_field(overrides, expected):
    assert _error(generation_config(**overrides)).startswith(expected)


def test_the_default_cache_needs_a_workdir():
    section = generation_config(backend="openai", model="m", api_key_env="")
    assert _error(section, workdir=None).startswith("generation.cache: '' keeps the cache in the run's workdir")


def test_a_mistyped_field_is_an_error():
    with pytest.raises(ConfigError, match="generation has no field 'max_token'"):
        generation_config(max_token=5)


def test_a_local_model_directory_builds_a_local_generator(tmp_path):
    save_toy_chat_model(tmp_path / "toy", max_positions=64)
    section = generation_config(model=str(tmp_path / "toy"), max_tokens=7, temperature=0.5, seed=3)
    with make_generator(section, str(tmp_path)) as generator:
        assert generator.name == f"local:{tmp_path / 'toy'}@{model_fingerprint(str(tmp_path / 'toy'))}"
        request = generator.request([{"role": "user", "content": "hi"}], seed=4)
        assert (request.max_tokens, request.temperature, request.seed) == (7, 0.5, 4)


def test_a_model_saved_again_into_its_directory_is_a_new_model_to_the_cache(tmp_path):
    save_toy_chat_model(tmp_path / "toy", max_positions=64)
    before = model_fingerprint(str(tmp_path / "toy"))
    assert model_fingerprint(str(tmp_path / "toy")) == before
    save_toy_chat_model(tmp_path / "toy", max_positions=64, seed=1)  # a retrained stage's export, same path
    assert model_fingerprint(str(tmp_path / "toy")) != before
