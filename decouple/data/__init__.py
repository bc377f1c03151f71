"""Data: media I/O, audio features, faces, emotion registry, shard format, alignment and reading.

Modules (each one concept; everything else in the project calls these, never a copy):

| module | what |
|---|---|
| `registry` | emotion names and ids per corpus, protocol subsets |
| `io` | video / audio reading and writing (PyAV, soundfile; no system FFmpeg) |
| `features` | log-mel and MFCC framed to the video frame rate |
| `faces` | face detection and cropping (Haar, dlib, fixed crop) |
| `align` | DTW between renditions of a sentence |
| `schema`, `shards`, `validate` | the versioned WebDataset shard format |
| `split`, `pipeline`, `batches` | reading: rank/worker split, windows, parallel batches |
| `convert` | `python -m decouple.data.convert {mead,ravdess,cremad} SRC OUT` |

The main names are re-exported here and imported on first use, so `import decouple.data`
does not load PyAV, torchaudio or OpenCV until they are needed.

Examples:
    >>> import decouple.data as data
    >>> data.get_emotion_set("mead7").names[:3]
    ('neutral', 'angry', 'disgusted')
"""

from __future__ import annotations

from decouple._lazy import lazy_exports

_EXPORTS = {
    "EmotionSet": "registry",
    "get_emotion_set": "registry",
    "register_emotion_set": "registry",
    "Video": "io",
    "Audio": "io",
    "read_video": "io",
    "read_audio": "io",
    "read_av": "io",
    "write_video": "io",
    "write_audio": "io",
    "encode_video": "io",
    "encode_audio": "io",
    "AudioFeatureConfig": "features",
    "log_mel": "features",
    "mfcc": "features",
    "frame_to_video": "features",
    "crop_faces": "faces",
    "dtw": "align",
    "align_audio": "align",
    "ClipMeta": "schema",
    "Clip": "schema",
    "SCHEMA_VERSION": "schema",
    "ShardWriter": "shards",
    "read_index": "shards",
    "validate_shards": "validate",
    "ShardDataset": "pipeline",
    "ParallelWindows": "batches",
    "EmotionBatches": "batches",
    "parallel_labels": "batches",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
