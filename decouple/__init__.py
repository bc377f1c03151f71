"""decouple: contrastive representation learning that separates factors.

Subpackages:

- `decouple.losses`: the masked multi-positive InfoNCE core and its named specialisations
  (`EmotionAwareNCE` for CCRL, `EmotionAugmentedNCE` for CERL, consistency losses).
- `decouple.distributed`: differentiable all-gather and rank helpers.
- `decouple.data`: media I/O, audio features, faces, the emotion registry, DTW, the versioned
  WebDataset shard format and its reader, corpus converters and the synthetic corpus SynthTalk.
- `decouple.priors`: audio priors (log-mel, wav2vec 2.0 from a local file, a phoneme-trained
  encoder) and the vision-language emotion prompt prior around open_clip.
- `decouple.encoders`: backbones (a small conv net, ArcFace IResNet), the audio-queried content
  encoder, the emotion encoder, and the CCRL / CERL training modules.
- `decouple.metrics`: decoupling probes (and the field's metrics).
- `decouple.checkpoint`: safe weight files (safetensors or `weights_only` torch files).
"""

__version__ = "0.1.0.dev0"

__all__ = ["__version__"]
