"""What can go wrong with data, said so that a user can fix it.

Every problem with the data is a `DataError` whose message names the file, the row or line and the field at
fault, and what was expected instead. A problem confined to one row also carries a `reason`, a short key under
which `on_bad_row="skip"` counts it in the report instead of raising. Problems with the whole source (a missing
file, an unknown builtin, a tokenizer without a chat template) carry no reason and always raise, because skipping
would skip everything. An invalid value of the `data` config section is not a data problem: `config` raises
`alignjax.config_errors.ConfigError` for it.
"""

from __future__ import annotations

# Reasons a row is skipped; the keys of `DataReport.skipped`.
INVALID_JSON = "invalid_json"
MISSING_FIELD = "missing_field"
WRONG_TYPE = "wrong_type"
EMPTY_RESPONSE = "empty_response"
UNKNOWN_ROLE = "unknown_role"
ASSISTANT_FIRST = "assistant_first"
TEMPLATE_ERROR = "template_error"
# Preference rows (see schemas).
IDENTICAL_RESPONSES = "identical_responses"  # chosen and rejected are the same text: nothing to prefer
TIED_SCORES = "tied_scores"  # every response of a ranked list has the same score
LENGTH_MISMATCH = "length_mismatch"  # a ranked list's `responses` and `scores` differ in length, or it has < 2
MALFORMED_DIALOGUE = "malformed_dialogue"  # an implicit-prompt dialogue without the "Human:"/"Assistant:" turns
NO_FINAL_RESPONSE = "no_final_response"  # an implicit-prompt dialogue that does not end with an assistant turn
PROMPTS_DIFFER = "prompts_differ"  # implicit-prompt chosen and rejected differ before their last assistant turn
PROMPT_TOO_LONG = "prompt_too_long"  # the prompt's tokens leave no room for a response (or exceed rl.max_prompt_len)
# Not a fault of the row: it was longer than seq_len and cutting it left no response token.
RESPONSE_TRUNCATED = "response_truncated"
# What cutting examples to `data.seq_len` drops: SFT examples without a response token left, preference examples
# whose prompt fills seq_len. Counted whatever `on_bad_row` says, because the row is fine and seq_len is the run's
# choice; `data.max_lost_fraction` decides whether the run may go on without them (`truncation.check_losses`).
LENGTH_LOSSES = (RESPONSE_TRUNCATED, PROMPT_TOO_LONG)


class DataError(ValueError):
    """Bad data; the message names where (file, row or line, field) and what was expected.

    Attributes:
        reason: for a problem with a single row, one of this module's reason keys; None for a problem with the
            whole source, which is never skipped.
    """

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        self.reason = reason
