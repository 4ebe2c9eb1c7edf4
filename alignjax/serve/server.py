"""Loads the model, builds the engine and the app, and runs uvicorn until SIGTERM or Ctrl-C.

The engine's programs compile before the port opens (`--warmup first`: the first request's only, a quick start;
`--warmup all`: every shape the engine can run, so that no client waits for XLA). uvicorn's graceful
shutdown stops accepting connections on SIGTERM and waits up to --shutdown-timeout for the requests in flight;
then the engine cancels what is left and the process exits 0.
"""

from __future__ import annotations

import logging
import os
import signal
import time
import types

import jax
import transformers
import uvicorn

from alignjax import sharding
from alignjax.config_errors import ConfigError
from alignjax.host_memory import keep_freed_host_memory
from alignjax.models import CheckpointError, ModelConfigError, from_pretrained
from alignjax.sampling import engine as engine_lib
from alignjax.sampling.stop_tokens import answer_stop_tokens
from alignjax.serve.app import Served, create_app

log = logging.getLogger("alignjax.serve")


class ServeError(Exception):
    """A setting the server cannot start with, said in one line."""


def build(args) -> Served:
    """The model, tokenizer and engine that `args` (the command line's) describe."""
    mesh = None
    if args.mesh is not None:
        data, fsdp, tensor = args.mesh
        sizes = types.SimpleNamespace(data=data, fsdp=fsdp, tensor=tensor)
        try:
            mesh = sharding.make_mesh(*sharding.mesh_shape(sizes, jax.device_count()))
        except ConfigError as e:
            raise ServeError(f"--{e}") from e
        if args.max_slots % sharding.data_parallel_size(mesh):
            raise ServeError(
                f"--max-slots {args.max_slots} must be a multiple of the mesh's data-parallel size "
                f"{sharding.data_parallel_size(mesh)}"
            )
    try:
        model = from_pretrained(args.model, dtype=args.dtype, mesh=mesh)
    except (ModelConfigError, CheckpointError) as e:
        raise ServeError(str(e)) from e
    tokenizer = transformers.AutoTokenizer.from_pretrained(args.model)
    max_positions = model.config.max_position_embeddings
    if args.max_context is not None and not 2 <= args.max_context <= max_positions:
        raise ServeError(
            f"--max-context must be in [2, {max_positions}] (max_position_embeddings), got {args.max_context}"
        )
    engine = engine_lib.Engine(
        model,
        tokenizer,
        max_slots=args.max_slots,
        context=args.max_context or max_positions,
        decode_steps=args.decode_steps,
        max_prefill=args.max_prefill,
        max_queue=args.max_queue,
        mesh=mesh,
    )
    return Served(
        engine=engine,
        tokenizer=tokenizer,
        model_name=args.served_model_name or os.path.basename(os.path.normpath(args.model)),
        stop_tokens=answer_stop_tokens(args.model, tokenizer),
        api_key=args.api_key,
        shutdown_timeout_s=args.shutdown_timeout,
    )


def warm_up(engine: engine_lib.Engine, which: str) -> None:
    """Compiles 'all' of the engine's programs, or the 'first' request's (the smallest prompt bucket, one active
    slot), logging the progress."""
    started = time.perf_counter()
    if which == "all":
        def progress(done: int, total: int) -> None:
            if done == 1 or done == total or done % 10 == 0:
                log.info("compiled %d of %d programs (%.0f s)", done, total, time.perf_counter() - started)

        engine.warm_up(progress)
    else:
        engine.run([engine_lib.Request(prompt=[engine.pad_id], max_tokens=1)])
    log.info("warm-up (%s) done in %.1f s: %d slots of %d tokens", which, time.perf_counter() - started,
             engine.max_slots, engine.context)


def serve(args) -> None:
    keep_freed_host_memory()
    served = build(args)
    warm_up(served.engine, args.warmup)
    served.engine.counters.clear()  # /stats counts clients' requests only (compilations stay)
    log.info("serving '%s' at http://%s:%d/v1", served.model_name, args.host, args.port)
    config = uvicorn.Config(
        create_app(served),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        timeout_graceful_shutdown=args.shutdown_timeout,
    )
    # uvicorn handles SIGTERM and SIGINT while it runs, then restores these handlers and raises the signal again:
    # by then the shutdown is done, so the process ends normally (status 0)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda number, _: log.info("stopped by %s", signal.Signals(number).name))
    uvicorn.Server(config).run()
