"""alignjax: aligning language models with JAX — SFT, preference learning, on-policy RL, data generation, eval.

Arrays are named with a shape suffix, one character per dimension (`logits_BLV`, `mask_B1LS`). Each character
means the same thing everywhere in the package:

  B  batch rows (or the prompts of a batch)
  L  length of a token row
  V  vocabulary
  D  model width (hidden size)
  F  MLP width (intermediate size)
  N  rows of a flattened batch (e.g. N = prompts x answers)
  K  responses (answers) per prompt
  T  answer / new-token slots
  P  prompt slots
  G  groups of answers that share one prompt
  S  key/cache length: the positions a query can attend to
  U  examples of a dataset split (a per-example table's rows)
  R  tokens of one response before it is joined to its prompt
  M  stop tokens per row (unused ones are -1)
  H  query heads
  J  key/value heads
  Q  query heads per key/value head (H = J x Q)
  E  head dimension
  C  rotary frequencies (E / 2)
  X  heads of either kind, where one function serves queries and keys/values
  I  input features of a weight
  O  output features of a weight
  Z  transformer layers (blocks)
  1  a dimension of size one (kept for broadcasting)
  2  a dimension of size two (a chosen/rejected pair, a rotary pair)
"""

__version__ = "0.1.0"
