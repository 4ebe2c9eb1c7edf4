"""The one error type for an invalid experiment config, and the one way to check a value.

Every section's checks (data, optimizer, train, rl, mesh, ...) call `require(ok, message)`, so that a bad value
fails the same way wherever it is read: a `ConfigError` whose message names the field (`rl.epochs`), the value
given and what is valid. `lock_config=True` already rejects unknown keys; these checks catch well-typed but wrong
values before any work starts.
"""


class ConfigError(ValueError):
    """A config value is invalid, or two values cannot work together."""


def require(ok: bool, message: str) -> None:
    """Raises ConfigError(message) unless `ok`; `message` names the field, the value and what is valid."""
    if not ok:
        raise ConfigError(message)
