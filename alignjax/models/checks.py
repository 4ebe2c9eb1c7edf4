"""Is this a model directory? One line that says what is missing, before anything heavy reads it.

Left to themselves, `transformers` and the loaders report a wrong path from deep inside: a mistyped directory
comes back as a malformed hub id, an empty one as a request to install sentencepiece, one without weights as a
missing chat template. `check_model_dir` looks first, with nothing but `os.stat`, and raises a `ConfigError`
naming the field, the path and what is not there. The loaders (`from_pretrained` and the reward model's) read
local directories only, so a hub id is never a model path here: the message for one says how to download it.
"""

from __future__ import annotations

import os
import re

from alignjax.config_errors import ConfigError
from alignjax.models.pretrained import CONFIG_FILE
from alignjax.models.safetensors_io import INDEX_FILE, SINGLE_FILE, CheckpointError, checkpoint_files

# Any one of these lets `transformers.AutoTokenizer` build a vocabulary: a fast tokenizer, a SentencePiece
# model, BPE or WordPiece vocabularies, or a config that may name where they are.
_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer.model",
    "tokenizer_config.json",
    "spiece.model",
    "sentencepiece.bpe.model",
    "vocab.json",
    "vocab.txt",
)
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
_EXPECTED = f"a Hugging Face model directory ({CONFIG_FILE}, {SINGLE_FILE} or {INDEX_FILE}, tokenizer files)"


def check_model_dir(path: str, field: str = "model.path", tokenizer: bool = True) -> None:
    """Raises ConfigError unless `path` is a local directory with a config, safetensors weights and, when
    `tokenizer`, tokenizer files.

    Args:
      path: the directory as the user gave it.
      field: the config field or flag it came from (`model.path`, `--model`), named in the message.
      tokenizer: whether the tokenizer is read from this directory too.

    Raises:
      ConfigError: one line, e.g. "model.path='runs/sft/export': no such directory".
    """
    where = f"{field}={path!r}"
    if not os.path.exists(path):
        raise ConfigError(f"{where}: {_why_absent(path)}")
    if not os.path.isdir(path):
        raise ConfigError(f"{where}: not a directory; expected {_EXPECTED}")
    names = set(os.listdir(path))
    if not names:
        raise ConfigError(f"{where}: the directory is empty; expected {_EXPECTED}")
    missing = []
    if CONFIG_FILE not in names:
        missing.append(f"no {CONFIG_FILE}")
    if SINGLE_FILE not in names and INDEX_FILE not in names:
        others = sorted(n for n in names if n.endswith((".bin", ".pt", ".pth", ".ckpt", ".gguf")))
        hint = f"; {others[0]} is not read, only safetensors" if others else ""
        missing.append(f"no weights (neither {SINGLE_FILE} nor {INDEX_FILE}{hint})")
    if tokenizer and not names.intersection(_TOKENIZER_FILES):
        missing.append(f"no tokenizer files (none of {', '.join(_TOKENIZER_FILES)})")
    if missing:
        raise ConfigError(f"{where}: {', '.join(missing)}")
    try:
        checkpoint_files(path)  # an index naming shards that are not there
    except CheckpointError as e:
        raise ConfigError(f"{where}: {e}") from e


def _why_absent(path: str) -> str:
    """What to tell a user whose path does not exist: a hub id needs downloading, a `~` needs expanding."""
    if path.startswith("~") and os.path.exists(os.path.expanduser(path)):
        return f"no such directory (`~` is not expanded here; write {os.path.expanduser(path)})"
    first = path.split("/")[0]
    if _HUB_ID.fullmatch(path) and not os.path.exists(first):
        return (
            f"no such directory; models are read from local directories only: for the hub model {path}, "
            f"run `hf download {path} --local-dir DIR` and give DIR"
        )
    return "no such directory"
