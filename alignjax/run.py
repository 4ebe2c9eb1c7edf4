"""The command line: `python -m alignjax.run --config experiments/sft_toy.py --config.optim.lr=1e-3`.

It parses flags and runs the experiment's stages; everything else lives in importable modules. `config.kind`
names the kind of run (`alignjax.kinds`); `config.previous_stage` holds the whole config of an earlier stage (SFT
before DPO), which is run first unless its export already exists. `lock_config=True` makes a mistyped override an
error instead of a silent no-op.
"""

from absl import app, logging
from ml_collections import ConfigDict, config_flags
from tqdm import tqdm

from alignjax import kinds, sharding
from alignjax.config_errors import require
from alignjax.host_memory import keep_freed_host_memory
from alignjax.train.scaffold import export_done


def stages(config: ConfigDict) -> list[ConfigDict]:
    """The configs of the experiment's stages, earliest first."""
    return (stages(config.previous_stage) if "previous_stage" in config else []) + [config]


def run(config: ConfigDict) -> dict[str, float]:
    """Runs the experiment `config`, after the stages before it; returns its final metrics.

    Every stage's config is checked before any runs. A stage whose export exists is done and skipped; one that
    stops early (SIGTERM) stops the run, and the same command resumes it.
    """
    if config.distributed.enabled:
        d = config.distributed
        sharding.initialize_distributed(d.coordinator_address, d.num_processes, d.process_id)
    chain = stages(config)
    for stage in chain:
        where = stage.train.workdir
        require("kind" in stage, f"stage {where}: the config has no `kind`; expected one of {kinds.names()}")
        kinds.get(stage.kind).check(stage)
    final: dict[str, float] = {}
    for stage in chain:
        workdir = stage.train.workdir
        if stage is not config and export_done(workdir):
            tqdm.write(f"stage {workdir}: done, using its export (delete that directory to redo it)")
            continue
        final = kinds.get(stage.kind).run(stage)
        if stage is not config and not export_done(workdir):
            tqdm.write(f"stage {workdir} stopped before its end; rerun the same command to resume")
            return {}
    return final


def main(argv, config_flag) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)  # orbax logs every checkpoint step at INFO
    run(config_flag.value)


if __name__ == "__main__":
    keep_freed_host_memory()  # JAX is imported but has not started its threads yet
    _CONFIG = config_flags.DEFINE_config_file("config", None, "experiment file exposing get_config()", lock_config=True)
    app.run(lambda argv: main(argv, _CONFIG))
