"""alignjax: aligning language models with JAX — SFT, preference learning, on-policy RL, data generation, eval."""

__version__ = "0.1.0"
