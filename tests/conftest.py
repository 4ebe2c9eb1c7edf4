"""Test-session setup: 8 simulated CPU devices, so mesh tests run on any machine.

The device count must be fixed before JAX creates its backend, hence here, at import time. Tests that do not
name a mesh run on the first device as usual.
"""

import os

import jax

jax.config.update("jax_num_cpu_devices", 8)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.join(os.path.dirname(REPO_ROOT), "shared", "data")
