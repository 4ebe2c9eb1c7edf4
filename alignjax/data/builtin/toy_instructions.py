"""toy_instructions: an instruction-following task that a tiny model learns from scratch in minutes on a CPU.

Why it exists: an end-to-end SFT run needs data that ships with the code, whose success is unambiguous and quick
to reach. Each example asks for one of three string operations on a short random lowercase word:

    <|bos|><|user|>reverse: kqzt<|assistant|>tzqk<|end|>
    <|bos|><|user|>upper: kqzt<|assistant|>KQZT<|end|>
    <|bos|><|user|>sort: kqzt<|assistant|>kqtz<|end|>

Every example has its own word, and the held-out ("test") words never occur in training, so exact match on the
test split measures whether the model learned the operations rather than the words. The data are generated from a
fixed seed with numpy's PCG64, so every run and every machine sees the same examples.

The tokenizer is character level (a `tokenizers` WordLevel model over single characters, split by a regex
pre-tokenizer) with special tokens for the chat roles, wrapped as a `transformers` fast tokenizer whose Jinja chat
template writes the format above. `<|end|>` closes each assistant turn and is also the EOS token, so generation
stops where the response ends. It saves and loads like any Hugging Face tokenizer.
"""

from __future__ import annotations

import functools
import string

import numpy as np
import tokenizers
from tokenizers import decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

NAME = "toy_instructions"
SPLITS = ("train", "test")
EVAL_SPLIT = "test"
DATA_SEED = 20240617
NUM_TRAIN = 40000
NUM_TEST = 200
WORD_LENGTHS = (3, 6)  # inclusive range of word lengths

TASKS = {
    "reverse": lambda word: word[::-1],
    "upper": str.upper,
    "sort": lambda word: "".join(sorted(word)),
}

PAD, UNK, BOS, END = "<|pad|>", "<|unk|>", "<|bos|>", "<|end|>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")
# Special tokens first, so pad is id 0: padding and "no target" share the id the batches fill with.
_SPECIAL_TOKENS = (PAD, UNK, BOS, END) + ROLE_TOKENS
_CHARACTERS = string.ascii_lowercase + string.ascii_uppercase + string.digits + " :.,;!?'\"-_()\n"

CHAT_TEMPLATE = (
    "{{- bos_token -}}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "<|assistant|>{{ message['content'] }}<|end|>"
    "{%- elif message['role'] == 'user' or message['role'] == 'system' -%}"
    "<|{{ message['role'] }}|>{{ message['content'] }}"
    "{%- else -%}"
    "{{ raise_exception('unknown role: ' + message['role']) }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|assistant|>{%- endif -%}"
)


def _unique_words(rng: np.random.Generator, count: int) -> list[str]:
    """`count` distinct random lowercase words, in the order drawn."""
    low, high = WORD_LENGTHS
    seen, words = set(), []
    while len(words) < count:
        length = int(rng.integers(low, high + 1))
        word = "".join(rng.choice(list(string.ascii_lowercase), size=length))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def generate(seed: int = DATA_SEED, num_train: int = NUM_TRAIN, num_test: int = NUM_TEST) -> dict[str, list[dict]]:
    """Generates the dataset: every example gets its own word, and the test words come first in the draw.

    Args:
        seed: seed of the generator; the same seed always gives the same rows.
        num_train: number of training examples.
        num_test: number of held-out examples.

    Returns:
        {"train": rows, "test": rows}, each row {"prompt": "reverse: abc", "completion": "cba"}.
    """
    rng = np.random.default_rng(seed)
    words = _unique_words(rng, num_test + num_train)
    tasks = rng.choice(list(TASKS), size=num_test + num_train)
    rows = [{"prompt": f"{task}: {word}", "completion": TASKS[task](word)} for task, word in zip(tasks, words)]
    return {"train": rows[num_test:], "test": rows[:num_test]}


@functools.cache
def _default_dataset() -> dict[str, list[dict]]:
    return generate()


def rows(split: str) -> list[dict]:
    """The rows of `split` ("train" or "test") of the builtin dataset."""
    return _default_dataset()[split]


def tokenizer() -> PreTrainedTokenizerFast:
    """The character-level tokenizer with the task's chat template (83 tokens, pad id 0)."""
    vocab = {token: i for i, token in enumerate(_SPECIAL_TOKENS + tuple(_CHARACTERS))}
    backend = tokenizers.Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    backend.pre_tokenizer = pre_tokenizers.Split(tokenizers.Regex("."), behavior="isolated")
    backend.decoder = decoders.Fuse()
    backend.add_special_tokens([tokenizers.AddedToken(t, special=True, normalized=False) for t in _SPECIAL_TOKENS])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=PAD,
        unk_token=UNK,
        bos_token=BOS,
        eos_token=END,
        extra_special_tokens=list(ROLE_TOKENS),
        chat_template=CHAT_TEMPLATE,
        model_max_length=1024,
        name_or_path=NAME,
    )
