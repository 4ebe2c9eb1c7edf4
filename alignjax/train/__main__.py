"""Entry point: `python -m alignjax.train --config experiments/sft_toy.py --config.optim.lr=1e-3`.

Only parses flags and dispatches; everything else lives in importable modules. `lock_config=True` makes a
mistyped override an error instead of a silent no-op.
"""

from alignjax.host_memory import keep_freed_host_memory

keep_freed_host_memory()  # before JAX starts its threads

from absl import app, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from alignjax.train.loop import run  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "experiment file exposing get_config()", lock_config=True)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)  # orbax logs every checkpoint step at INFO
    run(_CONFIG.value)


if __name__ == "__main__":
    app.run(main)
