"""Facial-action descriptions of the canonical emotions, the fixed part of the emotion prompts.

Written for `decouple` (not copied from the CDRL code) from the facial action units that
characterise each emotion in the FACS / EMFACS literature (AU numbers in brackets below):

- neutral: a neutral face, relaxed facial muscles, level eyebrows, eyes open at rest, closed
  relaxed lips, a blank look (no AU active)
- calm: a calm face, soft relaxed muscles, slightly lowered eyelids, a smooth forehead,
  gently closed lips, a peaceful look (AU43 light)
- happy: a happy face, a smile with lip corners pulled up, raised cheeks, crinkled eye
  corners, a bright look (AU6 + AU12)
- sad: a sad face, inner eyebrows raised and drawn together, drooping upper eyelids, lip
  corners pulled down, a downcast look (AU1 + AU4 + AU15)
- angry: an angry face, furrowed lowered eyebrows, narrowed glaring eyes, pressed tight
  lips, a tense look (AU4 + AU5 + AU7 + AU23)
- fear: a fearful face, raised eyebrows drawn together, wide open eyes, lips stretched back,
  a tense worried look (AU1 + AU2 + AU4 + AU5 + AU20)
- disgusted: a disgusted face, a wrinkled nose, a raised upper lip, lowered eyebrows,
  narrowed eyes, a repelled look (AU9 + AU10)
- surprised: a surprised face, raised arched eyebrows, wide open eyes, a dropped jaw with an
  open mouth, a startled look (AU1 + AU2 + AU5 + AU26)
- contempt: a contemptuous face, one lip corner raised and tightened, a one-sided smirk,
  narrowed eyes, a disdainful look (AU12 + AU14, one side)

Each description opens with the emotion word ("an angry face"): CLIP's text encoder knows
these words from web captions, and the learnable context in front of the description then
only has to adapt that knowledge to face crops. Every description takes at most 30 BPE
tokens, so with 8 context tokens a prompt needs at most 40 of CLIP's 77 positions (and fits
the 48-token context of the tiny test model).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["EMOTION_DESCRIPTIONS"]

EMOTION_DESCRIPTIONS: Mapping[str, str] = MappingProxyType({
    "neutral": "a neutral face, relaxed facial muscles, level eyebrows, eyes open at rest, "
               "closed relaxed lips, a blank look",
    "calm": "a calm face, soft relaxed muscles, slightly lowered eyelids, a smooth forehead, "
            "gently closed lips, a peaceful look",
    "happy": "a happy face, a smile with lip corners pulled up, raised cheeks, crinkled eye "
             "corners, a bright look",
    "sad": "a sad face, inner eyebrows raised and drawn together, drooping upper eyelids, lip "
           "corners pulled down, a downcast look",
    "angry": "an angry face, furrowed lowered eyebrows, narrowed glaring eyes, pressed tight "
             "lips, a tense look",
    "fear": "a fearful face, raised eyebrows drawn together, wide open eyes, lips stretched "
            "back, a tense worried look",
    "disgusted": "a disgusted face, a wrinkled nose, a raised upper lip, lowered eyebrows, "
                 "narrowed eyes, a repelled look",
    "surprised": "a surprised face, raised arched eyebrows, wide open eyes, a dropped jaw with "
                 "an open mouth, a startled look",
    "contempt": "a contemptuous face, one lip corner raised and tightened, a one-sided smirk, "
                "narrowed eyes, a disdainful look",
})
"""Canonical emotion name -> facial-action description (the table in the module docstring).

Examples:
    >>> from decouple.data.registry import CANONICAL_EMOTIONS
    >>> sorted(EMOTION_DESCRIPTIONS) == sorted(CANONICAL_EMOTIONS)
    True
    >>> EMOTION_DESCRIPTIONS["angry"][:40]
    'an angry face, furrowed lowered eyebrows'
"""
