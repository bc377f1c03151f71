"""Prior-guided encoders: backbones, the audio-queried content encoder, the emotion encoder.

| module | what |
|---|---|
| `spec` | `ImageSpec`: channel order, value range, normalisation and size, checked at input |
| `conv_backbone` | `ConvBackbone`: small conv-BN-ReLU trunk for 64-128 px crops (CPU) |
| `iresnet` | `IResNet`, `iresnet50`: ArcFace IResNet in insightface's key layout, truncatable |
| `attention` | `AudioQueriedAttention`: the CCRL block (audio query over a visual map) |
| `content` | `VisualContentEncoder`: backbone + attention + projection (Ec) |
| `emotion` | `EmotionEncoder`: image tower + head (Ee) |
| `ccrl`, `cerl` | `CCRL`, `CERL`: trainable modules with `loss(batch)` |
| `efficientface` | `EfficientFace`: the protocol's emotion-feature model (AffectNet-7 file) |
| `dlib_face` | `DlibFaceEmbedder`: dlib's offline face-recognition embedding (identity) |
| `dlib_landmarks` | `DlibLandmarks`, `detect_landmarks`: dlib's 68 landmarks (M-LMD / F-LMD) |

Names are imported on first use (so `import decouple.encoders` stays light).
`CheckpointError`, `load_state_file`, `load_weights` and `save_weights` are re-exported from
`decouple.checkpoint`, the one home of weight files.

Examples:
    >>> import torch
    >>> from decouple.encoders import ConvBackbone, VisualContentEncoder
    >>> enc = VisualContentEncoder(ConvBackbone(), audio_dim=80, dim=64)
    >>> tuple(enc(torch.rand(2, 3, 64, 64), torch.randn(2, 80)).shape)
    (2, 64)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from decouple._lazy import lazy_exports

if TYPE_CHECKING:  # static names for type checkers and the API docs; imported lazily at run time
    from decouple.checkpoint import CheckpointError, load_state_file, load_weights, save_weights
    from decouple.encoders._freeze import freeze
    from decouple.encoders.attention import AudioQueriedAttention, sincos_2d
    from decouple.encoders.ccrl import CCRL
    from decouple.encoders.cerl import CERL
    from decouple.encoders.content import VisualContentEncoder
    from decouple.encoders.conv_backbone import ConvBackbone
    from decouple.encoders.dlib_face import DlibFaceEmbedder
    from decouple.encoders.dlib_landmarks import DlibLandmarks, detect_landmarks
    from decouple.encoders.efficientface import (
        AFFECTNET7_EMOTIONS,
        AFFECTNET8_EMOTIONS,
        EfficientFace,
    )
    from decouple.encoders.emotion import EmotionEncoder
    from decouple.encoders.iresnet import STAGES, IBasicBlock, IResNet, iresnet50
    from decouple.encoders.spec import ImageSpec, ImageSpecError

# name -> module: a submodule of decouple.encoders, or a full module path (re-exports)
_EXPORTS = {
    "ImageSpec": "spec",
    "ImageSpecError": "spec",
    "ConvBackbone": "conv_backbone",
    "IBasicBlock": "iresnet",
    "IResNet": "iresnet",
    "STAGES": "iresnet",
    "iresnet50": "iresnet",
    "CheckpointError": "decouple.checkpoint",
    "load_state_file": "decouple.checkpoint",
    "load_weights": "decouple.checkpoint",
    "save_weights": "decouple.checkpoint",
    "AudioQueriedAttention": "attention",
    "sincos_2d": "attention",
    "freeze": "_freeze",
    "VisualContentEncoder": "content",
    "EmotionEncoder": "emotion",
    "CCRL": "ccrl",
    "CERL": "cerl",
    "EfficientFace": "efficientface",
    "AFFECTNET7_EMOTIONS": "efficientface",
    "AFFECTNET8_EMOTIONS": "efficientface",
    "DlibFaceEmbedder": "dlib_face",
    "DlibLandmarks": "dlib_landmarks",
    "detect_landmarks": "dlib_landmarks",
}

__all__ = [
    "AFFECTNET7_EMOTIONS",
    "AFFECTNET8_EMOTIONS",
    "CCRL",
    "CERL",
    "STAGES",
    "AudioQueriedAttention",
    "CheckpointError",
    "ConvBackbone",
    "DlibFaceEmbedder",
    "DlibLandmarks",
    "EfficientFace",
    "EmotionEncoder",
    "IBasicBlock",
    "IResNet",
    "ImageSpec",
    "ImageSpecError",
    "VisualContentEncoder",
    "detect_landmarks",
    "freeze",
    "iresnet50",
    "load_state_file",
    "load_weights",
    "save_weights",
    "sincos_2d",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
