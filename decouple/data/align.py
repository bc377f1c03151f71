"""Dynamic time warping (DTW) between two renditions of the same content.

MEAD records the same sentence in several emotions; the renditions differ in timing, so frame
`i` of one does not say what frame `i` of the other says. A DTW path pairs their frames: it is
the monotone sequence of index pairs `(i, j)` from `(0, 0)` to `(ta - 1, tb - 1)`, moving by
`(1, 0)`, `(0, 1)` or `(1, 1)`, that minimises the summed distance between paired frames. The
shards store it as `align.npy` (see the data-format page) and the parallel batch builders use it
as the content label ("same group, aligned position").

The recursion `D[i, j] = C[i, j] + min(D[i-1, j], D[i, j-1], D[i-1, j-1])` is evaluated one
anti-diagonal at a time (every cell of a diagonal depends only on the two previous diagonals), so
a 500 x 500 problem is about a thousand vectorised numpy steps (milliseconds), and the path is
read back from the accumulated costs.

[dtw][decouple.data.align.dtw] works on any frame features and needs only torch and numpy;
[align_audio][decouple.data.align.align_audio] computes log-mel features framed to the video
(`decouple.data.features`, which needs the `audio` extra) and aligns them.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

if TYPE_CHECKING:
    from decouple.data.features import AudioFeatureConfig
    from decouple.data.io import Audio

__all__ = ["METRICS", "align_audio", "check_path", "dtw", "path_to_index"]

METRICS = ("cosine", "euclidean", "sqeuclidean")
"""Frame distances [dtw][decouple.data.align.dtw] accepts."""

_EPS = 1e-12


def dtw(a: Tensor, b: Tensor, *, metric: str = "cosine", band: float | None = None) -> Tensor:
    """The minimum-cost monotone alignment path between two frame sequences.

    Args:
        a: Frames of the first sequence, `(ta, f)`.
        b: Frames of the second sequence, `(tb, f)` (same feature size `f`).
        metric: Frame distance: `"cosine"` (`1 - cos`, in [0, 2]; an all-zero frame has
            distance 1 to everything), `"euclidean"` or `"sqeuclidean"`.
        band: Sakoe-Chiba band as a fraction of the clips' length, or None for no
            constraint: cell `(i, j)` may be on the path only when the clips' relative
            positions differ by at most `band`, `|i / (ta - 1) - j / (tb - 1)| <= band`. In
            frames of `b` that is a radius `band * (tb - 1)` around the straight line from
            `(0, 0)` to `(ta - 1, tb - 1)`; it is widened to `max(1, (tb - 1) / (ta - 1))`
            frames when smaller, so that a path always exists. Must be in (0, 1].

    Returns:
        The path, `(l, 2)` long on the CPU: column 0 indexes `a`, column 1 indexes `b`. It
        starts at `(0, 0)`, ends at `(ta - 1, tb - 1)`, and every step is `(1, 0)`, `(0, 1)` or
        `(1, 1)`, so `max(ta, tb) <= l <= ta + tb - 1`. Between equal-cost paths the diagonal
        step is preferred, so identical sequences give the diagonal.

    Raises:
        ValueError: If a sequence is not 2-D, is empty or holds non-finite values, if the
            feature sizes differ, or if `metric` or `band` is not valid.

    Examples:
        >>> import torch
        >>> a = torch.tensor([[0.0], [1.0], [2.0]])
        >>> b = torch.tensor([[0.0], [1.0], [1.0], [2.0]])
        >>> dtw(a, b, metric="euclidean").tolist()
        [[0, 0], [1, 1], [1, 2], [2, 3]]
        >>> dtw(a, a).tolist()
        [[0, 0], [1, 1], [2, 2]]
    """
    cost = _distance_matrix(a, b, metric)
    ta, tb = cost.shape
    if band is not None:
        cost = _apply_band(cost, band)
    acc = _accumulate(cost)
    return torch.from_numpy(_backtrack(acc, ta, tb))


def path_to_index(path: Tensor | np.ndarray, length_a: int) -> Tensor:
    """For each frame of `a`, the first frame of `b` the path pairs it with.

    Args:
        path: An alignment path `(l, 2)` from [dtw][decouple.data.align.dtw] (or a stored
            `align.npy`): column 0 indexes `a`, column 1 indexes `b`.
        length_a: Number of frames of `a` (`ta`).

    Returns:
        `(ta,)` long: entry `i` is the smallest `j` with `(i, j)` on the path.

    Raises:
        ValueError: If the path is not `(l, 2)` integers sorted by `a`-index, or does not
            visit every frame `0 .. ta - 1` of `a`.

    Examples:
        >>> import torch
        >>> path = torch.tensor([[0, 0], [0, 1], [1, 2], [2, 2], [2, 3]])
        >>> path_to_index(path, 3).tolist()
        [0, 2, 2]
    """
    p = _as_path_tensor(path)
    if length_a < 1:
        raise ValueError(f"length_a must be >= 1, got {length_a}")
    rows = p[:, 0]
    if p.shape[0] == 0 or bool((rows[1:] < rows[:-1]).any()):
        raise ValueError("path must be non-empty and sorted by its first column (frames of a)")
    first = torch.ones(p.shape[0], dtype=torch.bool)
    first[1:] = rows[1:] != rows[:-1]
    starts = p[first]
    if starts.shape[0] != length_a or not torch.equal(starts[:, 0], torch.arange(length_a)):
        raise ValueError(
            f"path must visit every frame 0..{length_a - 1} of a; it visits "
            f"{starts.shape[0]} distinct frames from {int(rows.min())} to {int(rows.max())}"
        )
    return starts[:, 1].clone()


def check_path(path: Tensor | np.ndarray, length_a: int, length_b: int) -> None:
    """Check that `path` is a valid alignment path between `length_a` and `length_b` frames.

    Valid means: shape `(l, 2)`, an integer dtype, first row `(0, 0)`, last row
    `(length_a - 1, length_b - 1)`, and every step `(1, 0)`, `(0, 1)` or `(1, 1)` (so the
    path is monotone and stays in range). The shard writer and the validator use it for
    `align.npy`.

    Args:
        path: The path to check.
        length_a: Frames of the first sequence (the group's reference for `align.npy`).
        length_b: Frames of the second sequence.

    Raises:
        ValueError: Saying what is wrong and where (the first bad row or step).

    Examples:
        >>> import numpy as np
        >>> check_path(np.array([[0, 0], [1, 1], [1, 2]], dtype=np.int32), 2, 3)
        >>> check_path(np.array([[0, 0], [2, 1]]), 3, 2)
        Traceback (most recent call last):
        ...
        ValueError: step 1 goes from (0, 0) to (2, 1); allowed steps are (1, 0), (0, 1), (1, 1)
    """
    if length_a < 1 or length_b < 1:
        raise ValueError(f"lengths must be >= 1, got {length_a} and {length_b}")
    arr = np.asarray(path.cpu().numpy() if isinstance(path, Tensor) else path)
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] == 0:
        raise ValueError(f"expected a non-empty (l, 2) array, got shape {tuple(arr.shape)}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"expected an integer dtype, got {arr.dtype}")
    arr = arr.astype(np.int64)
    if tuple(arr[0]) != (0, 0):
        raise ValueError(f"path must start at (0, 0), starts at {tuple(arr[0].tolist())}")
    end = (length_a - 1, length_b - 1)
    if tuple(arr[-1].tolist()) != end:
        raise ValueError(f"path must end at {end}, ends at {tuple(arr[-1].tolist())}")
    steps = np.diff(arr, axis=0)
    bad = ~(((steps == 0) | (steps == 1)).all(axis=1) & (steps.sum(axis=1) > 0))
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"step {k + 1} goes from {tuple(arr[k].tolist())} to {tuple(arr[k + 1].tolist())}; "
            "allowed steps are (1, 0), (0, 1), (1, 1)"
        )


def align_audio(
    a: Audio,
    b: Audio,
    num_frames_a: int,
    num_frames_b: int,
    fps: float,
    config: AudioFeatureConfig | None = None,
    *,
    metric: str = "cosine",
    band: float | None = None,
) -> Tensor:
    """DTW path between the video frames of two clips, computed from their audio.

    Each waveform is resampled to `config.sample_rate` if needed and turned into log-mel
    features (`decouple.data.features.log_mel`), normalised per clip (each mel band to zero
    mean and unit variance over time, which removes loudness and channel differences between
    renditions), then framed to the video with `frame_to_video`: video frame `i` is described
    by the audio-feature frames of the `round(sample_rate / hop_length / fps)` hops centred on
    time `i / fps`, flattened. [dtw][decouple.data.align.dtw] then aligns the two sequences.

    Args:
        a: Audio of the first clip (the group's reference when building `align.npy`).
        b: Audio of the second clip.
        num_frames_a: Video frames of the first clip.
        num_frames_b: Video frames of the second clip.
        fps: Video frame rate of both clips.
        config: Feature parameters; `AudioFeatureConfig()` when None.
        metric: Frame distance for [dtw][decouple.data.align.dtw].
        band: Sakoe-Chiba band for [dtw][decouple.data.align.dtw].

    Returns:
        The path `(l, 2)` long from `(0, 0)` to `(num_frames_a - 1, num_frames_b - 1)`.

    Raises:
        ValueError: If a frame count or `fps` is not positive.

    Examples:
        >>> import torch
        >>> from decouple.data.io import Audio
        >>> t = torch.arange(16000) / 16000
        >>> tone = Audio(torch.sin(2 * torch.pi * 440 * t) * torch.linspace(0, 1, 16000), 16000)
        >>> path = align_audio(tone, tone, 25, 25, 25.0)
        >>> path.shape, path[-1].tolist()
        (torch.Size([25, 2]), [24, 24])
    """
    from decouple.data.features import AudioFeatureConfig, frame_to_video, log_mel
    from decouple.data.io import resample_audio

    if config is None:
        config = AudioFeatureConfig()
    if num_frames_a < 1 or num_frames_b < 1:
        raise ValueError(f"frame counts must be >= 1, got {num_frames_a} and {num_frames_b}")
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps}")
    context = max(1, round(config.sample_rate / config.hop_length / fps))
    framed = []
    for audio, frames in ((a, num_frames_a), (b, num_frames_b)):
        wave = audio.waveform
        if audio.sample_rate != config.sample_rate:
            wave = resample_audio(wave, audio.sample_rate, config.sample_rate)
        mel = log_mel(wave, config)  # (a, n_mels)
        mel = (mel - mel.mean(dim=0)) / (mel.std(dim=0, unbiased=False) + 1e-5)
        x = frame_to_video(mel, frames, fps, context=context, config=config)  # (t, context, f)
        framed.append(x.reshape(frames, -1))
    return dtw(framed[0], framed[1], metric=metric, band=band)


# ----------------------------------------------------------------------------- internals


def _as_path_tensor(path: Tensor | np.ndarray) -> Tensor:
    p = torch.as_tensor(path)
    if p.ndim != 2 or p.shape[1] != 2:
        raise ValueError(f"path must have shape (l, 2), got {tuple(p.shape)}")
    if p.dtype.is_floating_point or p.dtype.is_complex or p.dtype == torch.bool:
        raise ValueError(f"path must hold integers, got {p.dtype}")
    return p.to(torch.long).cpu()


def _check_sequence(x: Tensor, name: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor (t, f), got {type(x).__name__}")
    if x.ndim != 2:
        raise ValueError(f"{name} must have shape (t, f), got {tuple(x.shape)}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must hold at least one frame of at least one feature, "
                         f"got shape {tuple(x.shape)}")
    x = x.detach().to(device="cpu", dtype=torch.float64)
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} holds NaN or infinite values")
    return x


def _distance_matrix(a: Tensor, b: Tensor, metric: str) -> np.ndarray:
    """`(ta, tb)` float64 frame distances."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {list(METRICS)}")
    a64 = _check_sequence(a, "a")
    b64 = _check_sequence(b, "b")
    if a64.shape[1] != b64.shape[1]:
        raise ValueError(
            f"a and b must have the same feature size, got {a64.shape[1]} and {b64.shape[1]}"
        )
    if metric == "cosine":
        an = a64 / a64.norm(dim=1, keepdim=True).clamp_min(_EPS)
        bn = b64 / b64.norm(dim=1, keepdim=True).clamp_min(_EPS)
        dist = (1.0 - an @ bn.T).clamp_(0.0, 2.0)
    else:
        dist = torch.cdist(a64, b64, compute_mode="donot_use_mm_for_euclid_dist")
        if metric == "sqeuclidean":
            dist = dist.square()
    return dist.numpy()


def _apply_band(cost: np.ndarray, band: float) -> np.ndarray:
    if not (isinstance(band, (int, float)) and 0.0 < band <= 1.0):
        raise ValueError(f"band must be in (0, 1] or None, got {band!r}")
    ta, tb = cost.shape
    if ta == 1 or tb == 1:
        return cost  # a single path exists
    slope = (tb - 1) / (ta - 1)
    radius = max(band * (tb - 1), slope, 1.0)
    centre = np.arange(ta)[:, None] * slope
    outside = np.abs(np.arange(tb)[None, :] - centre) > radius + 1e-9
    return np.where(outside, np.inf, cost)


def _accumulate(cost: np.ndarray) -> np.ndarray:
    """Accumulated costs in skewed layout: `acc[i + j, i + 1] = D[i, j]`; column 0 is inf."""
    ta, tb = cost.shape
    n_diag = ta + tb - 1
    k = np.arange(n_diag)[:, None]
    i = np.arange(ta)[None, :]
    j = k - i
    valid = (j >= 0) & (j < tb)
    skew = np.full((n_diag, ta), np.inf)
    skew[valid] = cost[np.broadcast_to(i, valid.shape)[valid], j[valid]]

    acc = np.full((n_diag, ta + 1), np.inf)
    acc[0, 1] = skew[0, 0]
    for d in range(1, n_diag):
        lo, hi = max(0, d - tb + 1), min(d, ta - 1)
        up = acc[d - 1, lo : hi + 1]  # (i - 1, j)
        left = acc[d - 1, lo + 1 : hi + 2]  # (i, j - 1)
        best = np.minimum(up, left)
        if d >= 2:
            np.minimum(best, acc[d - 2, lo : hi + 1], out=best)  # (i - 1, j - 1)
        acc[d, lo + 1 : hi + 2] = skew[d, lo : hi + 1] + best
    return acc


def _backtrack(acc: np.ndarray, ta: int, tb: int) -> np.ndarray:
    """Read the optimal path back from the accumulated costs (diagonal first on ties)."""
    i, j = ta - 1, tb - 1
    out = np.empty((ta + tb - 1, 2), dtype=np.int64)
    n = 0
    out[n] = (i, j)
    n += 1
    while i > 0 or j > 0:
        if i == 0:
            j -= 1
        elif j == 0:
            i -= 1
        else:
            diag = acc[i + j - 2, i]
            up = acc[i + j - 1, i]
            left = acc[i + j - 1, i + 1]
            if diag <= up and diag <= left:
                i -= 1
                j -= 1
            elif up <= left:
                i -= 1
            else:
                j -= 1
        out[n] = (i, j)
        n += 1
    return out[:n][::-1].copy()
