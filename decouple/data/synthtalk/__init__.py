"""SynthTalk: a procedurally generated talking-face corpus that knows every factor of every frame.

It mirrors MEAD's structure (speakers x emotions x intensities x parallel sentences, 16 kHz speech
and video) so that the whole system trains and is tested without a download, and so that an emotion
edit can be compared with its exact counterfactual. It is a test bed, not a substitute for real
faces.

| module | what |
|---|---|
| `speakers` | speaker identities (face geometry, colours, hair, voice), train/test split |
| `expressions` | facial action parameters of MEAD's eight emotions at levels 1-3 |
| `nuisance` | blinks, small head motion, lighting gain |
| `render` | anti-aliased frames and 68-point landmarks from speaker, expression, mouth, nuisance |
| `speech` | espeak-ng speech with emotional prosody and phoneme timings (optional `speech` extra) |
| `visemes` | phoneme -> viseme -> per-frame mouth parameters, content positions |
| `captions` | captions from the ground truth ("a young speaker ..., smiling broadly") |
| `corpus` | the corpus into shards (`generate`), counterfactual re-rendering, reading back |

The CLI is `python -m decouple.data.synthtalk --out DIR --speakers N --seed S`. The
counterfactual renderer is `decouple.data.synthtalk.corpus.render` (not re-exported here: the
name `render` is the renderer's module).

The main names are re-exported here and imported on first use.

Examples:
    >>> import decouple.data.synthtalk as st
    >>> st.EXPRESSION_PARAMS[:3]
    ('brow_raise', 'brow_lower', 'brow_inner_raise')
"""

from __future__ import annotations

from decouple._lazy import lazy_exports

_EXPORTS = {
    "SpeakerParams": "speakers",
    "sample_speakers": "speakers",
    "split_speakers": "speakers",
    "EXPRESSION_PARAMS": "expressions",
    "expression": "expressions",
    "nuisance_tracks": "nuisance",
    "still_nuisance": "nuisance",
    "RENDER_SIZES": "render",
    "Rendered": "render",
    "render_frames": "render",
    "render_landmarks": "render",
    "SENTENCES": "speech",
    "Speech": "speech",
    "synthesize": "speech",
    "speak": "speech",
    "prosody": "speech",
    "caption": "captions",
    "SynthTalkConfig": "corpus",
    "Rerendered": "corpus",
    "generate": "corpus",
    "load_clip": "corpus",
    "iter_clips": "corpus",
    "clip_key": "corpus",
    "MOUTH_PARAMS": "visemes",
    "mouth_track": "visemes",
    "content_positions": "visemes",
    "frame_tracks": "visemes",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
