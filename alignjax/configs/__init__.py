"""Experiment configs: `base_config()` (every section with its defaults), the toy task's recipes (`toy`), and the
one parser of an experiment file's variant (`parse_variant`). Experiment files in `experiments/` read these and
are the one place a recipe is written down."""

from alignjax.configs.base import base_config, run_dir
from alignjax.configs.variants import Variant, parse_variant

__all__ = ["Variant", "base_config", "parse_variant", "run_dir"]
