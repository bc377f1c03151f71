"""`project_to_prior`: embeddings read through a prior's anchors (a soft nearest emotion).

An emotion encoder trained against a prior (CERL) puts a clip's embedding near its emotion's
anchor, but not on it: on held-out SynthTalk speakers the demo's encoder gives a mean cosine
of 0.77 to the right anchor and 0.58 to the closest other one. A model conditioned on codes
(the SPFEM generator) that learnt from anchors (label and text codes) meets such an embedding
off the set it was trained on. Reading the embedding through the anchors,

    p = softmax(cos(e, a_k) / tau over k),    code = normalize(sum_k p_k a_k),

puts the code on the anchors' span: at a small temperature the nearest anchor, at a large one
their mean; in between a mixture that keeps how sure the encoder is.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["project_to_prior"]


def project_to_prior(embeddings: Tensor, anchors: Tensor, temperature: float) -> Tensor:
    """Embeddings as softmax-weighted, renormalised mixtures of a prior's anchors.

    Args:
        embeddings: (..., D) embeddings (normalised inside).
        anchors: (K, D) the prior's anchors (e.g.
            [EmotionPromptPrior.prior][decouple.priors.EmotionPromptPrior.prior]),
            normalised inside.
        temperature: Softmax temperature over the cosines (> 0): the one the encoder was
            trained with against the anchors (CERL's) keeps its confidence.

    Returns:
        (..., D) unit-norm codes, in the embeddings' dtype.

    Raises:
        ValueError: A temperature that is not > 0, or mismatched dimensions.

    Examples:
        >>> anchors = torch.eye(3)
        >>> code = project_to_prior(torch.tensor([[0.9, 0.1, 0.0]]), anchors, 0.01)
        >>> torch.allclose(code, torch.tensor([[1.0, 0.0, 0.0]]), atol=1e-4)
        True
    """
    if not temperature > 0:
        raise ValueError(f"project_to_prior: temperature must be > 0, got {temperature}")
    if anchors.dim() != 2 or embeddings.shape[-1] != anchors.shape[-1]:
        raise ValueError(f"project_to_prior: embeddings (..., D) and anchors (K, D) expected, "
                         f"got {tuple(embeddings.shape)} and {tuple(anchors.shape)}")  # fmt: skip
    e = torch.nn.functional.normalize(embeddings.float(), dim=-1)
    a = torch.nn.functional.normalize(anchors.float().to(e.device), dim=-1)
    weights = torch.softmax(e @ a.T / temperature, dim=-1)
    return torch.nn.functional.normalize(weights @ a, dim=-1).to(embeddings.dtype)
