"""Faces: Haar detection on drawn faces, tracking and smoothing, crops, the fixed fallback.

No package installed here ships a photo of a face (scikit-image and matplotlib are absent),
so the faces are drawn (tests/data/conftest.py: `draw_face`), at known positions; OpenCV's
bundled cascade detects them.
"""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest
import torch

from decouple.data import faces
from decouple.data.faces import (
    NoFaceWarning,
    crop_boxes,
    crop_faces,
    detect_faces,
    fixed_box,
    square_boxes,
)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1).contiguous()


def centres(boxes: torch.Tensor) -> torch.Tensor:
    return torch.stack([(boxes[..., 0] + boxes[..., 2]) / 2, (boxes[..., 1] + boxes[..., 3]) / 2],
                       dim=-1)


def test_haar_finds_a_drawn_face_where_it_is(draw_face) -> None:
    for cx, cy, scale in [(160, 150, 60), (110, 140, 45), (230, 170, 80)]:
        boxes = detect_faces(to_tensor(draw_face(300, 360, cx, cy, scale)))
        assert boxes.shape[0] >= 1 and boxes.dtype == torch.float32
        box = boxes[0]
        cxy = centres(box)
        assert abs(float(cxy[0]) - cx) < 0.15 * scale
        assert abs(float(cxy[1]) - cy) < 0.15 * scale
        side = float(box[2] - box[0])
        assert 1.4 * scale < side < 3.0 * scale  # the head is 2 * scale high


def test_largest_face_first_and_none_on_blank(draw_face) -> None:
    image = draw_face(300, 480, 120, 150, 45)
    image[:, 240:] = draw_face(300, 240, 120, 150, 80)
    boxes = detect_faces(to_tensor(image))
    assert boxes.shape[0] >= 2
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    assert torch.all(areas[:-1] >= areas[1:])
    assert float(centres(boxes[0])[0]) > 240  # the big face is the right one
    blank = torch.full((3, 120, 160), 90, dtype=torch.uint8)
    assert tuple(detect_faces(blank).shape) == (0, 4)


def moving_face_clip(draw_face, t: int = 20) -> tuple[torch.Tensor, np.ndarray, int]:
    scale = 50
    cx = np.linspace(120, 196, t)  # 4 px per frame
    cy = np.full(t, 130.0)
    frames = torch.stack([to_tensor(draw_face(240, 320, x, y, scale)) for x, y in zip(cx, cy,
                                                                                       strict=True)])
    return frames, np.stack([cx, cy], axis=1), scale


def test_crop_faces_tracks_a_moving_face(draw_face) -> None:
    frames, truth, scale = moving_face_clip(draw_face)
    haar_side = float(detect_faces(frames[0])[0, 2] - detect_faces(frames[0])[0, 0])
    crops, boxes = crop_faces(frames, 64, margin=0.25, every=5)
    assert tuple(crops.shape) == (20, 3, 64, 64) and crops.dtype == torch.uint8
    assert tuple(boxes.shape) == (20, 4) and boxes.dtype == torch.float32
    # Square, with the margin: a quarter of the face box added on each side.
    sides = boxes[:, 2] - boxes[:, 0]
    torch.testing.assert_close(sides, boxes[:, 3] - boxes[:, 1])
    assert float(sides.mean()) == pytest.approx(1.5 * haar_side, rel=0.1)
    # Centres follow the true motion on every frame, ends included.
    error = np.abs(centres(boxes).numpy() - truth).max()
    assert error < 0.15 * scale
    # The crop is centred on the face: skin pixels balance around the crop centre.
    crop = crops.permute(0, 2, 3, 1).int().numpy()
    skin = (np.abs(crop - np.array([200, 170, 150])).sum(-1) < 40)
    ys, xs = np.nonzero(skin[10])
    assert abs(xs.mean() - 31.5) < 4 and abs(ys.mean() - 31.5) < 6


def test_a_missed_detection_is_filled_in_by_its_neighbours(draw_face) -> None:
    frames, truth, scale = moving_face_clip(draw_face, t=12)
    frames[5] = 90  # no face on detection frame 5: frames 0 and 10 fill in
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a face was found elsewhere: no warning
        _, boxes = crop_faces(frames, 32, every=5)
    error = np.abs(centres(boxes).numpy() - truth).max()
    assert error < 0.15 * scale


def test_detection_frames_are_every_nth_and_the_last(monkeypatch) -> None:
    seen: list[int] = []
    frames = torch.zeros(12, 3, 16, 16, dtype=torch.uint8)
    for i in range(12):
        frames[i, 0, 0, 0] = i  # the frame number in one pixel

    def fake(image: np.ndarray, detector: str) -> np.ndarray:
        seen.append(int(image[0, 0, 0]))
        return np.array([[4.0, 4.0, 12.0, 12.0]], np.float32)

    monkeypatch.setattr(faces, "_detect", fake)
    crop_faces(frames, 8, every=5)
    assert seen == [0, 5, 10, 11]
    seen.clear()
    crop_faces(frames, 8, every=1)
    assert seen == list(range(12))


def test_interpolation_between_detections_is_linear(monkeypatch) -> None:
    frames = torch.zeros(11, 3, 64, 64, dtype=torch.uint8)
    for i in range(11):
        frames[i, 0, 0, 0] = i

    def fake(image: np.ndarray, detector: str) -> np.ndarray:
        k = float(image[0, 0, 0])  # a face moving 2 px per frame, seen on frames 0, 5, 10
        return np.array([[10 + 2 * k, 20.0, 30 + 2 * k, 40.0]], np.float32)

    monkeypatch.setattr(faces, "_detect", fake)
    _, boxes = crop_faces(frames, 8, every=5, margin=0.0)
    expected = torch.tensor([[10 + 2 * k, 20.0, 30 + 2 * k, 40.0] for k in range(11)])
    torch.testing.assert_close(boxes, expected)


def test_no_face_falls_back_to_the_fixed_crop_with_a_warning() -> None:
    gen = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 40, (6, 3, 48, 80), dtype=torch.uint8, generator=gen)
    with pytest.warns(NoFaceWarning, match="no face found.*fixed centre crop") as record:
        crops, boxes = crop_faces(frames, 48)
    assert record[0].filename == __file__  # the warning points at the caller
    assert torch.equal(boxes, fixed_box(48, 80).expand(6, 4))
    assert fixed_box(48, 80).tolist() == [16.0, 0.0, 64.0, 48.0]
    assert torch.equal(crops, frames[:, :, :, 16:64])  # size == side: an exact cut


def test_fixed_detector_crops_the_centre_without_warning() -> None:
    frames = torch.randint(0, 255, (3, 3, 60, 40), dtype=torch.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        crops, boxes = crop_faces(frames, 40, detector="fixed")
    assert boxes[0].tolist() == [0.0, 10.0, 40.0, 50.0]
    assert torch.equal(crops, frames[:, :, 10:50, :])


def test_crop_boxes_replicates_edges_outside_the_frame() -> None:
    frames = torch.arange(4 * 6, dtype=torch.uint8).reshape(1, 1, 4, 6).repeat(1, 3, 1, 1)
    crop = crop_boxes(frames, torch.tensor([[-2.0, 0.0, 2.0, 4.0]]), size=4)[0, 0]
    expected = torch.tensor([[0, 0, 0, 1], [6, 6, 6, 7], [12, 12, 12, 13], [18, 18, 18, 19]],
                            dtype=torch.uint8)
    assert torch.equal(crop, expected)
    # Downscaling averages: a 2x2 area per output pixel.
    small = crop_boxes(frames, torch.tensor([[0.0, 0.0, 4.0, 4.0]]), size=2)[0, 0]
    assert torch.equal(small, torch.tensor([[4, 6], [16, 18]], dtype=torch.uint8))


def test_square_boxes() -> None:
    box = torch.tensor([[10.0, 20.0, 30.0, 60.0]])
    torch.testing.assert_close(square_boxes(box, 0.0), torch.tensor([[0.0, 20.0, 40.0, 60.0]]))
    torch.testing.assert_close(square_boxes(box, 0.5), torch.tensor([[-20.0, 0.0, 60.0, 80.0]]))
    with pytest.raises(ValueError, match="margin"):
        square_boxes(box, -0.1)


def test_dlib_missing_is_a_clear_import_error(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "dlib", None)  # import dlib -> ImportError
    faces._dlib_detector.cache_clear()
    try:
        with pytest.raises(ImportError, match=r"dlib.*pip install dlib-bin.*detector='haar'"):
            crop_faces(torch.zeros(2, 3, 32, 32, dtype=torch.uint8), 16, detector="dlib")
    finally:
        faces._dlib_detector.cache_clear()


def test_bad_arguments() -> None:
    frames = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    with pytest.raises(ValueError, match="detector must be one of"):
        crop_faces(frames, 16, detector="mtcnn")
    with pytest.raises(ValueError, match="every"):
        crop_faces(frames, 16, every=0)
    with pytest.raises(ValueError, match="uint8 tensor"):
        crop_faces(frames.float(), 16)
    with pytest.raises(ValueError, match="size"):
        crop_faces(frames, 0, detector="fixed")
    with pytest.raises(ValueError, match=r"boxes must be a tensor \(2, 4\)"):
        crop_boxes(frames, torch.zeros(3, 4), 8)
    with pytest.raises(ValueError, match=r"image must be a uint8 tensor \(3, h, w\)"):
        detect_faces(frames)
