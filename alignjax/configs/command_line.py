"""From a command line to an experiment config: `--config FILE[:VARIANT]` and `--config.x.y=value` overrides.

Parsing is `ml_collections.config_flags` with `lock_config=True` (a mistyped key is an error, never a silent
no-op), on a private `absl.flags.FlagValues`, so importing this module defines no global flag. What can go wrong
(no `--config`, a missing file, an unknown key, a value of the wrong type, a bad variant) is a `ConfigError` of
one line: what is wrong, what is valid, the closest valid key. A config without `train.workdir` gets its
experiment's own, `run_dir(<file>-<variant>)`.
"""

from __future__ import annotations

import difflib
import os

from absl import flags
from ml_collections import ConfigDict, config_flags

from alignjax.config_errors import ConfigError
from alignjax.configs.base import run_dir

USAGE = "python -m alignjax.run --config experiments/preference_toy.py[:VARIANT] [--config.section.field=value ...]"
_PREFIX = "--config"


def _split_config_args(args: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """(the `--config FILE` arguments and any others, the (dotted key, argument) of every override)."""
    plain, overrides = [], []
    for arg in args:
        if arg.startswith(_PREFIX + "."):
            key = arg[len(_PREFIX) + 1 :].split("=", 1)[0]
            overrides.append((key, arg))
        else:
            plain.append(arg)
    return plain, overrides


def _config_file(args: list[str]) -> str:
    """The `--config` value of `args` (`--config=F` or `--config F`); ConfigError saying how to pass one."""
    for i, arg in enumerate(args):
        if arg.startswith(_PREFIX + "="):
            return arg.split("=", 1)[1]
        if arg == _PREFIX and i + 1 < len(args):
            return args[i + 1]
    raise ConfigError(f"no experiment config given: pass one with --config, e.g. {USAGE}")


def _check_key(config: ConfigDict, key: str, arg: str) -> None:
    """ConfigError naming the first unknown part of `key` (dotted), the closest valid key and the valid ones."""
    node, walked = config, []
    for part in key.split("."):
        if not isinstance(node, ConfigDict):
            raise ConfigError(f"{arg}: {'.'.join(walked)} is a value, not a section")
        if part not in node:
            valid = sorted(node.keys())
            close = difflib.get_close_matches(part, valid, n=1)
            hint = f"; did you mean {'.'.join([*walked, close[0]])!r}?" if close else ""
            section = ".".join(walked) or "the config"
            raise ConfigError(f"{arg}: {section} has no field {part!r}{hint} (valid: {', '.join(valid)})")
        node, walked = node[part], [*walked, part]


def _load(argv: list[str]) -> ConfigDict:
    """Parses `argv` with config_flags; a flags error becomes a one-line ConfigError."""
    flag_values = flags.FlagValues()
    holder = config_flags.DEFINE_config_file(
        "config", None, "experiment file exposing get_config()", flag_values=flag_values, lock_config=True,
        sys_argv=argv,  # else config_flags reads its overrides from sys.argv
    )
    try:
        rest = flag_values(argv)
        config = holder.value
    except flags.Error as e:
        last_line = str(e).strip().splitlines()[-1]  # a config file's error arrives as a whole traceback
        raise ConfigError(last_line.removeprefix("alignjax.config_errors.ConfigError: ")) from None
    if len(rest) > 1:
        raise ConfigError(f"unexpected arguments {rest[1:]}; usage: {USAGE}")
    return config


def parse_command_line(argv: list[str]) -> ConfigDict:
    """The experiment config that `argv` (program name first) describes, overrides applied.

    Raises:
      ConfigError: in one line, for anything wrong with the command line.
    """
    plain, overrides = _split_config_args(argv[1:])
    path = _config_file(plain)
    file, _, variant = path.partition(":")
    if not os.path.isfile(file):
        raise ConfigError(f"--config={path}: no such file {file!r}")
    config = _load([argv[0], *plain])  # the file alone first: its keys name what the overrides may set
    for key, arg in overrides:
        _check_key(config, key, arg)
    if overrides:
        config = _load(argv)
    if "train" in config and not config.train.workdir:
        name = os.path.splitext(os.path.basename(file))[0] + (f"-{variant.replace(',', '-')}" if variant else "")
        config.train.workdir = run_dir(name)
    return config
