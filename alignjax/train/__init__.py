"""Training: the trainee (train state, shardings, optimizer), the pure train step, the run scaffold
(checkpoints, metrics, SIGTERM, export) and the supervised / preference loop (`train.loop.train`), which the
command line (`alignjax.run`) dispatches to for the `sft`, `preference` and `reward` kinds of run.
"""
