"""The config section that says which model teaches or judges, and the `Generator` it builds.

An experiment adds one section per role (`config.teacher = generation_config(backend="openai", model=...)`,
`config.judge = ...`) and its stage calls `make_generator(config.teacher, workdir, field="teacher")`. Every bad
value is a one-line `ConfigError` naming the field, raised before any request is sent.
"""

from __future__ import annotations

import os

from ml_collections import ConfigDict

from alignjax.config_errors import ConfigError, require
from alignjax.data.templates import TEMPLATES
from alignjax.generation.cache import Cache
from alignjax.generation.chat import ChatRequest
from alignjax.generation.generator import Generator
from alignjax.generation.local import LocalBackend
from alignjax.generation.openai_backend import OpenAIBackend
from alignjax.generation.retry import Backoff
from alignjax.models import check_model_dir

BACKENDS = ("local", "openai")
DTYPES = ("float32", "bfloat16")
CACHE_FILE = "generation_cache.sqlite"
NO_CACHE = "none"
SAMPLING_FIELDS = ("max_tokens", "temperature", "top_p", "top_k", "min_p", "n", "seed")


def generation_config(**overrides) -> ConfigDict:
    """A teacher's or judge's section with its defaults; `overrides` (existing fields only) replace them."""
    section = ConfigDict(
        dict(
            backend="local",  # local: an alignjax model in this process | openai: an OpenAI-compatible endpoint
            model="",  # local: a model directory; openai: the model's name at the endpoint
            base_url="",  # openai: e.g. http://localhost:8000/v1; "": the client's default (OpenAI, $OPENAI_BASE_URL)
            api_key_env="OPENAI_API_KEY",  # openai: the environment variable holding the key; "": no key needed
            max_concurrency=8,  # openai: requests in flight at once
            timeout_s=120.0,  # openai: the limit on each attempt
            max_retries=8,  # openai: retries of a request on 429, 5xx, timeouts and lost connections
            backoff_s=1.0,  # openai: the first retry's jitter window, doubling with each retry
            max_backoff_s=60.0,  # openai: the cap on the window and on a server's Retry-After
            max_slots=32,  # local: answers decoding at once
            dtype="float32",  # local: compute dtype, float32 | bfloat16
            template="chat",  # local: chat (the tokenizer's chat template) | plain (a base model: the prompt's text)
            cache="",  # "": <workdir>/generation_cache.sqlite; a path; "none": ask every time
            # the sampling of requests made with `Generator.request` (a request may set its own)
            max_tokens=512,
            temperature=0.0,
            top_p=1.0,
            top_k=0,  # 0: off; only sent when set (hosted APIs reject it)
            min_p=0.0,  # 0: off; only sent when set
            n=1,
            seed=0,
        )
    )
    for name, value in overrides.items():
        if name not in section:
            raise ConfigError(f"generation has no field {name!r}; its fields: {', '.join(section)}")
        section[name] = value
    return section


def check_generation_config(section: ConfigDict, field: str = "generation", check_model: bool = True) -> None:
    """Raises ConfigError, naming `field`.<name>, for a value that cannot work; reads the environment for the
    API key and, when `check_model`, the disk for a local model (a run's preflight checks it instead when an
    earlier stage writes that model)."""
    require(
        section.backend in BACKENDS,
        f"{field}.backend: {section.backend!r} is not one of {', '.join(BACKENDS)}",
    )
    what = "a model directory" if section.backend == "local" else "the model's name at the endpoint"
    require(bool(section.model), f"{field}.model: empty; give {what}")
    if section.backend == "local":
        if check_model:
            check_model_dir(section.model, field=f"{field}.model")
    elif section.api_key_env:
        require(
            bool(os.environ.get(section.api_key_env)),
            f"{field}.api_key_env: the environment variable {section.api_key_env} is not set; export it, or set "
            f"{field}.api_key_env='' for an endpoint that needs no key",
        )
    for name, ok, valid in (
        ("max_concurrency", section.max_concurrency >= 1, ">= 1"),
        ("timeout_s", section.timeout_s > 0, "> 0"),
        ("max_retries", section.max_retries >= 0, ">= 0"),
        ("backoff_s", section.backoff_s >= 0, ">= 0"),
        ("max_backoff_s", section.max_backoff_s >= section.backoff_s, f">= backoff_s ({section.backoff_s})"),
        ("max_slots", section.max_slots >= 1, ">= 1"),
        ("dtype", section.dtype in DTYPES, f"one of {', '.join(DTYPES)}"),
        ("template", section.template in TEMPLATES, f"one of {', '.join(TEMPLATES)}"),
    ):
        require(ok, f"{field}.{name}: must be {valid}, got {section[name]!r}")
    try:
        _defaults(section)
    except ValueError as e:
        raise ConfigError(f"{field}.{e}") from e


def cache_path(section: ConfigDict, workdir: str | None, field: str = "generation") -> str | None:
    """The cache file `section.cache` names (None: no cache)."""
    if section.cache == NO_CACHE:
        return None
    if section.cache:
        return section.cache
    require(
        bool(workdir),
        f"{field}.cache: '' keeps the cache in the run's workdir, but there is none; give a path or '{NO_CACHE}'",
    )
    return os.path.join(workdir, CACHE_FILE)


def make_generator(section: ConfigDict, workdir: str | None, field: str = "generation") -> Generator:
    """The generator a section describes: its backend, with the cache it names in front.

    Args:
      section: a `generation_config` section.
      workdir: the run's directory, where the cache lives by default.
      field: the section's name in the experiment's config (`teacher`, `judge`), named in errors.

    Raises:
      ConfigError: a bad value, naming the field.
    """
    check_generation_config(section, field)
    path = cache_path(section, workdir, field)
    if section.backend == "local":
        backend = LocalBackend.load(
            section.model, max_slots=section.max_slots, dtype=section.dtype, template=section.template
        )
    else:
        backend = OpenAIBackend(
            section.model,
            api_key=os.environ[section.api_key_env] if section.api_key_env else "unused",
            base_url=section.base_url or None,
            max_concurrency=section.max_concurrency,
            timeout_s=section.timeout_s,
            max_retries=section.max_retries,
            backoff=Backoff(section.backoff_s, section.max_backoff_s),
        )
    return Generator(backend, None if path is None else Cache(path), _defaults(section))


def _defaults(section: ConfigDict) -> dict:
    """The sampling fields, checked by building a request with them (a ValueError names the field)."""
    defaults = {name: section[name] for name in SAMPLING_FIELDS}
    ChatRequest(messages=[{"role": "user", "content": "check"}], **defaults)
    return defaults
