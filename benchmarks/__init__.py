"""Benchmarks of alignjax against a peer framework: the same weights, the same data, one run.

Each module measures one workload against its peer, run from the repository root:

    python -m benchmarks.sft        # SFT training steps vs TRL's `SFTTrainer`
    python -m benchmarks.dpo        # DPO training steps vs TRL's `DPOTrainer`
    python -m benchmarks.rl         # one GRPO iteration (generate, score, update) vs TRL's `GRPOTrainer`
    python -m benchmarks.sampler    # KV-cache sampling vs `transformers` `generate`

They all run the same way (`harness`). The parent process imports neither torch nor jax: for each model it writes
its arguments into a temporary work directory and runs the module again as a "prepare" worker, which builds a
model with `transformers` from a fixed torch seed, saves it (HF format) and the inputs there, and writes the run's
settings. Then each framework runs in a fresh worker process (`python -m benchmarks.<name> --_worker ...`),
`--repeats` times alternating, so peak memory and thread pools are each framework's own and drift on a shared
machine hits both alike; a worker prints its JSON records on stdout, one a line, and the parent keeps each one's
best run for the ratio.

Modules: `harness` (the command line, the workers, the records and their statistics), `alignjax_side` (what every
alignjax worker does), `peers` (the torch side: the shared model, TRL's trainers, `transformers`). The peers are
not dependencies of alignjax: `pip install trl`. Results with machine and date go in `benchmarks/RESULTS.md`.
"""
