"""Feature similarities between paired frames, and the emotion accuracy of a classifier.

One core, [feature_similarity][decouple.metrics.similarity.feature_similarity]: the mean over
paired frames of the cosine similarity of their embeddings,

    sim = 1/n sum_i cos(embed(a_i), embed(b_i)),   cos(u, v) = <u, v> / (|u| |v|),

computed in float64. Two named uses, which differ only in the model and in what they mean:

- [emotion_feature_similarity][decouple.metrics.similarity.emotion_feature_similarity] with an
  *emotion-recognition* feature (the protocol's EfficientFace, AffectNet-7): does the
  generated face show the emotion of the real one? This is what the SPFEM papers call
  **"CSIM"**; it is *not* an identity similarity.
- [identity_similarity][decouple.metrics.similarity.identity_similarity] with a
  *face-recognition* embedding (ArcFace, or dlib's offline 128-d descriptor): is the generated
  face still the same person as the source?

[emotion_accuracy][decouple.metrics.similarity.emotion_accuracy] is the fraction of frames an
independent emotion classifier assigns to the target emotion (argmax of its logits).

All run the model under `torch.no_grad()`, in eval mode (restored afterwards), on its own
device; frames are one `(n, 3, h, w)` tensor or an iterable of batches (RGB, uint8 or float in
[0, 1]).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from decouple.metrics._batching import check_batch_size, inference, iter_embeddings

__all__ = [
    "emotion_accuracy",
    "emotion_feature_similarity",
    "feature_similarity",
    "identity_similarity",
]


def _paired_rows(
    first: Iterator[Tensor], second: Iterator[Tensor], names: tuple[str, str], where: str
) -> Iterator[tuple[Tensor, Tensor, int]]:
    """Zip two streams of (b, d) row blocks of any block sizes: equal-length pieces + offset."""
    buf = [torch.empty(0, 0, dtype=torch.float64), torch.empty(0, 0, dtype=torch.float64)]
    streams = (first, second)
    done = [False, False]
    seen = 0
    while True:
        for k in (0, 1):
            while buf[k].shape[0] == 0 and not done[k]:
                block = next(streams[k], None)
                if block is None:
                    done[k] = True
                else:
                    buf[k] = block
        if buf[0].shape[0] == 0 or buf[1].shape[0] == 0:
            break
        m = min(buf[0].shape[0], buf[1].shape[0])
        yield buf[0][:m], buf[1][:m], seen
        buf = [buf[0][m:], buf[1][m:]]
        seen += m
    if buf[0].shape[0] or buf[1].shape[0]:
        short, long_ = (names[1], names[0]) if buf[0].shape[0] else (names[0], names[1])
        raise ValueError(
            f"{where}: {names[0]} and {names[1]} must have the same number of frames (they "
            f"are paired frame by frame); {short} ended after {seen} frames, {long_} has more"
        )


def _count(frames: object) -> int | None:
    return int(frames.shape[0]) if isinstance(frames, Tensor) else None


_PAIRS = ("paired", "all")


def _unit_rows(z: Tensor, name: str, offset: int, where: str) -> Tensor:
    norms = z.norm(dim=1)
    zero = (norms == 0).nonzero().flatten()
    if zero.numel():
        raise ValueError(
            f"{where}: embed returned a zero feature vector for {name} frame "
            f"{offset + int(zero[0])}: the cosine similarity is undefined"
        )
    return z / norms[:, None]


def _mean_unit_row(rows: Iterator[Tensor], name: str, where: str) -> tuple[Tensor, int]:
    total: Tensor | None = None
    n = 0
    for z in rows:
        u = _unit_rows(z, name, n, where).sum(dim=0)
        total = u if total is None else total + u
        n += int(z.shape[0])
    if total is None:
        raise ValueError(f"{where}: {name} holds no frames")
    return total / n, n


def _similarity(
    a: Tensor | Iterable[Tensor],
    b: Tensor | Iterable[Tensor],
    embed: Callable[[Tensor], Tensor],
    batch_size: int,
    where: str,
    names: tuple[str, str],
    pairs: str = "paired",
) -> float:
    check_batch_size(batch_size, where)
    if pairs not in _PAIRS:
        raise ValueError(f"{where}: pairs must be one of {_PAIRS}, got {pairs!r}")
    if pairs == "all":  # mean over every (a_i, b_j) = <mean unit row of a, mean unit row of b>
        with inference(embed):
            rows_a = iter_embeddings(a, embed, batch_size=batch_size, where=where, what=names[0])
            mean_a, _ = _mean_unit_row(rows_a, names[0], where)
            rows_b = iter_embeddings(b, embed, batch_size=batch_size, where=where, what=names[1])
            mean_b, _ = _mean_unit_row(rows_b, names[1], where)
        if mean_a.shape != mean_b.shape:
            raise ValueError(f"{where}: embed gave {mean_a.shape[0]} features for {names[0]} "
                             f"and {mean_b.shape[0]} for {names[1]}")  # fmt: skip
        return float((mean_a.double() * mean_b.double()).sum().clamp(-1.0, 1.0))
    n_a, n_b = _count(a), _count(b)
    if n_a is not None and n_b is not None and n_a != n_b:
        raise ValueError(
            f"{where}: {names[0]} and {names[1]} must have the same number of frames (they "
            f"are paired frame by frame), got {n_a} and {n_b}"
        )
    total, n = 0.0, 0
    with inference(embed):  # one plain block around both streams (see _batching)
        rows_a = iter_embeddings(a, embed, batch_size=batch_size, where=where, what=names[0])
        rows_b = iter_embeddings(b, embed, batch_size=batch_size, where=where, what=names[1])
        for za, zb, offset in _paired_rows(rows_a, rows_b, names, where):
            if za.shape[1] != zb.shape[1]:
                raise ValueError(f"{where}: embed gave {za.shape[1]} features for {names[0]} "
                                 f"and {zb.shape[1]} for {names[1]}")  # fmt: skip
            ua = _unit_rows(za, names[0], offset, where)
            ub = _unit_rows(zb, names[1], offset, where)
            cos = (ua * ub).sum(dim=1).clamp(-1.0, 1.0)
            total += float(cos.sum())
            n += int(cos.numel())
    if n == 0:
        raise ValueError(f"{where}: {names[0]} and {names[1]} hold no frames")
    return total / n


def feature_similarity(
    a: Tensor | Iterable[Tensor],
    b: Tensor | Iterable[Tensor],
    embed: Callable[[Tensor], Tensor],
    *,
    batch_size: int = 64,
    pairs: str = "paired",
) -> float:
    """Mean over paired frames of the cosine similarity of their embeddings (float64).

    Frame i of `a` is compared with frame i of `b` only; the two may be streamed in batches
    of different sizes.

    Args:
        a: (n, 3, h, w) frames, or an iterable of (b, 3, h, w) batches; RGB, uint8 0..255 or
            float in [0, 1].
        b: The paired frames, as many as `a`.
        embed: Any callable `(b, 3, h, w) -> (b, d)` (an `nn.Module`, a bound method such as
            `model.features`, or a function).
        batch_size: Largest number of frames per call of `embed`.
        pairs: "paired": frame i against frame i (same counts); "all": the mean over every
            (first, second) pair, which needs no alignment or equal counts (the SPFEM authors'
            CSIM script; it equals the dot product of the two sets' mean unit features).

    Returns:
        The mean cosine similarity, in [-1, 1].

    Raises:
        ValueError: If the frame counts differ, there are no frames, `embed` does not return
            one finite row per frame, or a row is zero (cosine undefined).
        decouple.encoders.ImageSpecError: If frames break the frame convention.

    Examples:
        >>> import torch
        >>> frames = torch.rand(6, 3, 8, 8)
        >>> pooled = lambda x: x.mean((2, 3))
        >>> round(feature_similarity(frames, frames, pooled), 12)
        1.0
        >>> round(feature_similarity(frames, [frames[:4], frames[4:]], pooled), 12)
        1.0
    """
    return _similarity(a, b, embed, batch_size, "feature_similarity", ("a", "b"), pairs)


def emotion_feature_similarity(
    real: Tensor | Iterable[Tensor],
    generated: Tensor | Iterable[Tensor],
    embed: Callable[[Tensor], Tensor],
    *,
    batch_size: int = 64,
    pairs: str = "paired",
) -> float:
    """The SPFEM papers' "CSIM": cosine similarity of *emotion* features, real vs generated.

    `feature_similarity` with an emotion-recognition feature as `embed`: the protocol uses
    EfficientFace trained on AffectNet-7 and its 1024-d penultimate feature
    (`decouple.encoders.efficientface.efficientface(weights=path).features`). Despite the
    name, this measures how close the generated face's *emotion* is to the real one's, not
    identity (see `identity_similarity`). Frames are paired: real frame i against generated
    frame i (the authors' script averages over all real x generated pairs instead; see the
    docs page).

    Args:
        real: (n, 3, h, w) real frames showing the target emotion, or an iterable of
            batches; RGB, uint8 or float in [0, 1].
        generated: The paired generated frames, as many as `real`.
        embed: An emotion-feature model `(b, 3, h, w) -> (b, d)`.
        batch_size: Largest number of frames per call of `embed`.
        pairs: "paired": frame i against frame i (same counts); "all": the mean over every
            (first, second) pair, which needs no alignment or equal counts (the SPFEM authors'
            CSIM script; it equals the dot product of the two sets' mean unit features).

    Returns:
        The mean cosine similarity (higher is better).

    Raises:
        ValueError: As `feature_similarity`.

    Examples:
        >>> import torch
        >>> real = torch.rand(4, 3, 8, 8)
        >>> colour = lambda x: x.mean((2, 3))  # stand-in for an emotion feature
        >>> emotion_feature_similarity(real, real.flip(0), colour) < 1.0
        True
    """
    return _similarity(real, generated, embed, batch_size, "emotion_feature_similarity",
                       ("real", "generated"), pairs)  # fmt: skip


def identity_similarity(
    source: Tensor | Iterable[Tensor],
    generated: Tensor | Iterable[Tensor],
    embed: Callable[[Tensor], Tensor],
    *,
    batch_size: int = 64,
    pairs: str = "paired",
) -> float:
    """Identity similarity: cosine of face-recognition embeddings, source vs generated.

    `feature_similarity` with a face-recognition embedding as `embed`: an ArcFace
    [IResNet][decouple.encoders.IResNet] built with `stop_at="embedding"` (its `embed`
    method), or dlib's 128-d descriptor (`decouple.encoders.dlib_face.DlibFaceEmbedder`, fully
    offline). Source frame i (the person to keep) against generated frame i.

    Args:
        source: (n, 3, h, w) source frames, or an iterable of batches; RGB, uint8 or float in
            [0, 1].
        generated: The paired generated frames, as many as `source`.
        embed: A face-recognition model `(b, 3, h, w) -> (b, d)`.
        batch_size: Largest number of frames per call of `embed`.
        pairs: "paired": frame i against frame i (same counts); "all": the mean over every
            (first, second) pair, which needs no alignment or equal counts (the SPFEM authors'
            CSIM script; it equals the dot product of the two sets' mean unit features).

    Returns:
        The mean cosine similarity (higher is better; 1 for the same embedding).

    Raises:
        ValueError: As `feature_similarity`.

    Examples:
        >>> import torch
        >>> from decouple.encoders import IResNet
        >>> arcface = IResNet((1, 1, 1, 1), stop_at="embedding", num_features=8)  # tiny, random
        >>> source = torch.randint(0, 256, (2, 3, 112, 112), dtype=torch.uint8)
        >>> round(identity_similarity(source, source.clone(), arcface.embed), 6)
        1.0
    """
    return _similarity(source, generated, embed, batch_size, "identity_similarity",
                       ("source", "generated"), pairs)  # fmt: skip


def _targets(targets: Tensor | Sequence[int], where: str) -> Tensor:
    if isinstance(targets, Tensor):
        t = targets.detach().to("cpu")
    elif isinstance(targets, np.ndarray):
        t = torch.from_numpy(targets)
    elif isinstance(targets, Sequence) and not isinstance(targets, (str, bytes)):
        values = list(targets)
        try:
            t = torch.tensor(values) if values else torch.empty(0, dtype=torch.long)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(f"{where}: targets must be class indices (ints), got "
                            f"{values[:5]!r}...") from err  # fmt: skip
    else:
        raise TypeError(f"{where}: targets must be a tensor or a sequence of class indices, "
                        f"got {type(targets).__name__}")  # fmt: skip
    if t.dim() != 1:
        raise ValueError(f"{where}: targets must be (n,) class indices, got shape "
                         f"{tuple(t.shape)}")  # fmt: skip
    if t.is_floating_point() or t.dtype == torch.bool or t.is_complex():
        raise TypeError(f"{where}: targets must be integer class indices, got {t.dtype}")
    if t.numel() and int(t.min()) < 0:
        raise ValueError(f"{where}: targets must be >= 0, got {int(t.min())}")
    return t.long()


def emotion_accuracy(
    classifier: Callable[[Tensor], Tensor],
    frames: Tensor | Iterable[Tensor],
    targets: Tensor | Sequence[int],
    *,
    batch_size: int = 64,
) -> float:
    """Fraction of frames whose argmax logit is the target emotion.

    The classifier should be independent of the generator (not one of its losses); its class
    order is its own (e.g. `EfficientFace.emotion_names`, or the SynthTalk evaluators'
    `emotion_names`): map the target emotions to its indices first. Ties go to the lowest
    index (`torch.argmax`).

    Args:
        classifier: A callable `(b, 3, h, w) -> (b, C)` logits (or probabilities).
        frames: (n, 3, h, w) frames, or an iterable of batches; RGB, uint8 or float in [0, 1].
        targets: (n,) target class indices in [0, C), one per frame.
        batch_size: Largest number of frames per call.

    Returns:
        The accuracy in [0, 1].

    Raises:
        ValueError: If the number of frames and targets differ, a target is out of range,
            there are no frames, or the classifier's output is not one finite row per frame.
        TypeError: If targets are not integer class indices.

    Examples:
        >>> import torch
        >>> frames = torch.zeros(4, 3, 8, 8); frames[:2, 0] = 1.0  # 2 red frames, 2 black
        >>> redness = lambda x: torch.stack([1 - x[:, 0].mean((1, 2)), x[:, 0].mean((1, 2))], 1)
        >>> emotion_accuracy(redness, frames, [1, 1, 0, 1])  # classes: 0 black, 1 red
        0.75
    """
    where = "emotion_accuracy"
    check_batch_size(batch_size, where)
    t = _targets(targets, where)
    n_frames = _count(frames)
    if n_frames is not None and n_frames != t.numel():
        raise ValueError(
            f"{where}: need one target per frame, got {n_frames} frames and {t.numel()} targets"
        )
    correct, seen = 0, 0
    with inference(classifier):
        for logits in iter_embeddings(frames, classifier, batch_size=batch_size, where=where,
                                      name="classifier"):  # fmt: skip
            b, classes = logits.shape
            if seen + b > t.numel():
                raise ValueError(f"{where}: more frames than the {t.numel()} targets")
            target = t[seen : seen + b]
            if int(target.max()) >= classes:
                raise ValueError(
                    f"{where}: target {int(target.max())} is out of range for a classifier "
                    f"with {classes} classes (0..{classes - 1})"
                )
            correct += int((logits.argmax(dim=1) == target).sum())
            seen += b
    if seen == 0:
        raise ValueError(f"{where}: no frames given")
    if seen != t.numel():
        raise ValueError(f"{where}: need one target per frame, got {seen} frames and "
                         f"{t.numel()} targets")  # fmt: skip
    return correct / seen
