"""Checkpoints of a run: the train state (sharded, via orbax) and the data iterator's position (JSON).

Both are saved in one orbax step, so a restart resumes from a consistent pair: the batches after a restore
are those an uninterrupted run would have seen.
"""

from __future__ import annotations

import os

import jax
import orbax.checkpoint as ocp

from alignjax.config_errors import ConfigError
from alignjax.train.trainee import TrainState


class Checkpointer:
    """Saves and restores (TrainState, data position) under `directory`, keeping the last `keep` steps (None:
    all, for reading another run's checkpoints without touching them)."""

    def __init__(self, directory: str, keep: int | None):
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
        self._manager = ocp.CheckpointManager(os.path.abspath(directory), options=options, item_names=("state", "data"))

    @property
    def directory(self) -> str:
        return str(self._manager.directory)

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def delete(self, step: int) -> None:
        self._manager.delete(step)

    def save(self, step: int, state: TrainState, data_position: dict, force: bool = False) -> None:
        """Saves asynchronously; a step already on disk is left as it is."""
        if step in self._manager.all_steps():
            return
        args = ocp.args.Composite(state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_position))
        self._manager.save(step, args=args, force=force)

    def restore(self, step: int, abstract_state: TrainState) -> tuple[TrainState, dict]:
        """The state saved at `step`, placed on the shardings carried by `abstract_state`'s leaves.

        Raises:
          ConfigError: in one line, when the checkpoint holds a state of another structure or shape (another
            run's checkpoint: orbax's own message lists every array).
        """
        args = ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore())
        try:
            restored = self._manager.restore(step, args=args)
        except (ValueError, KeyError, TypeError) as e:
            first_line = str(e).strip().splitlines()[0][:160]
            raise ConfigError(
                f"the checkpoint {self.directory}/{step} does not fit this run's model and optimizer ({first_line}): "
                "it was saved by another run; set another train.workdir, or delete that checkpoint"
            ) from None
        return restored["state"], restored["data"]

    def wait(self) -> None:
        """Blocks until asynchronous saves have reached disk (call before exiting)."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.close()


def abstract_like(state: TrainState, shardings: TrainState) -> TrainState:
    """ShapeDtypeStructs with shardings: the restore target for a state shaped like `state`."""
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), state, shardings)
