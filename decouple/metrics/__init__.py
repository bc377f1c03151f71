"""Metrics of the field, each defined precisely in its docs page, and decoupling probes.

| module | what |
|---|---|
| `probes` | `linear_probe`: a factor's accuracy from an embedding on held-out speakers |
| `frechet` | `frechet_distance` (FID formula), `embedding_frechet_distance`, `fad` (ArcFace) |
| `image` | `psnr`, `ssim` (Wang et al. 2004, Gaussian window) |
| `landmarks` | `landmark_distance`, `mouth_landmark_distance` (M-LMD), F-LMD |
| `similarity` | `emotion_feature_similarity` (the papers' "CSIM"), `identity_similarity` |
| `sync` | SyncNet v2, `lip_sync` (LSE-D / LSE-C), `sync_score`, `sync_mfcc` |

Names are re-exported here and imported on first use (scipy only when a Frechet distance is
computed).

Examples:
    >>> import decouple.metrics as metrics
    >>> metrics.ProbeResult.__name__
    'ProbeResult'
    >>> import torch
    >>> frames = torch.zeros(2, 3, 8, 8, dtype=torch.uint8)
    >>> metrics.psnr(frames, frames)
    inf
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from decouple._lazy import lazy_exports

if TYPE_CHECKING:  # static names for type checkers and the API docs; imported lazily at run time
    from decouple.metrics.frechet import (
        FeatureStats,
        embedding_frechet_distance,
        embedding_statistics,
        fad,
        frechet_distance,
    )
    from decouple.metrics.image import (
        psnr,
        ssim,
    )
    from decouple.metrics.landmarks import (
        FACE,
        MOUTH,
        face_landmark_distance,
        landmark_distance,
        mouth_landmark_distance,
    )
    from decouple.metrics.probes import (
        LinearProbe,
        ProbeResult,
        group_split,
        linear_probe,
    )
    from decouple.metrics.similarity import (
        emotion_accuracy,
        emotion_feature_similarity,
        feature_similarity,
        identity_similarity,
    )
    from decouple.metrics.sync import (
        SYNC_FPS,
        SYNC_SAMPLE_RATE,
        SyncModel,
        SyncNet,
        SyncScore,
        lip_sync,
        sync_mfcc,
        sync_score,
        syncnet,
    )

_EXPORTS = {
    "LinearProbe": "probes",
    "ProbeResult": "probes",
    "group_split": "probes",
    "linear_probe": "probes",
    "FeatureStats": "frechet",
    "embedding_frechet_distance": "frechet",
    "embedding_statistics": "frechet",
    "fad": "frechet",
    "frechet_distance": "frechet",
    "psnr": "image",
    "ssim": "image",
    "FACE": "landmarks",
    "MOUTH": "landmarks",
    "face_landmark_distance": "landmarks",
    "landmark_distance": "landmarks",
    "mouth_landmark_distance": "landmarks",
    "emotion_accuracy": "similarity",
    "emotion_feature_similarity": "similarity",
    "feature_similarity": "similarity",
    "identity_similarity": "similarity",
    "SYNC_FPS": "sync",
    "SYNC_SAMPLE_RATE": "sync",
    "SyncModel": "sync",
    "SyncNet": "sync",
    "SyncScore": "sync",
    "lip_sync": "sync",
    "sync_mfcc": "sync",
    "sync_score": "sync",
    "syncnet": "sync",
}

__all__ = [
    "FACE",
    "MOUTH",
    "SYNC_FPS",
    "SYNC_SAMPLE_RATE",
    "FeatureStats",
    "LinearProbe",
    "ProbeResult",
    "SyncModel",
    "SyncNet",
    "SyncScore",
    "embedding_frechet_distance",
    "embedding_statistics",
    "emotion_accuracy",
    "emotion_feature_similarity",
    "face_landmark_distance",
    "fad",
    "feature_similarity",
    "frechet_distance",
    "group_split",
    "identity_similarity",
    "landmark_distance",
    "linear_probe",
    "lip_sync",
    "mouth_landmark_distance",
    "psnr",
    "ssim",
    "sync_mfcc",
    "sync_score",
    "syncnet",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
