"""The SynthTalk face renderer: anti-aliased cartoon faces and 68-point landmarks, batched.

[render_frames][decouple.data.synthtalk.render.render_frames] draws a frontal face from a
[SpeakerParams][decouple.data.synthtalk.speakers.SpeakerParams], per-frame expression parameters
([EXPRESSION_PARAMS][decouple.data.synthtalk.expressions.EXPRESSION_PARAMS]), per-frame mouth
parameters (columns `open, width, round, lip_shape`: `visemes.MOUTH_PARAMS`) and the
nuisance tracks ([nuisance_tracks][decouple.data.synthtalk.nuisance.nuisance_tracks]).

**How it draws.** Every shape is a signed distance function (SDF, negative inside) of the position
in head coordinates (frame fractions of the speaker's geometry): ellipses, circles, boxes, and
bands between two polynomial curves `y = a0 + a1 s + a2 s^2 + a4 s^4` over a horizontal extent
`s = -1 .. 1` (lids, lips, brows), whose distance is the vertical offset divided by
`sqrt(1 + slope^2)`. A shape covers a pixel by a smoothstep of its distance over one pixel
(analytic anti-aliasing) and is composited over what is below. The order: shirt, hair
(back), neck, ears, face (with its outline), forehead lines, cheek blush, nasolabial folds, nose,
eyes (outline and lashes, white, iris, pupil, catch light; the lids are the eye outline, so a
blink or `lid_open` moves them), frown lines, brows, mouth (lips, dark inner mouth, upper and
lower teeth, shown once the opening exceeds a pixel), hair (front); then the head layer goes over
the background.

**Speed.** The parts that do not change over a clip (shirt, neck, hair, ears, face above the jaw)
are drawn once per call in premultiplied RGBA; per frame, only the changing shapes are drawn, each
on its bounding box (the box over all frames), as batched torch operations over
(frames, rows, columns) in float32 whose coordinate factors stay separable ((1, 1, w) columns and
(1, h, 1) rows) until they meet the per-frame parameters. Head motion (dx, dy, roll) is one affine
warp of the head layer per frame (bilinear, `torch.nn.functional.grid_sample`): every shape and
landmark moves and rotates together about the pivot `(0.5, 0.47)` while the background stays. The
lighting gain multiplies the finished frame. The face is drawn 1.15 times the speaker's geometry
about the pivot (`ZOOM`), so it fills the frame.

**The mouth**, from mouth params `open, width, round, lip_shape` and expression `E`
(`pull_l, pull_r = lip_corner_pull * (1 -+ lip_corner_asym)`; `mw`, `lt` the speaker's mouth width
and lip thickness; lengths in frame fractions before `ZOOM`):

- opening `gap = MOUTH_GAP * clip(open + 0.6 jaw, 0, 1.6) * (1 - closure)`, with
  `closure = clip(max(0, -lip_shape) + 0.6 max(0, lip_shape) + 0.7 lip_press, 0, 1)`: on a
  neutral face with open = 1 and lip_shape = 0 the inner lips (landmarks 62 and 66) are
  `MOUTH_GAP * ZOOM * size` pixels apart; open = 0 or lip_shape = -1 closes them (the upper and
  lower inner-lip landmarks coincide).
- corners: half widths `mw (1 + 0.2 width - 0.3 round + 0.12 pull + 0.22 lip_stretch
  - 0.08 lip_press + 0.04 lip_corner_depress)` per side, and height offsets (down +)
  `mw (-0.42 pull + 0.38 lip_corner_depress + 0.12 lip_stretch)` per side that bend both lips by
  `offset * s^2` (s = -1 .. 1 across the mouth): the centre of the lips does not move.
- the upper lip rises by `0.012 nose_wrinkle (1 - s^2)` (disgust's upper-lip raise).
- inner lips `centre - 0.3 gap q(s)` and `centre + 0.7 gap q(s)`, `q(s) = (1 - s^2)(1 + k s^2)`,
  `k = 0.3 + 0.5 round`; the upper lip is `lt f (1 - s^2)(0.7 + 1.4 s^2)` thick (a small Cupid's
  bow), the lower `1.3 lt f (1 - 0.4 max(0, lip_shape)) (1 - s^2)(1 + 0.3 s^2)`, with
  `f = max(0.3, 1 - 0.4 lip_press - 0.25 max(0, -lip_shape) + 0.3 round)`.
- the chin drops by `0.7 gap`.

So two renders with the same mouth track and different emotions have the same mouth landmarks up
to these documented terms: the corners (pull, depress, stretch, asymmetry), the opening (jaw,
press), the lip thickness (press) and the upper-lip raise (nose wrinkle). An expression with only
corner terms leaves landmarks 51, 57, 62 and 66 (the lip centres) where they were.

**Landmarks** (t, 68, 2) follow dlib's 68-point layout (jaw 0-16 from the image-left side round
the chin, brows 17-26, nose 27-35, eyes 36-47 each from its left corner over the upper lid, outer
lips 48-59 from the image-left corner over the upper lip, inner lips 60-67), in pixel coordinates
`(x, y)` with the centre of pixel `(row i, column j)` at `(j, i)`, so `(landmarks + 0.5) / size`
is the same at every size.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from decouple.data.synthtalk.expressions import EXPRESSION_PARAMS
from decouple.data.synthtalk.nuisance import NUISANCE_KEYS
from decouple.data.synthtalk.visemes import MOUTH_PARAMS

if TYPE_CHECKING:
    from decouple.data.synthtalk.speakers import SpeakerParams

__all__ = ["MOUTH_GAP", "RENDER_SIZES", "ZOOM", "Rendered", "render_frames", "render_landmarks"]

RENDER_SIZES: tuple[int, ...] = (64, 128, 256)
"""Frame sizes (square) the renderer supports."""

MOUTH_GAP = 0.1
"""Inner-lip opening at the mouth centre (frame fractions before `ZOOM`) for open = 1 on a
neutral face."""

ZOOM = 1.15
"""Scale from the speaker's geometry to the frame, about the pivot `(0.5, 0.47)`."""

_PIVOT = (0.5, 0.47)
_E = {name: i for i, name in enumerate(EXPRESSION_PARAMS)}
_PIXELS_PER_CHUNK = 1 << 18
_LINE = 0.009  # outline width (head units)


class Rendered(NamedTuple):
    """Output of [render_frames][decouple.data.synthtalk.render.render_frames].

    Attributes:
        frames: (t, 3, size, size) uint8 RGB, the layout `decouple.data.io.write_video` takes.
        landmarks: (t, 68, 2) float32 pixel coordinates (x, y), dlib's 68-point layout.
    """

    frames: Tensor
    landmarks: np.ndarray


# ----------------------------------------------------------------------------- inputs


def _as_array(x: Any, name: str) -> np.ndarray:
    if isinstance(x, Tensor):
        x = x.detach().cpu().numpy()
    try:
        arr = np.array(x, dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"render_frames: {name} must be a numeric array, got {type(x).__name__}"
        ) from err
    if not np.isfinite(arr).all():
        raise ValueError(f"render_frames: {name} contains NaN or infinite values")
    return arr


def _check_inputs(
    expression: Any, mouth: Any, nuisance: Mapping[str, Any] | None, size: int
) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    if (
        not isinstance(size, (int, np.integer))
        or isinstance(size, bool)
        or int(size) not in RENDER_SIZES
    ):
        raise ValueError(f"render_frames: size must be one of {RENDER_SIZES}, got {size!r}")
    k = len(EXPRESSION_PARAMS)
    m = _as_array(mouth, "mouth")
    if m.ndim != 2 or m.shape[1] != len(MOUTH_PARAMS) or m.shape[0] < 1:
        raise ValueError(
            f"render_frames: mouth must be (t, {len(MOUTH_PARAMS)}) with columns "
            f"{MOUTH_PARAMS} and t >= 1, got shape {m.shape}"
        )
    t = m.shape[0]
    e = _as_array(expression, "expression")
    if e.shape == (k,):
        e = np.repeat(e[None], t, axis=0)
    if e.shape != (t, k):
        raise ValueError(
            f"render_frames: expression must be ({k},) or (t={t}, {k}) ordered as "
            f"EXPRESSION_PARAMS, got shape {e.shape}"
        )
    if nuisance is None:
        nui = {
            "blink": np.zeros(t, np.float32),
            "head_pose": np.zeros((t, 3), np.float32),
            "gain": np.ones(t, np.float32),
        }
    else:
        if not isinstance(nuisance, Mapping) or set(nuisance) != set(NUISANCE_KEYS):
            got = sorted(nuisance) if isinstance(nuisance, Mapping) else type(nuisance).__name__
            raise ValueError(
                f"render_frames: nuisance must be a dict with keys {NUISANCE_KEYS}, got {got}"
            )
        nui = {key: _as_array(nuisance[key], f"nuisance[{key!r}]") for key in NUISANCE_KEYS}
        want = {"blink": (t,), "head_pose": (t, 3), "gain": (t,)}
        for key, shape in want.items():
            if nui[key].shape != shape:
                raise ValueError(
                    f"render_frames: nuisance[{key!r}] must have shape {shape} (t from mouth), "
                    f"got {nui[key].shape}"
                )
    return (
        torch.from_numpy(np.ascontiguousarray(e)),
        torch.from_numpy(np.ascontiguousarray(m)),
        {key: torch.from_numpy(np.ascontiguousarray(v)) for key, v in nui.items()},
    )


# ----------------------------------------------------------------------------- primitives


def _coverage(d: Tensor, scale: float, soft: float = 1.0) -> Tensor:
    """Smoothstep coverage of a signed distance `d` (head units; `scale` pixels per unit)."""
    c = (0.5 - d * (scale / soft)).clamp_(0.0, 1.0)
    return c * c * (3.0 - 2.0 * c)


def _ellipse(x: Tensor, y: Tensor, cx: Any, cy: Any, a: Any, b: Any) -> Tensor:
    px = (x - cx) / a
    py = (y - cy) / b
    k0 = torch.sqrt(px * px + py * py)
    k1 = torch.sqrt((px / a) ** 2 + (py / b) ** 2) + 1e-6
    return k0 * (k0 - 1.0) / k1


def _circle(x: Tensor, y: Tensor, cx: Any, cy: Any, r: Any) -> Tensor:
    return torch.sqrt((x - cx) ** 2 + (y - cy) ** 2) - r


def _box(x: Tensor, y: Tensor, cx: Any, cy: Any, hw: Any, hh: Any) -> Tensor:
    return torch.maximum((x - cx).abs() - hw, (y - cy).abs() - hh)


def _smin(a: Tensor, b: Tensor, k: float) -> Tensor:
    h = (k - (a - b).abs()).clamp_(min=0.0) / k
    return torch.minimum(a, b) - h * h * (k / 4.0)


def _nonzero(*values: Any) -> bool:
    return any(isinstance(v, Tensor) or v != 0.0 for v in values)


class _Curve(NamedTuple):
    """y = a0 + a1 s + a2 s^2 + a4 s^4 + c s^2 on s in [-1, 1]; c differs left / right of 0."""

    a0: Any
    a1: Any = 0.0
    a2: Any = 0.0
    a4: Any = 0.0
    c_left: Any = 0.0
    c_right: Any = 0.0

    def at(self, s: Tensor) -> tuple[Tensor, Tensor]:
        """Height and slope dy/ds at s."""
        s2 = s * s
        a2 = self.a2
        if _nonzero(self.c_left, self.c_right):
            a2 = a2 + torch.where(s < 0, self.c_left, self.c_right)
        y = self.a0 + s * self.a1 + s2 * (a2 + s2 * self.a4)
        dy = self.a1 + s * (2.0 * a2 + 4.0 * self.a4 * s2)
        return y, dy


def _band(
    x: Tensor, y: Tensor, xc: Any, w_left: Any, w_right: Any, top: _Curve, bottom: _Curve
) -> Tensor:
    """Signed distance of the region top(s) < y < bottom(s), -w_left < x - xc < w_right."""
    dx = x - xc
    w = w_right if w_left is w_right else torch.where(dx < 0, w_left, w_right)
    s = (dx / w).clamp_(-1.0, 1.0)
    yt, st = top.at(s)
    yb, sb = bottom.at(s)
    d_top = (yt - y) * torch.rsqrt(1.0 + (st / w) ** 2)
    d_bot = (y - yb) * torch.rsqrt(1.0 + (sb / w) ** 2)
    return torch.maximum(torch.maximum(d_top, d_bot), dx.abs() - w)


def _rgba(c: Any, scale: float = 1.0) -> Tensor:
    rgb = (torch.as_tensor(c, dtype=torch.float32)[:3] * scale).clamp(0.0, 1.0)
    return torch.cat([rgb, torch.ones(1)])


# ----------------------------------------------------------------------------- geometry


class _Face:
    """Per-frame geometry (tensors of shape (t, 1, 1)) of one speaker's face."""

    def __init__(self, sp: SpeakerParams, expr: Tensor, mouth: Tensor, blink: Tensor) -> None:
        e = {name: expr[:, i].reshape(-1, 1, 1) for name, i in _E.items()}
        m_open, m_width, m_round, m_shape = (mouth[:, i].reshape(-1, 1, 1) for i in range(4))
        self.sp = sp
        self.e = e
        self.t = mouth.shape[0]
        # ---- eyes
        ew = sp.eye_size
        self.ew = ew
        open_frac = (1.0 - blink.reshape(-1, 1, 1)) * (
            1.0 + 0.55 * e["lid_open"] - 0.3 * e["cheek_raise"]
        ).clamp(0.05, 1.7)
        self.eye_open = 0.78 * ew * open_frac  # opening height at the eye centre
        self.lower_lid = 0.3 * ew * (1.0 - 0.7 * e["cheek_raise"]).clamp(min=0.0)
        # ---- brows
        br, bl, bi = e["brow_raise"], e["brow_lower"], e["brow_inner_raise"]
        self.brow_base = sp.eye_y - 1.3 * ew - 0.75 * ew * br + 0.35 * ew * bl
        self.brow_inner = ew * (0.5 * bl - 0.75 * bi)  # inner-end shift (down +)
        self.brow_shift = 0.12 * ew * bl  # towards the nose
        # ---- nose
        nwr = e["nose_wrinkle"]
        self.nose_y = sp.eye_y + sp.nose_length - 0.006 * nwr
        self.nostril_w = sp.nose_width * (1.0 + 0.2 * nwr)
        # ---- mouth
        asym = e["lip_corner_asym"].clamp(-1.0, 1.0)
        pull = e["lip_corner_pull"]
        self.pull_l, self.pull_r = pull * (1.0 - asym), pull * (1.0 + asym)
        dep, stretch, press = e["lip_corner_depress"], e["lip_stretch"], e["lip_press"]
        mw = sp.mouth_width
        base_w = 1.0 + 0.2 * m_width - 0.3 * m_round + 0.22 * stretch - 0.08 * press + 0.04 * dep
        self.w_left = mw * (base_w + 0.12 * self.pull_l)
        self.w_right = mw * (base_w + 0.12 * self.pull_r)
        corner = 0.38 * dep + 0.12 * stretch
        cl = mw * (corner - 0.42 * self.pull_l)
        cr = mw * (corner - 0.42 * self.pull_r)
        closure = (
            m_shape.clamp(max=0.0).neg() + 0.6 * m_shape.clamp(min=0.0) + 0.7 * press
        ).clamp(0.0, 1.0)
        g = MOUTH_GAP * (m_open + 0.6 * e["jaw"]).clamp(0.0, 1.6) * (1.0 - closure)
        self.gap = g
        ur = 0.012 * nwr
        my = sp.eye_y + sp.nose_length + sp.mouth_gap
        self.mouth_y = my
        k = 0.3 + 0.5 * m_round
        f = (1.0 - 0.4 * press - 0.25 * m_shape.clamp(max=0.0).neg() + 0.3 * m_round).clamp(
            min=0.3
        )
        tu = sp.lip_thickness * f
        tl = 1.3 * sp.lip_thickness * f * (1.0 - 0.4 * m_shape.clamp(min=0.0))
        self.inner_top = _Curve(my - 0.3 * g - ur, 0.0, -0.3 * g * (k - 1.0) + ur, 0.3 * g * k,
                                cl, cr)
        self.inner_bottom = _Curve(my + 0.7 * g, 0.0, 0.7 * g * (k - 1.0), -0.7 * g * k, cl, cr)
        it, ib = self.inner_top, self.inner_bottom
        self.outer_top = it._replace(a0=it.a0 - 0.7 * tu, a2=it.a2 - 0.7 * tu, a4=it.a4 + 1.4 * tu)
        self.outer_bottom = ib._replace(a0=ib.a0 + tl, a2=ib.a2 - 0.7 * tl, a4=ib.a4 - 0.3 * tl)
        # ---- face outline: skull ellipse smoothly joined to a jaw ellipse that follows the mouth
        self.skull_cy = sp.eye_y - 0.04
        self.jaw_cy = sp.eye_y + 0.05
        self.jaw_h_rest = my + 0.12 - self.jaw_cy
        self.jaw_h = self.jaw_h_rest + 0.7 * g
        self.jaw_w = sp.face_width * sp.jaw_width

    def face(self, x: Tensor, y: Tensor, jaw_h: Any) -> Tensor:
        sp = self.sp
        skull = _ellipse(x, y, 0.5, self.skull_cy, sp.face_width, sp.face_height)
        jaw = _ellipse(x, y, 0.5, self.jaw_cy, self.jaw_w, jaw_h)
        return _smin(skull, jaw, 0.06)

    def eye_curves(self, side: int) -> tuple[float, _Curve, _Curve]:
        """x centre, upper lid curve, lower lid curve of the image-left (-1) / right (+1) eye."""
        ex = 0.5 + side * self.sp.eye_spacing
        ey = self.sp.eye_y
        lower = _Curve(ey + self.lower_lid, a2=-self.lower_lid)
        upper = _Curve(ey + self.lower_lid - self.eye_open, a2=self.eye_open - self.lower_lid)
        return ex, upper, lower

    def brow_curves(self, side: int) -> tuple[Tensor, float, _Curve, _Curve, _Curve]:
        """x centre, half width, centre line, top and bottom edge of a brow."""
        sp = self.sp
        bx = 0.5 + side * (sp.eye_spacing + 0.08 * self.ew) - side * self.brow_shift
        bw = 1.2 * self.ew
        kin = self.brow_inner  # weight of the inner end: (1 - 2 side s + s^2) / 4
        a0 = self.brow_base - sp.brow_arch + kin / 4.0
        a1 = -side * kin / 2.0
        a2 = sp.brow_arch + kin / 4.0
        th = sp.brow_thickness
        centre = _Curve(a0, a1, a2)
        top = _Curve(a0 - 0.375 * th, a1 + 0.125 * side * th, a2)
        bottom = _Curve(a0 + 0.375 * th, a1 - 0.125 * side * th, a2)
        return bx, bw, centre, top, bottom


# ----------------------------------------------------------------------------- landmarks


def _landmarks_head(face: _Face) -> Tensor:
    """(t, 68, 2) landmarks in head coordinates."""
    t = face.t
    sp = face.sp
    pts: list[Tensor] = []

    def point(x: Any, y: Any) -> None:
        xx = x.expand(t, 1, 1) if isinstance(x, Tensor) else torch.full((t, 1, 1), float(x))
        yy = y.expand(t, 1, 1) if isinstance(y, Tensor) else torch.full((t, 1, 1), float(y))
        pts.append(torch.cat([xx, yy], dim=-1))

    # jaw 0-16: where rays from the eye-line centre (image-left round the chin) leave the face,
    # by Newton steps on the face's signed distance along each ray
    ang = torch.tensor([math.pi - k * math.pi / 16 for k in range(17)]).view(1, 17, 1)
    cx, cy = 0.5, sp.eye_y
    cos, sin = torch.cos(ang), torch.sin(ang)

    def along(r: Tensor) -> Tensor:
        return face.face(cx + r * cos, cy + r * sin, face.jaw_h)

    r = torch.full((t, 17, 1), 0.3)
    for _ in range(7):
        d = along(r)
        slope = ((along(r + 1e-3) - d) / 1e-3).clamp(min=0.2)
        r = (r - d / slope).clamp(0.02, 0.7)
    jaw = torch.cat([cx + r * cos, cy + r * sin], dim=-1)  # (t, 17, 2)

    def at(curve: _Curve, s: float) -> Tensor:
        return curve.at(torch.full((t, 1, 1), s))[0]

    # brows 17-26, each from its left end
    for side in (-1, 1):
        bx, bw, centre, _, _ = face.brow_curves(side)
        for s in (-1.0, -0.5, 0.0, 0.5, 1.0):
            point(bx + s * bw, at(centre, s))
    # nose 27-35: bridge top to tip, then the nostril base from left to right
    ny = face.nose_y
    for frac in (-0.1, 0.3, 0.65, 1.0):
        point(0.5, sp.eye_y + frac * (ny - sp.eye_y))
    for u in (-1.0, -0.5, 0.0, 0.5, 1.0):
        point(0.5 + u * 0.9 * face.nostril_w, ny + (0.012 if u else 0.016))
    # eyes 36-47: left corner, upper lid at s = -1/3, +1/3, right corner, lower lid +1/3, -1/3
    for side in (-1, 1):
        ex, upper, lower = face.eye_curves(side)
        for s, curve in ((-1.0, lower), (-1 / 3, upper), (1 / 3, upper), (1.0, lower),
                         (1 / 3, lower), (-1 / 3, lower)):
            point(ex + s * face.ew, at(curve, s))
    # mouth 48-67
    for s, curve in (
        (-1.0, face.outer_top), (-0.6, face.outer_top), (-0.28, face.outer_top),
        (0.0, face.outer_top), (0.28, face.outer_top), (0.6, face.outer_top),
        (1.0, face.outer_top), (0.6, face.outer_bottom), (0.28, face.outer_bottom),
        (0.0, face.outer_bottom), (-0.28, face.outer_bottom), (-0.6, face.outer_bottom),
        (-0.94, None), (-0.45, face.inner_top), (0.0, face.inner_top), (0.45, face.inner_top),
        (0.94, None), (0.45, face.inner_bottom), (0.0, face.inner_bottom),
        (-0.45, face.inner_bottom),
    ):
        if curve is None:  # inner corner: midway between the inner lips
            y = 0.5 * (at(face.inner_top, s) + at(face.inner_bottom, s))
        else:
            y = at(curve, s)
        point(0.5 + s * (face.w_left if s < 0 else face.w_right), y)
    return torch.cat([jaw, *pts], dim=1)


def _head_to_pixels(points: Tensor, pose: Tensor, size: int) -> Tensor:
    """(t, n, 2) head coordinates -> pixel coordinates: zoom, then the head pose (t, 3)."""
    dx, dy, roll = pose[:, 0:1], pose[:, 1:2], pose[:, 2:3]
    c, s = torch.cos(roll), torch.sin(roll)
    qx = (points[..., 0] - _PIVOT[0]) * ZOOM
    qy = (points[..., 1] - _PIVOT[1]) * ZOOM
    px = _PIVOT[0] + c * qx - s * qy + dx
    py = _PIVOT[1] + s * qx + c * qy + dy
    return torch.stack([px, py], dim=-1) * size - 0.5


# ----------------------------------------------------------------------------- painting


class _Grid:
    """Head coordinates of the pixel centres, separable: x (1, 1, w) columns, y (1, h, 1) rows."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.scale = size * ZOOM  # pixels per head unit
        u = (torch.arange(size, dtype=torch.float32) + 0.5) / size
        self.xs = _PIVOT[0] + (u - _PIVOT[0]) / ZOOM
        self.ys = _PIVOT[1] + (u - _PIVOT[1]) / ZOOM

    def box(self, x0: float, x1: float, y0: float, y1: float) -> tuple[slice, slice]:
        """Pixel rows and columns covering the head-coordinate box (plus 2 pixels)."""
        n = self.size

        def pix(v: float, c: float) -> float:
            return (c + (v - c) * ZOOM) * n

        c0 = max(math.floor(pix(x0, _PIVOT[0])) - 2, 0)
        c1 = min(math.ceil(pix(x1, _PIVOT[0])) + 2, n)
        r0 = max(math.floor(pix(y0, _PIVOT[1])) - 2, 0)
        r1 = min(math.ceil(pix(y1, _PIVOT[1])) + 2, n)
        return slice(r0, max(r1, r0)), slice(c0, max(c1, c0))

    def coords(self, box: tuple[slice, slice]) -> tuple[Tensor, Tensor]:
        rows, cols = box
        return self.xs[cols].view(1, 1, -1), self.ys[rows].view(1, -1, 1)


def _paint(img: Tensor, box: tuple[slice, slice], cov: Tensor, colour: Tensor) -> None:
    """Composite an opaque `colour` (4,) with coverage `cov` ((1 or t), h, w) onto the
    premultiplied RGBA image (t, 4, H, W) over the box."""
    rows, cols = box
    view = img[:, :, rows, cols]
    if view.numel() == 0:
        return
    view.lerp_(colour.view(1, 4, 1, 1).expand_as(view), cov.unsqueeze(1))


def _hairline(sp: SpeakerParams, x: Tensor) -> tuple[Tensor, Tensor]:
    """Hairline height and slope d/dx over the forehead, by hair style."""
    u = (x - 0.5) / sp.face_width
    hy = sp.eye_y - 0.17
    style = sp.hair_style
    if style == 0:  # short: flat across, down at the temples
        return hy + 0.13 * u**4, 0.52 * u**3 / sp.face_width
    if style == 1:  # side-swept: slanted fringe
        return hy + 0.02 + 0.04 * u + 0.1 * u**4, (0.04 + 0.4 * u**3) / sp.face_width
    if style == 2:  # long: centre parting
        return hy - 0.01 + 0.05 * u.abs() + 0.1 * u**4, (
            0.05 * torch.sign(u) + 0.4 * u**3
        ) / sp.face_width
    return hy + 0.02 + 0.1 * u**4, 0.4 * u**3 / sp.face_width  # curly


def _hair_back(sp: SpeakerParams, skull_cy: float, x: Tensor, y: Tensor) -> Tensor:
    fw, fh = sp.face_width, sp.face_height
    style = sp.hair_style
    if style in (0, 1):
        d = _ellipse(x, y, 0.5, skull_cy - 0.005, fw + 0.02, fh + 0.03)
        return torch.maximum(d, y - (sp.eye_y + (0.0 if style == 0 else 0.03)))
    if style == 2:
        d = _ellipse(x, y, 0.5, skull_cy - 0.005, fw + 0.035, fh + 0.04)
        return torch.minimum(d, _box(x, y, 0.5, skull_cy + 0.35, fw + 0.035, 0.35))
    d = _ellipse(x, y, 0.5, skull_cy - 0.02, fw + 0.07, fh + 0.07)
    bumps = 0.008 * torch.sin(16.0 * torch.atan2(y - skull_cy, x - 0.5))
    return torch.maximum(d + bumps, y - (sp.eye_y + 0.16))


class _Static(NamedTuple):
    before_face: Tensor  # (1, 4, H, W) premultiplied: shirt, neck, hair (back), ears
    under: Tensor  # (1, 4, H, W): the same and the face at rest (closed mouth)
    over: Tensor  # (1, 4, rows, W) premultiplied: hair (front), rows 0 .. over.shape[2]
    background: Tensor  # (1, 3, H, W)


def _static_layers(sp: SpeakerParams, face: _Face, grid: _Grid) -> _Static:
    n, sc = grid.size, grid.scale
    fw = sp.face_width
    under = torch.zeros(1, 4, n, n)
    # shirt
    b = grid.box(0.0, 1.0, 0.84, 1.2)
    x, y = grid.coords(b)
    _paint(under, b, _coverage(_ellipse(x, y, 0.5, 1.14, 0.47, 0.27), sc), _rgba(sp.shirt))
    # hair (back)
    hx = fw + 0.08
    b = grid.box(0.5 - hx, 0.5 + hx, face.skull_cy - sp.face_height - 0.09, 1.2)
    x, y = grid.coords(b)
    _paint(under, b, _coverage(_hair_back(sp, face.skull_cy, x, y), sc), _rgba(sp.hair, 0.85))
    # neck (in front of long hair)
    neck_w = 0.34 * fw
    b = grid.box(0.5 - neck_w, 0.5 + neck_w, sp.eye_y + 0.2, 1.2)
    x, y = grid.coords(b)
    _paint(under, b, _coverage(torch.maximum((x - 0.5).abs() - neck_w, sp.eye_y + 0.2 - y), sc),
           _rgba(sp.skin, 0.78))
    # ears
    for side in (-1, 1):
        ecx = 0.5 + side * 0.97 * fw
        b = grid.box(ecx - 0.04, ecx + 0.04, sp.eye_y - 0.03, sp.eye_y + 0.1)
        x, y = grid.coords(b)
        d = _ellipse(x, y, ecx, sp.eye_y + 0.035, 0.032, 0.055)
        _paint(under, b, _coverage(d - 0.7 * _LINE, sc), _rgba(sp.skin, 0.7))
        _paint(under, b, _coverage(d, sc), _rgba(sp.skin, 0.92))
    before_face = under.clone()
    # face at rest (closed mouth)
    b = grid.box(0.5 - fw - 0.02, 0.5 + fw + 0.02, face.skull_cy - sp.face_height - 0.02,
                 face.jaw_cy + face.jaw_h_rest + 0.02)
    x, y = grid.coords(b)
    d = face.face(x, y, face.jaw_h_rest)
    _paint(under, b, _coverage(d - _LINE, sc), _rgba(sp.skin, 0.68))
    _paint(under, b, _coverage(d, sc), _rgba(sp.skin))
    # hair (front): the skull, grown a little, above the style's hairline
    b = grid.box(0.5 - fw - 0.03, 0.5 + fw + 0.03, face.skull_cy - sp.face_height - 0.03,
                 sp.eye_y + 0.02)
    rows = slice(0, b[0].stop)
    over = torch.zeros(1, 4, rows.stop, n)
    b = (rows, b[1])
    x, y = grid.coords(b)
    hl, slope = _hairline(sp, x)
    d = torch.maximum(
        _ellipse(x, y, 0.5, face.skull_cy - 0.004, fw + 0.012, sp.face_height + 0.016),
        (y - hl) * torch.rsqrt(1.0 + slope * slope),
    )
    _paint(over, b, _coverage(d, sc), _rgba(sp.hair))
    v = (torch.arange(n, dtype=torch.float32) + 0.5) / n
    shade = (1.08 - 0.16 * v).view(1, 1, n, 1)
    bg = torch.tensor(sp.background, dtype=torch.float32).view(1, 3, 1, 1) * shade
    return _Static(before_face, under, over, bg.expand(1, 3, n, n).clamp(0.0, 1.0).contiguous())


def _paint_dynamic(img: Tensor, face: _Face, grid: _Grid, before_face: Tensor) -> None:
    """Draw the per-frame shapes onto the (t, 4, H, W) head layer."""
    sp, e, sc = face.sp, face.e, grid.scale
    fw, ew = sp.face_width, sp.eye_size
    # jaw: the lower face drawn again, with the chin following the mouth opening
    if float(face.gap.max()) > 0:
        b = grid.box(0.5 - fw - 0.02, 0.5 + fw + 0.02, face.jaw_cy - 0.07,
                     face.jaw_cy + float(face.jaw_h.max()) + 0.02)
        img[:, :, b[0], b[1]] = before_face[:, :, b[0], b[1]]
        x, y = grid.coords(b)
        d = face.face(x, y, face.jaw_h)
        _paint(img, b, _coverage(d - _LINE, sc), _rgba(sp.skin, 0.68))
        _paint(img, b, _coverage(d, sc), _rgba(sp.skin))
    # forehead lines (age, brow raise)
    alpha = (0.25 * max(sp.age - 0.6, 0.0) / 0.4 + 0.7 * e["brow_raise"]).clamp(0.0, 0.8)
    if float(alpha.max()) > 0:
        for dy in (0.125, 0.145):
            b = grid.box(0.44, 0.56, sp.eye_y - dy - 0.01, sp.eye_y - dy + 0.01)
            x, y = grid.coords(b)
            cov = _coverage(_ellipse(x, y, 0.5, sp.eye_y - dy, 0.055, 0.0025), sc)
            _paint(img, b, cov * alpha, _rgba(sp.skin, 0.7))
    # cheek blush (cheek_raise lifts and strengthens it)
    cr = e["cheek_raise"]
    alpha = (sp.blush + 0.45 * cr).clamp(0.0, 0.7)
    pink = torch.tensor([0.93, 0.42, 0.42, 1.0])
    for side in (-1, 1):
        bcx = 0.5 + side * 1.1 * sp.eye_spacing
        b = grid.box(bcx - 0.07, bcx + 0.07, sp.eye_y + 0.03, sp.eye_y + 0.14)
        x, y = grid.coords(b)
        d = _ellipse(x, y, bcx, sp.eye_y + 0.085 - 0.02 * cr, 0.05 + 0.006 * cr, 0.03)
        _paint(img, b, _coverage(d, sc, soft=0.02 * sc) * alpha, pink)
    # nasolabial folds (smile, disgust): slanted lines from beside the nose to the mouth corners
    if float((e["lip_corner_pull"] + e["nose_wrinkle"]).max()) > 0:
        y0, y1 = face.nose_y - 0.012, face.mouth_y + 0.005
        for side, pull_side in ((-1, face.pull_l), (1, face.pull_r)):
            a_side = (0.8 * pull_side + 0.6 * e["nose_wrinkle"]).clamp(0.0, 0.9)
            x0 = 0.5 + side * (sp.nose_width + 0.012)
            x1 = 0.5 + side * (sp.mouth_width + 0.02)
            b = grid.box(min(x0, x1) - 0.02, max(x0, x1) + 0.02, float(y0.min()) - 0.01,
                         y1 + 0.01)
            x, y = grid.coords(b)
            tt = ((y - y0) / (y1 - y0)).clamp(0.0, 1.0)
            xl = x0 + (x1 - x0) * tt + side * 0.012 * tt * (1.0 - tt)
            d = torch.maximum((x - xl).abs() * 0.9 - 0.0025,
                              (y - 0.5 * (y0 + y1)).abs() - 0.5 * (y1 - y0))
            _paint(img, b, _coverage(d, sc) * a_side, _rgba(sp.skin, 0.72))
    # nose: soft tip shadow, bridge shadow, nostrils, wrinkle lines
    ny, nwid = face.nose_y, sp.nose_width
    b = grid.box(0.5 - nwid - 0.02, 0.5 + nwid + 0.02, sp.eye_y + 0.01,
                 sp.eye_y + sp.nose_length + 0.03)
    x, y = grid.coords(b)
    d = _ellipse(x, y, 0.5, ny - 0.008, nwid * 0.8, 0.017)
    _paint(img, b, _coverage(d, sc, soft=0.008 * sc + 1.0) * 0.55, _rgba(sp.skin, 0.82))
    bridge = _box(x, y, 0.5 + 0.45 * nwid, (sp.eye_y + ny) / 2 - 0.01, 0.003,
                  (ny - sp.eye_y) / 2 - 0.02)
    _paint(img, b, _coverage(bridge, sc) * 0.35, _rgba(sp.skin, 0.7))
    for side in (-1, 1):
        d = _ellipse(x, y, 0.5 + side * face.nostril_w * 0.5, ny + 0.003,
                     0.32 * face.nostril_w, 0.17 * nwid)
        _paint(img, b, _coverage(d, sc), _rgba(sp.skin, 0.42))
    nwr = e["nose_wrinkle"]
    if float(nwr.max()) > 0:
        for dy in (0.025, 0.04):
            d = _box(x, y, 0.5, sp.eye_y + dy, 0.018, 0.0025)
            _paint(img, b, _coverage(d, sc) * (0.8 * nwr).clamp(max=0.8), _rgba(sp.skin, 0.6))
    # eyes: outline with a thicker upper lash line, white, iris, pupil, catch light
    dark = torch.tensor([0.1, 0.08, 0.08, 1.0])
    white = torch.tensor([0.97, 0.97, 0.96, 1.0])
    iris = _rgba(sp.iris)
    lash = 0.012
    for side in (-1, 1):
        ex, upper, lower = face.eye_curves(side)
        b = grid.box(ex - ew - 0.02, ex + ew + 0.02, sp.eye_y - 1.2 * ew - 0.02,
                     sp.eye_y + 0.4 * ew + 0.02)
        x, y = grid.coords(b)
        top_o = upper._replace(a0=upper.a0 - lash, a2=upper.a2 + 0.5 * lash)
        bottom_o = lower._replace(a0=lower.a0 + 0.4 * _LINE)
        w_o = ew + 0.3 * lash
        _paint(img, b, _coverage(_band(x, y, ex, w_o, w_o, top_o, bottom_o), sc), dark)
        cov_white = _coverage(_band(x, y, ex, ew, ew, upper, lower), sc)
        _paint(img, b, cov_white, white)
        icy = sp.eye_y - 0.05 * ew
        d_iris = _circle(x, y, ex, icy, 0.5 * ew)
        _paint(img, b, torch.minimum(cov_white, _coverage(d_iris, sc)), iris)
        _paint(img, b, torch.minimum(cov_white, _coverage(d_iris + 0.28 * ew, sc)), dark)
        d_hl = _circle(x, y, ex + 0.2 * ew, icy - 0.2 * ew, 0.1 * ew)
        _paint(img, b, torch.minimum(cov_white, _coverage(d_hl, sc)) * 0.9, white)
    # frown lines between the brows
    bl = e["brow_lower"]
    if float(bl.max()) > 0:
        b = grid.box(0.47, 0.53, sp.eye_y - 1.2 * ew - 0.02, sp.eye_y - 0.2 * ew)
        x, y = grid.coords(b)
        for side in (-1, 1):
            d = _box(x, y, 0.5 + side * 0.012, sp.eye_y - 0.7 * ew, 0.0022, 0.35 * ew)
            _paint(img, b, _coverage(d, sc) * (0.8 * bl).clamp(max=0.8), _rgba(sp.skin, 0.6))
    # brows
    brow = _rgba(torch.tensor(sp.hair) * 0.6 + 0.04)
    for side in (-1, 1):
        bx, bw, _, top, bottom = face.brow_curves(side)
        cxm = 0.5 + side * (sp.eye_spacing + 0.08 * ew)
        reach = float(face.brow_inner.abs().max()) + sp.brow_thickness + 0.01
        b = grid.box(cxm - bw - 0.02, cxm + bw + 0.02,
                     float(face.brow_base.min()) - sp.brow_arch - reach,
                     float(face.brow_base.max()) + reach)
        x, y = grid.coords(b)
        _paint(img, b, _coverage(_band(x, y, bx, bw, bw, top, bottom), sc), brow)
    # mouth: lips, dark inner mouth (a line when closed), upper and lower teeth
    wl, wr = face.w_left, face.w_right
    wmax = float(torch.maximum(wl, wr).max())
    ot, ob = face.outer_top, face.outer_bottom

    def spread(c: _Curve) -> Tensor:
        return c.a2.abs() + c.a4.abs() + torch.maximum(c.c_left.abs(), c.c_right.abs())

    b = grid.box(0.5 - wmax - 0.01, 0.5 + wmax + 0.01, float((ot.a0 - spread(ot)).min()) - 0.01,
                 float((ob.a0 + spread(ob)).max()) + 0.01)
    x, y = grid.coords(b)
    _paint(img, b, _coverage(_band(x, y, 0.5, wl, wr, ot, ob), sc), _rgba(sp.lips))
    d_in = _band(x, y, 0.5, wl, wr, face.inner_top, face.inner_bottom)
    _paint(img, b, _coverage(d_in - 0.45 / sc, sc), torch.tensor([0.30, 0.08, 0.10, 1.0]))
    if float(d_in.min()) < 0.5 / sc:
        dx = x - 0.5
        s = (dx / torch.where(dx < 0, wl, wr)).clamp(-1.0, 1.0)
        y_top, _ = face.inner_top.at(s)
        y_bot, _ = face.inner_bottom.at(s)
        # teeth fade in as the opening at the centre grows from 0.5 to 1.5 pixels
        opening = (face.inner_bottom.a0 - face.inner_top.a0) * sc
        cov_in = _coverage(d_in, sc) * (opening - 0.5).clamp(0.0, 1.0)
        teeth = torch.tensor([0.95, 0.95, 0.91, 1.0])
        _paint(img, b, torch.minimum(cov_in, _coverage(y - y_top - 0.022, sc)), teeth)
        _paint(img, b, torch.minimum(cov_in, _coverage(y_bot - 0.01 - y, sc)) * 0.7, teeth)


def _warp(img: Tensor, pose: Tensor) -> Tensor:
    """Move and rotate the (t, 4, H, W) head layer by the head pose (t, 3) (dx, dy, roll)."""
    t, _, h, w = img.shape
    c = torch.cos(pose[:, 2]).view(t, 1, 1)
    s = torch.sin(pose[:, 2]).view(t, 1, 1)
    # normalised output coordinates ([-1, 1], pixel centres) relative to the moved pivot
    xn = (2.0 * torch.arange(w, dtype=torch.float32) + 1.0) / w - 1.0
    yn = (2.0 * torch.arange(h, dtype=torch.float32) + 1.0) / h - 1.0
    px = xn.view(1, 1, w) - (2 * _PIVOT[0] - 1 + 2 * pose[:, 0]).view(t, 1, 1)
    py = yn.view(1, h, 1) - (2 * _PIVOT[1] - 1 + 2 * pose[:, 1]).view(t, 1, 1)
    gx = (2 * _PIVOT[0] - 1) + c * px + s * py  # R(-roll): output pixel -> head layer
    gy = (2 * _PIVOT[1] - 1) - s * px + c * py
    grid = torch.stack([gx, gy], dim=-1)  # (t, H, W, 2)
    return F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _render_chunk(static: _Static, face: _Face, grid: _Grid, pose: Tensor, gain: Tensor) -> Tensor:
    t = face.t
    img = static.under.expand(t, -1, -1, -1).clone()
    _paint_dynamic(img, face, grid, static.before_face)
    rows = static.over.shape[2]
    top = img[:, :, :rows]
    over = static.over
    top.mul_(1.0 - over[:, 3:4]).add_(over)  # hair (front) over everything below it
    if bool((pose != 0).any()):
        img = _warp(img, pose)
    rgb, alpha = img[:, :3], img[:, 3:4]
    out = rgb.add_(static.background * (1.0 - alpha))
    out.mul_(gain.view(-1, 1, 1, 1) * 255.0).clamp_(0.0, 255.0).round_()
    return out.to(torch.uint8)


# ----------------------------------------------------------------------------- API


@contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    old = torch.get_num_threads()
    if n is None or n == old:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def render_landmarks(
    speaker: SpeakerParams,
    expression: Any,
    mouth: Any,
    nuisance: Mapping[str, Any] | None = None,
    size: int = 64,
) -> np.ndarray:
    """The landmarks [render_frames][decouple.data.synthtalk.render.render_frames] gives, without
    drawing.

    Args:
        speaker: The identity.
        expression: (k,) or (t, k) expression parameters (k = len(EXPRESSION_PARAMS)).
        mouth: (t, 4) mouth parameters (open, width, round, lip_shape).
        nuisance: Nuisance dict (blink, head_pose, gain); `None` = no blink, still head.
        size: Frame size (64, 128 or 256).

    Returns:
        (t, 68, 2) float32 pixel coordinates (x, y).

    Raises:
        ValueError: Bad shapes, non-finite values or an unsupported size.

    Examples:
        >>> from decouple.data.synthtalk.speakers import sample_speakers
        >>> from decouple.data.synthtalk.expressions import expression
        >>> sp = sample_speakers(1, seed=0)[0]
        >>> lm = render_landmarks(sp, expression("neutral", 1), np.zeros((2, 4)))
        >>> lm.shape, bool(lm[0, 30, 1] < lm[0, 51, 1] < lm[0, 8, 1])
        ((2, 68, 2), True)
    """
    e, m, nui = _check_inputs(expression, mouth, nuisance, size)
    with torch.no_grad(), _torch_threads(1):
        face = _Face(speaker, e, m, nui["blink"])
        pts = _head_to_pixels(_landmarks_head(face), nui["head_pose"], int(size))
    return pts.numpy().astype(np.float32)


def render_frames(
    speaker: SpeakerParams,
    expression: Any,
    mouth: Any,
    nuisance: Mapping[str, Any] | None = None,
    size: int = 64,
    *,
    chunk: int | None = None,
    threads: int | None = 1,
) -> Rendered:
    """Draw a clip: frames and 68-point landmarks from speaker, expression, mouth and nuisance.

    Args:
        speaker: The identity ([SpeakerParams][decouple.data.synthtalk.speakers.SpeakerParams]).
        expression: (k,) (the same every frame) or (t, k) expression parameters, ordered as
            [EXPRESSION_PARAMS][decouple.data.synthtalk.expressions.EXPRESSION_PARAMS];
            numpy or torch.
        mouth: (t, 4) mouth parameters: open [0, 1], width [-1, 1], round [0, 1],
            lip_shape [-1, 1] (the speech part's `mouth_track`).
        nuisance: Dict with `blink` (t,), `head_pose` (t, 3) and `gain` (t,)
            ([nuisance_tracks][decouple.data.synthtalk.nuisance.nuisance_tracks]);
            `None` = no blink, still head, gain 1.
        size: Frame size: 64 (default), 128 or 256.
        chunk: Frames drawn per batch (default: about 260,000 pixels per batch). The result does
            not depend on it.
        threads: torch intra-op threads while drawing (restored afterwards); `None` keeps the
            current setting. The default 1 is the fastest: the operations are small, and two
            threads on one clip lose to the synchronisation, badly so on a busy machine. To use
            several cores, render different clips in different processes (one thread each).

    Returns:
        [Rendered][decouple.data.synthtalk.render.Rendered]: `frames` (t, 3, size, size) uint8
        RGB and `landmarks` (t, 68, 2) float32 pixel coordinates.

    Raises:
        ValueError: Bad shapes, non-finite values, a nuisance dict with other keys, or a size
            other than 64, 128, 256.

    Examples:
        >>> from decouple.data.synthtalk.speakers import sample_speakers
        >>> from decouple.data.synthtalk.expressions import expression
        >>> from decouple.data.synthtalk.nuisance import nuisance_tracks
        >>> sp = sample_speakers(1, seed=0)[0]
        >>> mouth = np.zeros((5, 4), np.float32); mouth[:, 0] = np.linspace(0, 1, 5)
        >>> out = render_frames(sp, expression("happy", 3, sp), mouth, nuisance_tracks(5, 25.0, 0))
        >>> out.frames.shape, out.frames.dtype, out.landmarks.shape
        (torch.Size([5, 3, 64, 64]), torch.uint8, (5, 68, 2))
        >>> render_frames(sp, expression("sad", 1), mouth, size=100)
        Traceback (most recent call last):
        ...
        ValueError: render_frames: size must be one of (64, 128, 256), got 100
    """
    e, m, nui = _check_inputs(expression, mouth, nuisance, size)
    size = int(size)
    t = m.shape[0]
    if chunk is None:
        chunk = max(1, _PIXELS_PER_CHUNK // (size * size))
    if not isinstance(chunk, int) or isinstance(chunk, bool) or chunk < 1:
        raise ValueError(f"render_frames: chunk must be a positive int, got {chunk!r}")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ValueError(f"render_frames: threads must be a positive int or None, got {threads!r}")
    blink, pose, gain = nui["blink"], nui["head_pose"], nui["gain"]
    grid = _Grid(size)
    frames = torch.empty((t, 3, size, size), dtype=torch.uint8)
    with torch.no_grad(), _torch_threads(threads):
        face = _Face(speaker, e, m, blink)
        static = _static_layers(speaker, face, grid)
        for i in range(0, t, chunk):
            j = min(i + chunk, t)
            part = _Face(speaker, e[i:j], m[i:j], blink[i:j])
            frames[i:j] = _render_chunk(static, part, grid, pose[i:j], gain[i:j])
        landmarks = _head_to_pixels(_landmarks_head(face), pose, size)
    return Rendered(frames, landmarks.numpy().astype(np.float32))
