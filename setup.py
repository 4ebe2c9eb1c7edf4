"""Installs alignjax. `pip install -e ".[test]"` adds what the test suite needs (PyTorch CPU for parity tests)."""

from setuptools import find_packages, setup

setup(
    name="alignjax",
    version="0.1.0",
    description="JAX-native alignment of language models: SFT, preference learning, on-policy RL, evaluation.",
    long_description=open("README.md").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["alignjax", "alignjax.*"]),
    install_requires=[
        "jax>=0.10",
        "flax>=0.12.8",
        "optax>=0.2.8",
        "orbax-checkpoint>=0.12",
        "transformers>=5.0",
        "tokenizers>=0.22",
        "datasets>=4.0",
        "ml-collections>=1.1",
        "safetensors>=0.6",
        "ml_dtypes>=0.5",
        "numpy>=2.0",
        "absl-py>=2.1",
        "tqdm>=4.66",
        "tensorboardX>=2.6",
        "jinja2>=3.1",  # chat templates (transformers renders them with jinja2 but does not require it)
        "matplotlib>=3.8",  # learning curves and evaluation plots
    ],
    extras_require={
        # torch is pinned to the CPU wheel this project's machines carry; an unpinned torch pulls CUDA builds.
        "test": ["pytest>=8", "torch==2.13.0"],
    },
)
