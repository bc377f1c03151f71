"""Priors: audio features aligned to video frames, and the vision-language emotion prior.

| name | what |
|---|---|
| `AudioPrior` | the interface: `prior(waveform, sample_rate, num_frames) -> (b, t, dim)` |
| `MelPrior` | log-mel windows around each frame (no parameters) |
| `Wav2Vec2Prior` | wav2vec 2.0 (XLSR-53, BASE, ...) from a local weights file, one layer |
| `PhonemeAudioPrior` | a small trainable audio encoder pre-trained on frame phoneme labels |
| `EmotionPromptPrior` | an open_clip model + learnable per-emotion prompts (CoOp-style) |
| `project_to_prior` | embeddings read through a prior's anchors (a soft nearest emotion) |

open_clip is imported only when an `EmotionPromptPrior` is built.

Examples:
    >>> import decouple.priors as priors
    >>> priors.MelPrior(context=2).dim
    160
"""

from decouple.priors.base import AudioPrior, frame_times, interpolate_to_frames
from decouple.priors.descriptions import EMOTION_DESCRIPTIONS
from decouple.priors.emotion_prompt import TINY_CLIP_CONFIG, EmotionPromptPrior
from decouple.priors.mel import MelPrior
from decouple.priors.phoneme import PhonemeAudioPrior
from decouple.priors.projection import project_to_prior
from decouple.priors.wav2vec2 import WAV2VEC2_ARCHITECTURES, Wav2Vec2Prior, load_wav2vec2_state_dict

__all__ = [
    "EMOTION_DESCRIPTIONS",
    "TINY_CLIP_CONFIG",
    "WAV2VEC2_ARCHITECTURES",
    "AudioPrior",
    "EmotionPromptPrior",
    "MelPrior",
    "PhonemeAudioPrior",
    "Wav2Vec2Prior",
    "frame_times",
    "interpolate_to_frames",
    "load_wav2vec2_state_dict",
    "project_to_prior",
]
