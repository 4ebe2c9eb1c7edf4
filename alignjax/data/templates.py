"""How examples become text (`data.template`): the tokenizer's chat template, or plain prompt and completion.

"chat" (`tokenization`) renders conversations with the tokenizer's chat template, as a chat model is prompted;
"plain" (`plain`) writes the prompt's text and then the completion's, for base models that have no chat template.
Every stage that turns data into ids (SFT and preference examples, the prompts of an on-policy run) takes its
rendering from here, so that a model is prompted the way it was trained.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from alignjax.data.plain import check_plain_tokenizer, encode_plain_chats, encode_plain_preferences, plain_prompt
from alignjax.data.tokenization import check_chat_template, conditional_prompt, encode_chats, encode_preferences


@dataclasses.dataclass(frozen=True)
class Template:
    """One way of rendering examples, with the same signatures for every template.

    Attributes:
        check: (tokenizer) -> None; raises DataError when the tokenizer cannot render this way.
        sft: (conversations, tokenizer, wheres) -> per conversation its TokenizedExample or DataError.
        preferences: (examples, tokenizer, wheres, tags) -> per example its PreferenceTokens or DataError.
        prompt: (messages, tokenizer, tag, where) -> the ids that a model answers, after a control tag ("": none).
    """

    check: Callable
    sft: Callable
    preferences: Callable
    prompt: Callable


TEMPLATES = {
    "chat": Template(check_chat_template, encode_chats, encode_preferences, conditional_prompt),
    "plain": Template(check_plain_tokenizer, encode_plain_chats, encode_plain_preferences, plain_prompt),
}


def get_template(name: str) -> Template:
    """The rendering that `data.template` names (one of TEMPLATES; the config has checked it)."""
    return TEMPLATES[name]
