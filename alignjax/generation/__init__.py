"""One client for every teacher and judge: chat requests in, completions out, from a model in this process or
an OpenAI-compatible endpoint, with a persistent cache in front so that a killed run resumes without asking twice.

    generator = make_generator(config.teacher, workdir, field="teacher")
    answers = generator.complete([generator.request([{"role": "user", "content": q}]) for q in questions])
    print(generator.summary())
"""

from alignjax.generation.backend import Backend, GenerationError
from alignjax.generation.cache import Cache, cache_key
from alignjax.generation.chat import ChatRequest, Completion
from alignjax.generation.config import check_generation_config, generation_config, make_generator
from alignjax.generation.generator import Generator
from alignjax.generation.local import LocalBackend
from alignjax.generation.openai_backend import OpenAIBackend

__all__ = [
    "Backend",
    "Cache",
    "ChatRequest",
    "Completion",
    "GenerationError",
    "Generator",
    "LocalBackend",
    "OpenAIBackend",
    "cache_key",
    "check_generation_config",
    "generation_config",
    "make_generator",
]
