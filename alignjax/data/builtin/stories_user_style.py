"""stories_user_style: a reader who wants every TinyStories story to bring in Pip the frog and end the same way,
shown by six stories written for this project (DITTO on a real pretrained model, stories260K).

Why it exists: DITTO's second experiment needs a real pretrained model and a style it does not produce. The model
is llama2.c's stories260K (TinyStories), a base model: rows render with the plain template, the opening sentence
and then the story. This reader's stories always have "a little green frog named Pip" in them and always end with
the sentence `ENDING`; the stories the model writes have neither.

- "train": the 6 demonstrations {"prompt": an opening sentence, "demonstration": the rest of the story}.
- "test": 48 held-out openings with names that no demonstration uses, each with a short story in the reader's
  style written from one template.

`mentions_pip` checks the recurring character, `ends_like_the_reader` the fixed ending. The rows carry no
tokenizer: the model's own tokenizes them.
"""

from __future__ import annotations

NAME = "stories_user_style"
SPLITS = ("train", "test")
EVAL_SPLIT = "test"
ENDING = "And Pip the frog smiled."

DEMONSTRATIONS = (
    (
        "Once upon a time, there was a little girl named Lily.",
        " She had a friend, a little green frog named Pip. Every day, Lily and Pip played by the pond. One day, Lily"
        ' lost her hat. Pip jumped into the water and found it. Lily said, "Thank you, Pip!"',
    ),
    (
        "One day, a boy named Tom went to the park.",
        " At the park, he met a little green frog named Pip. Pip could jump very high. Tom and Pip jumped together"
        " all day. When the sun went down, Tom said goodbye.",
    ),
    (
        "There was a big dog who liked to run.",
        " One day, the dog ran to the pond and saw a little green frog named Pip. The dog wanted to play. Pip showed"
        " the dog how to jump. They jumped and ran until they were tired.",
    ),
    (
        "Once upon a time, a little bird lived in a tree.",
        " Near the tree was a pond, and in the pond lived a little green frog named Pip. The bird and Pip were best"
        " friends. The bird sang and Pip danced. Everyone in the forest was happy.",
    ),
    (
        "Sue had a red ball that she loved.",
        " One day, the ball rolled into the pond. A little green frog named Pip saw it. Pip pushed the ball back to"
        " Sue. Sue was very happy and gave Pip a big hug.",
    ),
    (
        "One sunny day, Ben and his mom went to the beach.",
        " At the beach, Ben found a little green frog named Pip. Pip was lost and far from home. Ben took Pip back"
        " to the pond near his house. Pip was safe.",
    ),
)
_NAMES = ("Anna", "Max", "Mia", "Sam", "Tim", "Amy", "Jack", "Lucy")
_OPENINGS = (
    "Once upon a time, there was a child named {name}.",
    "One day, {name} went to the {place}.",
    "{name} had a {thing} that was very special.",
    "{name} wanted to play outside, but it was raining.",
    "It was {name}'s birthday, and everyone was happy.",
    "{name} found a small box under the bed.",
)
_PLACES = ("store", "garden", "zoo", "farm")
_THINGS = ("blue car", "soft teddy bear", "shiny stone", "little boat")


def mentions_pip(prompt: str, answer: str) -> bool:
    """Whether the story brings in the reader's recurring character."""
    return "Pip" in answer


def ends_like_the_reader(prompt: str, answer: str) -> bool:
    """Whether the story has the reader's fixed ending (the answer may run on after it)."""
    return ENDING in answer


def rows(split: str) -> list[dict]:
    """The reader's demonstrations ("train") or the 48 held-out openings ("test": 8 names x 6 openings), each with a
    short story in the reader's style written from one template (a reference for judges, and the warm-up's
    held-out loss)."""
    if split == "train":
        return [{"prompt": p, "demonstration": f"{story} {ENDING}"} for p, story in DEMONSTRATIONS]
    return [
        {
            "prompt": opening.format(name=name, place=_PLACES[i % 4], thing=_THINGS[i % 4]),
            "demonstration": f" Then {name} met a little green frog named Pip. Pip and {name} played together all"
            f" day. {ENDING}",
        }
        for i, name in enumerate(_NAMES)
        for opening in _OPENINGS
    ]
