"""The command line: `python -m alignjax.run --config experiments/sft_toy.py --config.optim.lr=1e-3`.

It parses flags and runs the experiment's stages; everything else lives in importable modules. `config.kind`
names the kind of run (`alignjax.kinds`); `config.previous_stage` holds the whole config of an earlier stage (SFT
before DPO), which is run first unless its export already exists. Every stage is checked before any runs
(`preflight`), and each runs holding its workdir (`train.workdir.claim_workdir`). A mistake in the config, the
data or a model directory ends the command with one line on stderr and exit status 2; SIGTERM and Ctrl-C save a
checkpoint and end it (status 0 and 130), and the same command resumes.
"""

from __future__ import annotations

import os
import sys
import time

from absl import logging
from ml_collections import ConfigDict
from tqdm import tqdm

from alignjax import kinds, sharding
from alignjax.config_errors import ConfigError
from alignjax.configs.command_line import USAGE, parse_command_line
from alignjax.data import DataError
from alignjax.generation import GenerationError
from alignjax.host_memory import keep_freed_host_memory
from alignjax.models import CheckpointError, ModelConfigError
from alignjax.preflight import check_stages
from alignjax.train.scaffold import RunStopped
from alignjax.train.workdir import LOCK_FILE, claim_workdir, export_done

# said in one line, without a traceback (a teacher's or judge's endpoint that fails names itself and the request)
USER_ERRORS = (ConfigError, DataError, CheckpointError, ModelConfigError, GenerationError)


def stages(config: ConfigDict) -> list[ConfigDict]:
    """The configs of the experiment's stages, earliest first."""
    return (stages(config.previous_stage) if "previous_stage" in config else []) + [config]


def _took(began: float) -> str:
    minutes, seconds = divmod(time.perf_counter() - began, 60)
    return f"{int(minutes)}m{seconds:04.1f}s"


def _outputs(workdir: str) -> str:
    names = sorted(n + ("/" if os.path.isdir(os.path.join(workdir, n)) else "") for n in os.listdir(workdir))
    return " ".join(n for n in names if n != LOCK_FILE and not n.endswith(".tmp"))


def run(config: ConfigDict) -> dict[str, float]:
    """Runs the experiment `config`, after the stages before it; returns its final metrics.

    A stage whose export exists is done and skipped. Raises ConfigError (before any stage starts) for a bad
    config, and RunStopped when a signal stopped a stage after its checkpoint.
    """
    if config.distributed.enabled:
        d = config.distributed
        sharding.initialize_distributed(d.coordinator_address, d.num_processes, d.process_id)
    chain, run_began = stages(config), time.perf_counter()
    check_stages(chain)
    final: dict[str, float] = {}
    for number, stage in enumerate(chain, 1):
        workdir, began = stage.train.workdir, time.perf_counter()
        if stage is not config and export_done(workdir):
            tqdm.write(f"stage {number}/{len(chain)} ({stage.kind}): done in {workdir}, using its export")
            continue
        tqdm.write(f"stage {number}/{len(chain)} ({stage.kind}): workdir {workdir}")
        with claim_workdir(stage):
            final = kinds.get(stage.kind).run(stage)
        tqdm.write(f"stage {number}/{len(chain)} ({stage.kind}) done in {_took(began)}; {workdir}: {_outputs(workdir)}")
    if len(chain) > 1:
        tqdm.write(f"all {len(chain)} stages done in {_took(run_began)}; the last one wrote to {workdir}")
    return final


def main(argv: list[str]) -> int:
    """Runs the command line `argv`; returns the exit status."""
    if {"-h", "--help", "-help"} & set(argv[1:]):
        print(f"{__doc__}\nusage: {USAGE}")
        return 0
    logging.set_verbosity(logging.WARNING)  # orbax logs every checkpoint step at INFO
    try:
        run(parse_command_line(argv))
    except USER_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except RunStopped as e:
        tqdm.write(str(e))
        return 130 if e.signal_name == "SIGINT" else 0
    except KeyboardInterrupt:
        print("\ninterrupted: nothing was saved since the last checkpoint", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    keep_freed_host_memory()  # JAX is imported but has not started its threads yet
    sys.exit(main(sys.argv))
