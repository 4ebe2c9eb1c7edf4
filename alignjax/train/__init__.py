"""Training: the train state, optimizer, pure train step, checkpoints, metric writers and the loop.

`python -m alignjax.train --config experiments/<name>.py` runs `alignjax.train.loop.train`.
"""
