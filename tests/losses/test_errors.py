"""Bad input raises ValueError or TypeError with a message naming the offending argument."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from decouple.losses import DecoupledNCE, EmotionAugmentedNCE, EmotionAwareNCE, InfoNCE

from . import naive

ERRORS = (ValueError, TypeError)
N, M, D, K = 6, 5, 4, 3


def _g() -> torch.Generator:
    return torch.Generator().manual_seed(0)


X = naive.randn(N, D, generator=_g())
Y = naive.randn(M, D, generator=torch.Generator().manual_seed(1))
PRIOR = naive.randn(K, D, generator=torch.Generator().manual_seed(2))
LAB = torch.tensor([0, 0, 1, 1, 2, 2])
EMO = torch.tensor([0, 1, 0, 1, 0, 1])
REF_LAB = torch.tensor([0, 1, 2, 0, 1])
REF_EMO = torch.tensor([1, 0, 1, 0, 1])


def with_value(t: Tensor, value: float, row: int = 1, col: int = 2) -> Tensor:
    out = t.clone()
    out[row, col] = value
    return out


# (id, callable, match)
CASES: list[tuple[str, Callable[[], object], str]] = [
    # ---- embeddings rank / sizes
    ("infonce_embeddings_1d", lambda: InfoNCE()(X[0], LAB[:1]), "embeddings"),
    ("infonce_embeddings_3d", lambda: InfoNCE()(X[None], LAB), "embeddings"),
    ("decoupled_embeddings_3d", lambda: DecoupledNCE()(X[None], LAB, EMO), "embeddings"),
    ("aware_embeddings_1d", lambda: EmotionAwareNCE()(X[0], LAB[:1], EMO[:1]), "embeddings"),
    ("augmented_embeddings_3d", lambda: EmotionAugmentedNCE()(X[None], EMO), "embeddings"),
    ("infonce_labels_length", lambda: InfoNCE()(X, LAB[:-1]), "labels"),
    ("decoupled_target_length", lambda: DecoupledNCE()(X, LAB[:-1], EMO), "target_labels"),
    ("decoupled_nuisance_length", lambda: DecoupledNCE()(X, LAB, EMO[:-1]), "nuisance_labels"),
    ("aware_content_length", lambda: EmotionAwareNCE()(X, LAB[:-1], EMO), "content_labels"),
    ("aware_emotion_length", lambda: EmotionAwareNCE()(X, LAB, EMO[:-1]), "emotion_labels"),
    ("augmented_emotion_length", lambda: EmotionAugmentedNCE()(X, EMO[:-1]), "emotion_labels"),
    ("augmented_content_length", lambda: EmotionAugmentedNCE()(X, EMO, LAB[:-1]), "content_labels"),
    ("infonce_labels_2d", lambda: InfoNCE()(X, LAB[:, None]), "labels"),
    (
        "infonce_ref_labels_length",
        lambda: InfoNCE()(X, LAB, ref_emb=Y, ref_labels=REF_LAB[:-1]),
        "ref_labels",
    ),
    (
        "decoupled_ref_target_length",
        lambda: DecoupledNCE()(X, LAB, ref_emb=Y, ref_target_labels=REF_LAB[:-1]),
        "ref_target_labels",
    ),
    # ---- ref_emb without its target labels
    ("infonce_missing_ref_labels", lambda: InfoNCE()(X, LAB, ref_emb=Y), "ref_labels"),
    (
        "decoupled_missing_ref_target",
        lambda: DecoupledNCE()(X, LAB, ref_emb=Y),
        "ref_target_labels",
    ),
    (
        "aware_missing_ref_content",
        lambda: EmotionAwareNCE()(X, LAB, EMO, ref_emb=Y, ref_emotion_labels=REF_EMO),
        "ref_content_labels",
    ),
    (
        "augmented_missing_ref_emotion",
        lambda: EmotionAugmentedNCE()(X, EMO, ref_emb=Y),
        "ref_emotion_labels",
    ),
    # ---- nuisance labels on one side only
    (
        "decoupled_nuisance_anchors_only",
        lambda: DecoupledNCE()(X, LAB, EMO, ref_emb=Y, ref_target_labels=REF_LAB),
        "nuisance_labels",
    ),
    (
        "decoupled_nuisance_keys_only",
        lambda: DecoupledNCE()(
            X, LAB, ref_emb=Y, ref_target_labels=REF_LAB, ref_nuisance_labels=REF_EMO
        ),
        "nuisance_labels",
    ),
    (
        "aware_emotion_anchors_only",
        lambda: EmotionAwareNCE()(X, LAB, EMO, ref_emb=Y, ref_content_labels=REF_LAB),
        "emotion_labels",
    ),
    (
        "augmented_content_anchors_only",
        lambda: EmotionAugmentedNCE()(X, EMO, LAB, ref_emb=Y, ref_emotion_labels=REF_EMO),
        "content_labels",
    ),
    (
        "augmented_content_keys_only",
        lambda: EmotionAugmentedNCE()(
            X, EMO, ref_emb=Y, ref_emotion_labels=REF_EMO, ref_content_labels=REF_LAB
        ),
        "content_labels",
    ),
    # ---- same-nuisance negatives need nuisance labels
    (
        "decoupled_same_nuisance_without_labels",
        lambda: DecoupledNCE(negatives="same_nuisance")(X, LAB),
        "negatives|nuisance_labels",
    ),
    (
        "augmented_same_content_without_labels",
        lambda: EmotionAugmentedNCE(negatives="same_content")(X, EMO),
        "negatives|content_labels",
    ),
    # ---- ref_emb shape
    (
        "infonce_ref_emb_dim",
        lambda: InfoNCE()(X, LAB, ref_emb=Y[:, :-1], ref_labels=REF_LAB),
        "ref_emb",
    ),
    (
        "decoupled_ref_emb_dim",
        lambda: DecoupledNCE()(X, LAB, ref_emb=Y[:, :-1], ref_target_labels=REF_LAB),
        "ref_emb",
    ),
    (
        "infonce_ref_emb_3d",
        lambda: InfoNCE()(X, LAB, ref_emb=Y[None], ref_labels=REF_LAB),
        "ref_emb",
    ),
    # ---- NaN / inf
    ("infonce_nan_embeddings", lambda: InfoNCE()(with_value(X, float("nan")), LAB), "embeddings"),
    ("infonce_inf_embeddings", lambda: InfoNCE()(with_value(X, float("inf")), LAB), "embeddings"),
    (
        "infonce_neg_inf_embeddings",
        lambda: InfoNCE()(with_value(X, float("-inf")), LAB),
        "embeddings",
    ),
    (
        "aware_nan_embeddings",
        lambda: EmotionAwareNCE()(with_value(X, float("nan")), LAB, EMO),
        "embeddings",
    ),
    (
        "infonce_nan_ref_emb",
        lambda: InfoNCE()(X, LAB, ref_emb=with_value(Y, float("nan")), ref_labels=REF_LAB),
        "ref_emb",
    ),
    (
        "infonce_inf_ref_emb",
        lambda: InfoNCE()(X, LAB, ref_emb=with_value(Y, float("inf")), ref_labels=REF_LAB),
        "ref_emb",
    ),
    (
        "augmented_nan_ref_emb",
        lambda: EmotionAugmentedNCE()(
            X, EMO, ref_emb=with_value(Y, float("nan")), ref_emotion_labels=REF_EMO
        ),
        "ref_emb",
    ),
    (
        "chunked_nan_embeddings",
        lambda: InfoNCE(chunk_size=2)(with_value(X, float("nan")), LAB),
        "embeddings",
    ),
    # ---- float labels
    ("infonce_float_labels", lambda: InfoNCE()(X, LAB.double()), "labels"),
    ("decoupled_float_nuisance", lambda: DecoupledNCE()(X, LAB, EMO.float()), "nuisance_labels"),
    ("aware_float_content", lambda: EmotionAwareNCE()(X, LAB.float(), EMO), "content_labels"),
    ("augmented_float_emotion", lambda: EmotionAugmentedNCE()(X, EMO.float()), "emotion_labels"),
    (
        "infonce_float_ref_labels",
        lambda: InfoNCE()(X, LAB, ref_emb=Y, ref_labels=REF_LAB.float()),
        "ref_labels",
    ),
    # ---- prior
    (
        "prior_label_too_large",
        lambda: EmotionAugmentedNCE()(X, torch.tensor([0, 1, 2, 3, 0, 1]), prior=PRIOR),
        "emotion_labels|prior",
    ),
    (
        "prior_label_negative",
        lambda: EmotionAugmentedNCE()(X, torch.tensor([0, 1, -1, 2, 0, 1]), prior=PRIOR),
        "emotion_labels|prior",
    ),
    (
        "prior_feature_dim",
        lambda: EmotionAugmentedNCE()(X, EMO, prior=PRIOR[:, :-1]),
        "prior",
    ),
    ("prior_1d", lambda: EmotionAugmentedNCE()(X, EMO, prior=PRIOR[0]), "prior"),
    # ---- explicit masks
    (
        "mask_wrong_shape",
        lambda: InfoNCE()(
            X,
            pos_mask=torch.zeros(N, N - 1, dtype=torch.bool),
            neg_mask=torch.ones(N, N - 1, dtype=torch.bool),
        ),
        "pos_mask|neg_mask",
    ),
    (
        "neg_mask_wrong_shape",
        lambda: InfoNCE()(
            X,
            pos_mask=torch.eye(N, dtype=torch.bool).roll(1, 1),
            neg_mask=torch.zeros(N, N + 1, dtype=torch.bool),
        ),
        "neg_mask",
    ),
    (
        "mask_wrong_shape_with_ref",
        lambda: InfoNCE()(
            X,
            pos_mask=torch.zeros(N, N, dtype=torch.bool),
            neg_mask=torch.ones(N, N, dtype=torch.bool),
            ref_emb=Y,
        ),
        "pos_mask|neg_mask",
    ),
    (
        "masks_overlap",
        lambda: InfoNCE()(
            X,
            pos_mask=torch.eye(N, dtype=torch.bool).roll(1, 1),
            neg_mask=~torch.eye(N, dtype=torch.bool),
        ),
        "pos_mask|neg_mask",
    ),
    (
        "only_pos_mask",
        lambda: InfoNCE()(X, pos_mask=torch.eye(N, dtype=torch.bool).roll(1, 1)),
        "neg_mask",
    ),
    ("neither_labels_nor_masks", lambda: InfoNCE()(X), "labels|pos_mask"),
    # ---- constructor strings
    ("infonce_reduction", lambda: InfoNCE(reduction="avg"), "reduction"),
    ("decoupled_reduction", lambda: DecoupledNCE(reduction="mean "), "reduction"),
    ("decoupled_negatives", lambda: DecoupledNCE(negatives="same_emotion"), "negatives"),
    ("aware_negatives", lambda: EmotionAwareNCE(negatives="same_nuisance"), "negatives"),
    ("aware_reduction", lambda: EmotionAwareNCE(reduction="max"), "reduction"),
    ("augmented_negatives", lambda: EmotionAugmentedNCE(negatives="same_emotion"), "negatives"),
    ("augmented_reduction", lambda: EmotionAugmentedNCE(reduction=None), "reduction"),
]


@pytest.mark.parametrize(("call", "match"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_names_the_argument(call: Callable[[], object], match: str) -> None:
    with pytest.raises(ERRORS, match=match):
        call()


def test_valid_inputs_do_not_raise() -> None:
    """The fixtures above are valid apart from the one thing each case breaks."""
    InfoNCE()(X, LAB)
    InfoNCE()(X, LAB, ref_emb=Y, ref_labels=REF_LAB)
    DecoupledNCE()(X, LAB, EMO, ref_emb=Y, ref_target_labels=REF_LAB, ref_nuisance_labels=REF_EMO)
    DecoupledNCE(negatives="same_nuisance")(X, LAB, EMO)
    EmotionAwareNCE()(
        X, LAB, EMO, ref_emb=Y, ref_content_labels=REF_LAB, ref_emotion_labels=REF_EMO
    )
    EmotionAugmentedNCE()(X, EMO, LAB, prior=PRIOR)
    EmotionAugmentedNCE(negatives="same_content")(X, EMO, LAB)
    EmotionAugmentedNCE()(X, EMO, ref_emb=Y, ref_emotion_labels=REF_EMO)
    InfoNCE()(
        X,
        pos_mask=torch.eye(N, dtype=torch.bool).roll(1, 1),
        neg_mask=torch.eye(N, dtype=torch.bool).roll(2, 1),
    )
    InfoNCE(chunk_size=2)(X, LAB)
