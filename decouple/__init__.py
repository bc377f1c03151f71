"""decouple: contrastive representation learning that separates factors.

Subpackages:

- `decouple.losses`: the masked multi-positive InfoNCE core and its named specialisations
  (`EmotionAwareNCE` for CCRL, `EmotionAugmentedNCE` for CERL, consistency losses).
- `decouple.distributed`: differentiable all-gather and rank helpers.
"""

__version__ = "0.1.0.dev0"

__all__ = ["__version__"]
