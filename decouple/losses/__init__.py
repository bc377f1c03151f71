"""Contrastive losses that keep one factor and remove another.

One core, [InfoNCE][decouple.losses.InfoNCE] (masked multi-positive InfoNCE with a fused
backward, chunking and exact distributed gathering), and thin named specialisations:

| class | keeps | removes | CDRL role |
|---|---|---|---|
| `DecoupledNCE` | target labels | nuisance labels | general form |
| `EmotionAwareNCE` | content | emotion | CCRL |
| `EmotionAugmentedNCE` | emotion | content | CERL (with the emotion prior) |
| `ContentConsistency` | content | | generator supervision |
| `EmotionConsistency` | emotion | | generator supervision |
| `CosineContrast` | | | the released code's triplet form |

Examples:
    >>> import torch
    >>> from decouple.losses import EmotionAwareNCE
    >>> loss = EmotionAwareNCE()(torch.randn(16, 8), torch.arange(4).repeat(4),
    ...                          torch.arange(4).repeat_interleave(4))
"""

from decouple.losses.content_consistency import ContentConsistency
from decouple.losses.cosine_contrast import CosineContrast
from decouple.losses.decoupled import DecoupledNCE
from decouple.losses.emotion_augmented import EmotionAugmentedNCE
from decouple.losses.emotion_aware import EmotionAwareNCE
from decouple.losses.emotion_consistency import EmotionConsistency
from decouple.losses.exceptions import NoValidPairsWarning
from decouple.losses.infonce import InfoNCE

__all__ = [
    "ContentConsistency",
    "CosineContrast",
    "DecoupledNCE",
    "EmotionAugmentedNCE",
    "EmotionAwareNCE",
    "EmotionConsistency",
    "InfoNCE",
    "NoValidPairsWarning",
]
