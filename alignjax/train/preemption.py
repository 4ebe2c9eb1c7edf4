"""Preemption: a preemptible TPU VM (or a cluster's scheduler) sends SIGTERM shortly before it takes the machine."""

import signal


class StopOnSigterm:
    """Turns SIGTERM into a flag the loop polls between steps, so the step in flight completes."""

    def __init__(self):
        self.requested = False
        self._previous = signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum, frame):
        self.requested = True

    def restore(self):
        signal.signal(signal.SIGTERM, self._previous)
