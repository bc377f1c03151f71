"""SynthTalk renderer: determinism, landmarks against the drawing, mouth geometry, blinks,
anti-aliasing, sizes, head motion, emotions separable on pixels of held-out speakers, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from decouple.data.registry import MEAD
from decouple.data.synthtalk.expressions import EXPRESSION_PARAMS, expression
from decouple.data.synthtalk.nuisance import nuisance_tracks, still_nuisance
from decouple.data.synthtalk.render import (
    MOUTH_GAP,
    RENDER_SIZES,
    ZOOM,
    render_frames,
    render_landmarks,
)
from decouple.data.synthtalk.speakers import sample_speakers, split_speakers

K = len(EXPRESSION_PARAMS)
P = {name: i for i, name in enumerate(EXPRESSION_PARAMS)}
SPEAKERS = sample_speakers(8, seed=0)
LIPS_INNER_UPPER, LIPS_INNER_LOWER = [61, 62, 63], [67, 66, 65]


def level(emotion: str) -> int:
    return 1 if emotion == "neutral" else 3


def random_mouth(t: int, seed: int, *, lip_shape: bool = True) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = np.stack([rng.uniform(0, 1, t), rng.uniform(-1, 1, t), rng.uniform(0, 1, t),
                  rng.uniform(-1, 1, t) if lip_shape else np.zeros(t)], axis=1)
    return m.astype(np.float32)


def pure(**actions: float) -> np.ndarray:
    v = np.zeros(K, np.float32)
    for name, value in actions.items():
        v[P[name]] = value
    return v


def test_shapes_determinism_chunks_and_landmarks_only() -> None:
    sp = SPEAKERS[1]
    m = random_mouth(9, 0)
    nui = nuisance_tracks(9, 25.0, 3)
    a = render_frames(sp, expression("fear", 2, sp), m, nui)
    b = render_frames(sp, expression("fear", 2, sp), torch.from_numpy(m), nui, chunk=4)
    c = render_frames(sp, expression("fear", 2, sp), m, nui, threads=None)
    assert a.frames.shape == (9, 3, 64, 64) and a.frames.dtype == torch.uint8
    assert a.landmarks.shape == (9, 68, 2) and a.landmarks.dtype == np.float32
    for other in (b, c):
        assert torch.equal(a.frames, other.frames)
        np.testing.assert_array_equal(a.landmarks, other.landmarks)
    np.testing.assert_array_equal(render_landmarks(sp, expression("fear", 2, sp), m, nui),
                                  a.landmarks)
    d = render_frames(SPEAKERS[2], expression("fear", 2, SPEAKERS[2]), m, nui)
    assert (a.frames.float() - d.frames.float()).abs().mean() > 10  # another identity
    e = render_frames(sp, expression("fear", 2, sp), m, nuisance_tracks(9, 25.0, 4))
    assert not torch.equal(a.frames, e.frames)  # other nuisance seed


def test_threads_setting_is_restored() -> None:
    before = torch.get_num_threads()
    other = 2 if before == 1 else 1
    render_frames(SPEAKERS[0], expression("sad", 1), random_mouth(2, 1), threads=other)
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("sp", SPEAKERS, ids=lambda s: s.name)
def test_landmarks_inside_frame_and_in_the_right_regions(sp) -> None:
    for emotion in MEAD.names:
        t = 6
        lm = render_frames(sp, expression(emotion, level(emotion), sp), random_mouth(t, 2),
                           nuisance_tracks(t, 25.0, 5)).landmarks
        assert (lm >= 0).all() and (lm <= 63).all()
        y = lm[..., 1]
        x = lm[..., 0]
        brows, eyes = y[:, 17:27].mean(1), y[:, 36:48].mean(1)
        assert (brows < eyes).all()
        assert (y[:, 36:48].max(1) < y[:, 30]).all()  # eyes above the nose tip
        assert (y[:, 30] < y[:, 51]).all()  # nose tip above the upper lip
        assert (y[:, 51] <= y[:, 62] + 1e-4).all() and (y[:, 66] <= y[:, 57] + 1e-4).all()
        assert (y[:, 57] < y[:, 8]).all()  # lower lip above the chin
        assert (y[:, 8] >= y[:, :17].max(1) - 1e-4).all()  # chin is the lowest jaw point
        assert (x[:, 36] < x[:, 39]).all() and (x[:, 39] < x[:, 42]).all()
        assert (x[:, 42] < x[:, 45]).all() and (x[:, 48] < x[:, 54]).all()
        assert (x[:, 0] < x[:, 8]).all() and (x[:, 8] < x[:, 16]).all()
        assert (x[:, 39] < x[:, 30]).all() and (x[:, 30] < x[:, 42]).all()


def test_landmarks_sit_on_the_drawn_features() -> None:
    sp = SPEAKERS[0]
    m = np.array([[0.8, 0.0, 0.0, 0.0]], np.float32)
    out = render_frames(sp, expression("neutral", 1), m, size=256)
    img = out.frames[0].permute(1, 2, 0).numpy().astype(float)
    lm = out.landmarks[0]

    def colour(p: np.ndarray) -> np.ndarray:
        return img[round(float(p[1])), round(float(p[0]))]

    skin = np.array(sp.skin) * 255
    lips = np.array(sp.lips) * 255
    # inside the open mouth (between 62 and 66, below the upper teeth): the dark inner mouth
    inner = colour(lm[62] + np.array([0.0, 0.75]) * (lm[66] - lm[62]))
    np.testing.assert_allclose(inner, np.array([0.30, 0.08, 0.10]) * 255, atol=3)
    # between the outer and inner upper lip (51 and 62): lip colour
    np.testing.assert_allclose(colour(0.5 * (lm[51] + lm[62])), lips, atol=3)
    # just outside the outer lips: skin
    np.testing.assert_allclose(colour(lm[57] + np.array([0.0, 6.0])), skin, atol=3)
    # the eye centres (between the lids): iris or pupil, far from skin
    for ids in ([37, 38, 40, 41], [43, 44, 46, 47]):
        centre = lm[ids].mean(0)
        assert np.abs(colour(centre) - skin).max() > 60
    # just outside the jaw outline: not skin; just inside: skin
    centre = np.array([127.5, lm[30][1]])
    for k in (2, 8, 14):
        direction = (lm[k] - centre) / np.linalg.norm(lm[k] - centre)
        np.testing.assert_allclose(colour(lm[k] - 6 * direction), skin, atol=3)
        assert np.abs(colour(lm[k] + 4 * direction) - skin).max() > 10


@pytest.mark.parametrize("size", RENDER_SIZES)
def test_closed_mouth_touches_and_open_mouth_gap_is_documented(size: int) -> None:
    sp = SPEAKERS[3]
    m = np.array([[0.0, 0.0, 0.0, -1.0], [0.7, 0.3, 0.2, -1.0], [0.0, 0.0, 0.0, 0.0],
                  [1.0, 0.0, 0.0, 0.0], [0.5, 0.0, 0.0, 0.0]], np.float32)
    lm = render_landmarks(sp, expression("neutral", 1), m, size=size)
    for i in range(3):  # lips closed: upper and lower inner lip landmarks coincide
        np.testing.assert_allclose(lm[i, LIPS_INNER_UPPER], lm[i, LIPS_INNER_LOWER], atol=1e-4)
        assert np.abs(lm[i, 64] - lm[i, 60]).max() > 0.1 * size  # but the mouth has a width
    gap = MOUTH_GAP * ZOOM * size
    np.testing.assert_allclose(lm[3, 66] - lm[3, 62], [0.0, gap], atol=1e-3)
    np.testing.assert_allclose(lm[4, 66] - lm[4, 62], [0.0, gap / 2], atol=1e-3)
    # the opening splits 0.3 / 0.7 between the upper and lower lip
    np.testing.assert_allclose(lm[3, 62, 1] - lm[2, 62, 1], -0.3 * gap, atol=1e-3)
    np.testing.assert_allclose(lm[3, 66, 1] - lm[2, 66, 1], 0.7 * gap, atol=1e-3)


def test_corner_actions_move_only_the_corners_by_the_documented_amount() -> None:
    sp = SPEAKERS[4]
    m = random_mouth(12, 7)
    scale = ZOOM * 64 * sp.mouth_width
    base = render_landmarks(sp, pure(), m)
    pulled = render_landmarks(sp, pure(lip_corner_pull=0.8), m)
    centre = [51, 57, 62, 66]
    np.testing.assert_allclose(pulled[:, centre], base[:, centre], atol=1e-5)
    d = pulled - base
    np.testing.assert_allclose(d[:, 48], np.tile([-0.12 * 0.8, -0.42 * 0.8], (12, 1)) * scale,
                               atol=1e-4)  # left corner: out (left) and up
    np.testing.assert_allclose(d[:, 54], np.tile([0.12 * 0.8, -0.42 * 0.8], (12, 1)) * scale,
                               atol=1e-4)
    np.testing.assert_allclose(pulled[:, :48], base[:, :48], atol=1e-5)  # nothing else moves
    # contempt-like: all of the pull on the image-right corner
    one_sided = render_landmarks(sp, pure(lip_corner_pull=0.5, lip_corner_asym=1.0), m)
    np.testing.assert_allclose(one_sided[:, 48], base[:, 48], atol=1e-5)
    np.testing.assert_allclose(one_sided[:, 54] - base[:, 54],
                               np.tile([0.12, -0.42], (12, 1)) * scale, atol=1e-4)
    depressed = render_landmarks(sp, pure(lip_corner_depress=1.0), m)
    np.testing.assert_allclose(depressed[:, centre], base[:, centre], atol=1e-5)
    assert (depressed[:, [48, 54], 1] - base[:, [48, 54], 1] > 0.3 * scale).all()  # down


def test_same_mouth_track_two_emotions() -> None:
    """Happy vs neutral on one mouth track: expression parameters differ; the mouth landmarks
    differ by the documented corner and jaw terms only; pixels differ where happy acts."""
    sp = SPEAKERS[5]
    t = 10
    m = random_mouth(t, 8, lip_shape=False)
    e_n, e_h = expression("neutral", 1, sp), expression("happy", 3, sp)
    assert np.abs(e_h - e_n).max() > 0.5
    n = render_frames(sp, e_n, m)
    h = render_frames(sp, e_h, m)
    jaw, pull = e_h[P["jaw"]], e_h[P["lip_corner_pull"]]
    px = ZOOM * 64
    dgap = MOUTH_GAP * (np.clip(m[:, 0] + 0.6 * jaw, 0, 1.6) - np.clip(m[:, 0], 0, 1.6)) * px
    d = h.landmarks - n.landmarks
    np.testing.assert_allclose(d[:, 62], np.stack([0 * dgap, -0.3 * dgap], 1), atol=1e-4)
    np.testing.assert_allclose(d[:, 66], np.stack([0 * dgap, 0.7 * dgap], 1), atol=1e-4)
    np.testing.assert_allclose(d[:, 51, 1], -0.3 * dgap, atol=1e-4)  # lips ride on the opening
    np.testing.assert_allclose(d[:, 57, 1], 0.7 * dgap, atol=1e-4)
    corner_up = 0.42 * pull * sp.mouth_width * px
    np.testing.assert_allclose(d[:, [48, 54], 1], -np.tile(corner_up, (t, 2)), atol=1e-4)
    np.testing.assert_allclose(d[:, 17:27], 0, atol=1e-5)  # happy does not move the brows
    assert np.abs(d[:, 36:48, 1]).max() > 0.3  # but squints the eyes (cheek raise)
    # pixels: the cheeks change, the hair and background above the brows do not
    fn, fh = n.frames.float(), h.frames.float()
    top = int(n.landmarks[:, 17:27, 1].min()) - 3
    assert torch.equal(fn[:, :, :top], fh[:, :, :top])
    cheek_rows = slice(int(n.landmarks[0, 41, 1]) + 2, int(n.landmarks[0, 30, 1]))
    cheek_cols = slice(int(n.landmarks[0, 36, 0]), int(n.landmarks[0, 39, 0]))
    assert (fh - fn)[:, :, cheek_rows, cheek_cols].abs().mean() > 5


@pytest.mark.parametrize(
    ("emotion", "region"),
    [("angry", "brows"), ("sad", "brows"), ("surprised", "brows"), ("fear", "eyes"),
     ("surprised", "eyes"), ("disgusted", "nose"), ("happy", "cheeks")],
)
def test_emotions_change_pixels_where_they_act(emotion: str, region: str) -> None:
    sp = SPEAKERS[6]
    m = random_mouth(4, 9)
    n = render_frames(sp, expression("neutral", 1), m, size=128)
    e = render_frames(sp, expression(emotion, 3), m, size=128)
    lm = n.landmarks[0]
    boxes = {  # rows, cols from the neutral landmarks
        "brows": (lm[17:27, 1].min() - 8, lm[17:27, 1].max() + 3, lm[17, 0], lm[26, 0]),
        "eyes": (lm[36:48, 1].min() - 4, lm[36:48, 1].max() + 4, lm[36, 0], lm[45, 0]),
        "nose": (lm[27, 1] + 4, lm[33, 1] + 2, lm[31, 0] - 4, lm[35, 0] + 4),
        "cheeks": (lm[41, 1] + 4, lm[33, 1], lm[36, 0], lm[39, 0]),
    }
    r0, r1, c0, c1 = (round(float(v)) for v in boxes[region])
    diff = (e.frames.float() - n.frames.float())[:, :, r0:r1, c0:c1].abs().mean()
    assert diff > 2, (emotion, region, float(diff))
    top = int(lm[17:27, 1].min()) - 12  # hair and background above the brows stay
    assert torch.equal(e.frames[:, :, :top], n.frames[:, :, :top])


def test_contempt_is_one_sided() -> None:
    sp = SPEAKERS[2]
    m = random_mouth(6, 10, lip_shape=False)
    n = render_frames(sp, expression("neutral", 1), m, size=128)
    c = render_frames(sp, expression("contempt", 3, sp), m, size=128)
    lm = n.landmarks[0]
    diff = (c.frames.float() - n.frames.float()).abs().mean(1)

    def around(p: np.ndarray) -> float:
        x, y = round(float(p[0])), round(float(p[1]))
        return float(diff[:, y - 8:y + 8, x - 8:x + 8].mean())

    left, right = around(lm[48]), around(lm[54])  # pressed lips change both a little
    assert right > 2 * left and right > 10, (left, right)


def test_blink_closes_the_eyes() -> None:
    sp = SPEAKERS[0]
    t = 3
    nui = still_nuisance(t)
    nui["blink"] = np.array([0.0, 0.5, 1.0], np.float32)
    out = render_frames(sp, expression("neutral", 1), np.zeros((t, 4), np.float32), nui,
                        size=128)
    lm = out.landmarks
    heights = np.stack([lm[:, 41, 1] - lm[:, 37, 1], lm[:, 40, 1] - lm[:, 38, 1],
                        lm[:, 47, 1] - lm[:, 43, 1], lm[:, 46, 1] - lm[:, 44, 1]], 1)
    assert (heights[0] > 2.0).all()
    np.testing.assert_allclose(heights[1], heights[0] / 2, atol=1e-4)  # linear in the blink
    np.testing.assert_allclose(heights[2], 0.0, atol=1e-4)
    # the eye whites disappear at the blink peak
    img = out.frames.permute(0, 2, 3, 1).float()
    r0, r1 = int(lm[0, 37, 1]) - 3, int(lm[0, 41, 1]) + 4
    eyes = img[:, r0:r1, int(lm[0, 36, 0]):int(lm[0, 45, 0]) + 1]
    white = (eyes.min(-1).values > 225).flatten(1).sum(1)
    assert white[0] > 15 and white[2] == 0


def test_anti_aliasing_matches_supersampling() -> None:
    """Edge pixels at 64 px take intermediate values and are close to the 4x4 box average of the
    256 px render, much closer than point sampling (an aliased render) is."""
    for sp in SPEAKERS[:3]:
        m = np.array([[0.5, 0.0, 0.0, 0.0]], np.float32)
        f64 = render_frames(sp, expression("happy", 3, sp), m, size=64).frames[0].float()
        f256 = render_frames(sp, expression("happy", 3, sp), m, size=256).frames[0].float()
        box = torch.nn.functional.avg_pool2d(f256[None], 4)[0]
        point = f256[:, 1::4, 1::4]
        blocks = f256.unfold(1, 4, 4).unfold(2, 4, 4)  # (3, 64, 64, 4, 4)
        lo, hi = blocks.amin((-1, -2)), blocks.amax((-1, -2))
        edge = (hi - lo).amax(0) > 60
        assert edge.sum() > 150
        between = ((f64 > lo + 2) & (f64 < hi - 2)).all(0)
        assert between[edge].float().mean() > 0.6
        err_aa = (f64 - box).abs().amax(0)[edge].mean()
        err_point = (point - box).abs().amax(0)[edge].mean()
        assert err_aa < 0.55 * err_point, (float(err_aa), float(err_point))
        assert (f64 - box).abs().mean() < 2.5


def test_sizes_give_the_same_landmarks_up_to_scale() -> None:
    sp = SPEAKERS[7]
    m = random_mouth(5, 11)
    nui = nuisance_tracks(5, 30.0, 12)
    e = expression("surprised", 3, sp)
    norm = [(render_landmarks(sp, e, m, nui, size=s) + 0.5) / s for s in RENDER_SIZES]
    for other in norm[1:]:
        np.testing.assert_allclose(other, norm[0], atol=1e-5)
    full = render_frames(sp, e, m, nui, size=128)
    np.testing.assert_allclose((full.landmarks + 0.5) / 128, norm[0], atol=1e-5)
    assert full.frames.shape == (5, 3, 128, 128)


def test_head_motion_moves_pixels_and_landmarks_together() -> None:
    sp = SPEAKERS[1]
    size = 128
    m = np.tile(np.array([[0.4, 0.0, 0.0, 0.0]], np.float32), (2, 1))
    still = render_frames(sp, expression("neutral", 1), m, size=size)
    nui = still_nuisance(2)
    nui["head_pose"] = np.array([[3 / size, -2 / size, 0.0], [0.0, 0.0, 0.06]], np.float32)
    moved = render_frames(sp, expression("neutral", 1), m, nui, size=size)
    # a whole-pixel shift: landmarks move by (3, -2) px, pixels too (the background depends on
    # the row only, so it matches away from the top and bottom edges)
    np.testing.assert_allclose(moved.landmarks[0] - still.landmarks[0],
                               np.tile([3.0, -2.0], (68, 1)), atol=1e-4)
    a = moved.frames[0, :, 10:-10, 3:].float()
    b = still.frames[0, :, 12:-8, :-3].float()
    assert (a - b).abs().max() <= 3
    # a roll: landmarks rotate rigidly; the pupils follow the eye landmarks
    lm0, lm1 = still.landmarks[1], moved.landmarks[1]
    dist0 = np.linalg.norm(lm0[:, None] - lm0[None], axis=-1)
    dist1 = np.linalg.norm(lm1[:, None] - lm1[None], axis=-1)
    np.testing.assert_allclose(dist1, dist0, atol=1e-3)
    angle = np.arctan2(*(lm1[45] - lm1[36])[::-1]) - np.arctan2(*(lm0[45] - lm0[36])[::-1])
    assert abs(angle - 0.06) < 1e-4
    img = moved.frames[1].permute(1, 2, 0).numpy().astype(float)
    for ids in ([36, 37, 38, 39, 40, 41], [42, 43, 44, 45, 46, 47]):
        cx, cy = lm1[ids].mean(0)
        r0, c0 = int(cy) - 6, int(cx) - 8
        patch = img[r0:r0 + 13, c0:c0 + 17].sum(-1)
        rows, cols = np.nonzero(patch < 100)  # pupil and lash pixels
        pupil = np.array([cols.mean() + c0, rows.mean() + r0])
        centre = 0.5 * (lm1[ids[1]] + lm1[ids[2]] + lm1[ids[4]] + lm1[ids[5]]) / 2
        assert np.linalg.norm(pupil - centre) < 2.0


def test_lighting_gain_scales_the_frame() -> None:
    sp = SPEAKERS[3]
    m = random_mouth(2, 13)
    nui = still_nuisance(2)
    nui["gain"] = np.array([1.05, 0.95], np.float32)
    lit = render_frames(sp, expression("sad", 2), m, nui).frames.float()
    flat = render_frames(sp, expression("sad", 2), m).frames.float()
    want = (flat * torch.tensor([1.05, 0.95]).view(2, 1, 1, 1)).clamp(max=255)
    assert (lit - want).abs().max() <= 1.0


def test_emotions_separable_on_pixels_of_held_out_speakers() -> None:
    """Nearest emotion centroid on raw pixels, fitted on train speakers, tested on held-out
    speakers (the fixed split of 12), random mouth tracks, level 3: far above 1/8 chance."""
    speakers = sample_speakers(12, seed=0)
    train, test = split_speakers(12)
    rng = np.random.default_rng(0)
    feats, labels, who = [], [], []
    for sp in speakers:
        for label, emotion in enumerate(MEAD.names):
            mouth = random_mouth(4, int(rng.integers(1 << 30)))
            frames = render_frames(sp, expression(emotion, level(emotion), sp), mouth).frames
            feats.append(frames.float().flatten(1))
            labels += [label] * 4
            who += [sp.speaker_id] * 4
    x, y, s = torch.cat(feats), torch.tensor(labels), torch.tensor(who)
    is_train = torch.isin(s, torch.tensor(train))
    centroids = torch.stack([x[is_train & (y == k)].mean(0) for k in range(8)])
    pred = torch.cdist(x[~is_train], centroids).argmin(1)
    accuracy = (pred == y[~is_train]).float().mean().item()
    assert len(test) == 2 and accuracy > 0.4, accuracy


def test_bad_inputs_give_clear_errors() -> None:
    sp = SPEAKERS[0]
    e = expression("happy", 1)
    m = random_mouth(3, 0)
    with pytest.raises(ValueError, match=r"size must be one of \(64, 128, 256\), got 96"):
        render_frames(sp, e, m, size=96)
    with pytest.raises(ValueError, match="size"):
        render_frames(sp, e, m, size=True)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"mouth must be \(t, 4\).*got shape \(3, 3\)"):
        render_frames(sp, e, m[:, :3])
    with pytest.raises(ValueError, match="mouth must be"):
        render_frames(sp, e, m[0])
    with pytest.raises(ValueError, match=r"expression must be \(12,\) or \(t=3, 12\)"):
        render_frames(sp, e[:5], m)
    with pytest.raises(ValueError, match="expression must be"):
        render_frames(sp, np.stack([e] * 4), m)
    with pytest.raises(ValueError, match="keys"):
        render_frames(sp, e, m, {"blink": np.zeros(3)})
    bad = still_nuisance(4)
    with pytest.raises(ValueError, match=r"nuisance\['blink'\] must have shape \(3,\)"):
        render_frames(sp, e, m, bad)
    with pytest.raises(ValueError, match="NaN"):
        render_frames(sp, e, np.full((3, 4), np.nan))
    with pytest.raises(ValueError, match="numeric"):
        render_frames(sp, e, [["a", "b", "c", "d"]])
    with pytest.raises(ValueError, match="chunk"):
        render_frames(sp, e, m, chunk=0)
    with pytest.raises(ValueError, match="threads"):
        render_frames(sp, e, m, threads=0)
    with pytest.raises(KeyError, match="unknown emotion"):
        expression("bored", 1)
    with pytest.raises(ValueError, match="neutral has level 1 only"):
        expression("neutral", 2)
