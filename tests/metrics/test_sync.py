"""Lip sync (decouple.metrics.sync): LSE-D / LSE-C against naive float64 loops and syncnet_python's
zero-padded form, sync_mfcc against python_speech_features and a direct-DFT reference, SyncNet v2's
key layout (the table of syncnet_python's SyncNetModel.S) and loading, and lip_sync's windows,
rates and offsets with an oracle model whose true alignment is known."""

from __future__ import annotations

import math
import statistics
import warnings

import numpy as np
import pytest
import python_speech_features
import torch

from decouple.checkpoint import CheckpointError, save_weights
from decouple.encoders import ImageSpecError
from decouple.metrics.sync import (
    SyncModel,
    SyncNet,
    SyncScore,
    lip_sync,
    sync_mfcc,
    sync_score,
    syncnet,
)

# ----------------------------------------------------------------------------- sync_score


def naive_distances(v: np.ndarray, a: np.ndarray, n: int, padding: str) -> list[float]:
    """Mean Euclidean distance per offset -n..n, by loops in float64."""
    w = len(v)
    out = []
    for k in range(-n, n + 1):
        dists = []
        for i in range(w):
            if 0 <= i + k < w:
                other = a[i + k]
            elif padding == "zeros":
                other = np.zeros_like(v[i])
            else:
                continue
            squares = [(float(x) - float(y)) ** 2 for x, y in zip(v[i], other, strict=True)]
            dists.append(math.sqrt(sum(squares)))
        out.append(sum(dists) / len(dists))
    return out


@pytest.mark.parametrize("padding", ["valid", "zeros"])
@pytest.mark.parametrize("n", [0, 1, 3, 11])
def test_sync_score_matches_naive_loop(padding: str, n: int) -> None:
    g = torch.Generator().manual_seed(n)
    v = torch.randn(12, 7, generator=g, dtype=torch.float64)
    a = torch.randn(12, 7, generator=g, dtype=torch.float64)
    score = sync_score(v, a, max_offset=n, padding=padding)
    ref = naive_distances(v.numpy(), a.numpy(), n, padding)
    assert score.distances.dtype == torch.float64 and score.distances.shape == (2 * n + 1,)
    np.testing.assert_allclose(score.distances.numpy(), ref, rtol=0, atol=1e-12)
    best = int(np.argmin(ref))
    assert score.offset == best - n
    assert list(score.offsets) == list(range(-n, n + 1))
    assert score.lse_d == pytest.approx(min(ref), abs=1e-12)
    assert score.lse_c == pytest.approx(statistics.median(ref) - min(ref), abs=1e-12)


def test_sync_score_float32_input_is_computed_in_float64() -> None:
    g = torch.Generator().manual_seed(1)
    v, a = torch.randn(9, 5, generator=g), torch.randn(9, 5, generator=g)
    score = sync_score(v, a, max_offset=4)
    ref = naive_distances(v.double().numpy(), a.double().numpy(), 4, "valid")
    np.testing.assert_allclose(score.distances.numpy(), ref, rtol=0, atol=1e-12)


def calc_pdist_form(v: torch.Tensor, a: torch.Tensor, vshift: int) -> tuple[torch.Tensor, int]:
    """syncnet_python's computation as its code does it: the audio features padded with vshift
    zero rows at both ends, for each video window the 2 vshift + 1 padded rows from its own
    index on, torch's pairwise_distance, the mean over windows, offset = vshift - argmin."""
    ap = torch.nn.functional.pad(a, (0, 0, vshift, vshift))
    rows = [torch.nn.functional.pairwise_distance(v[[i]].repeat(2 * vshift + 1, 1),
                                                  ap[i : i + 2 * vshift + 1])
            for i in range(len(v))]  # fmt: skip
    mdist = torch.stack(rows, 1).mean(1)
    return mdist, vshift - int(torch.argmin(mdist))


@pytest.mark.parametrize("vshift", [3, 5, 15])
def test_zeros_padding_reproduces_syncnet_python_with_opposite_offset_sign(vshift: int) -> None:
    g = torch.Generator().manual_seed(vshift)
    codes = torch.randn(40, 16, generator=g)
    v = codes[5:25] + 0.1 * torch.randn(20, 16, generator=g)
    a = codes[5 - 3 : 25 - 3]  # a_{i+3} = codes[i + 5] ~ v_i: audio lags by 3 windows
    mdist, their_offset = calc_pdist_form(v, a, vshift)
    score = sync_score(v, a, max_offset=vshift, padding="zeros")
    # pairwise_distance adds eps = 1e-6 to the difference: < 1e-4 in the distance here
    np.testing.assert_allclose(score.distances.numpy(), mdist.double().numpy(), atol=1e-4)
    assert score.offset == 3 and their_offset == -3
    assert score.lse_d == pytest.approx(float(mdist.min()), abs=1e-4)
    assert score.lse_c == pytest.approx(float(mdist.median() - mdist.min()), abs=1e-4)


@pytest.mark.parametrize("shift", [-3, -1, 0, 2, 4])
@pytest.mark.parametrize("padding", ["valid", "zeros"])
def test_sync_score_finds_a_known_shift(shift: int, padding: str) -> None:
    g = torch.Generator().manual_seed(3)
    codes = torch.randn(30, 8, generator=g, dtype=torch.float64)
    v = codes[8:22]
    a = codes[8 - shift : 22 - shift]  # audio window i + shift holds video window i's code
    score = sync_score(v, a, max_offset=5, padding=padding)
    assert score.offset == shift
    if padding == "valid":
        assert score.lse_d == 0.0
    assert score.lse_c > 1.0


def test_sync_score_minimum_window_counts() -> None:
    v = torch.randn(4, 3)
    assert sync_score(v, v, max_offset=3).offset == 0  # w = N + 1: one pair at +-N
    with pytest.raises(ValueError, match=r"4 windows.*max_offset=4 needs at least 5"):
        sync_score(v, v, max_offset=4)
    one = torch.randn(1, 3)
    assert sync_score(one, one, max_offset=10, padding="zeros").offset == 0


@pytest.mark.parametrize(
    ("video", "audio", "kwargs", "match"),
    [
        (torch.randn(5, 3), torch.randn(5, 4), {}, r"same shape"),
        (torch.randn(5), torch.randn(5), {}, r"video_embeddings must be a floating \(w, d\)"),
        (torch.randn(5, 3), torch.ones(5, 3, dtype=torch.long), {}, r"audio_embeddings"),
        (torch.randn(5, 3), torch.randn(5, 3), {"padding": "same"}, r"padding must be one of"),
        (torch.randn(5, 3), torch.randn(5, 3), {"max_offset": -1}, r"max_offset must be an int"),
        (torch.randn(5, 3), torch.randn(5, 3), {"max_offset": 1.0}, r"max_offset must be an int"),
        (torch.full((5, 3), math.nan), torch.randn(5, 3), {"max_offset": 1}, r"non-finite"),
    ],
)
def test_sync_score_rejects(video: object, audio: object, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        sync_score(video, audio, **kwargs)  # type: ignore[arg-type]


def test_sync_score_result() -> None:
    s = sync_score(torch.eye(4), torch.eye(4), max_offset=1)
    assert isinstance(s, SyncScore) and isinstance(s.lse_d, float) and isinstance(s.offset, int)
    assert s.offsets == range(-1, 2)
    with pytest.raises(AttributeError):
        s.offset = 3  # type: ignore[misc]


# ----------------------------------------------------------------------------- sync_mfcc


def naive_mfcc(x: np.ndarray) -> np.ndarray:
    """python_speech_features.mfcc's defaults at 16 kHz from their formulas, with a direct DFT
    (explicit sums) instead of an FFT; returns (n, 13)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.concatenate([x[:1], x[1:] - 0.97 * x[:-1]])
    n = 1 if len(y) <= 400 else 1 + math.ceil((len(y) - 400) / 160)
    y = np.concatenate([y, np.zeros((n - 1) * 160 + 400 - len(y))])
    high = 2595 * math.log10(1 + 8000 / 700)
    hz = [700 * (10 ** (high * p / 27 / 2595) - 1) for p in range(28)]
    edge = [math.floor(513 * f / 16000) for f in hz]
    m = np.arange(400)
    eps = np.finfo(float).eps
    out = np.zeros((n, 13))
    for j in range(n):
        frame = y[160 * j : 160 * j + 400]
        power = np.array([
            (np.sum(frame * np.cos(2 * np.pi * k * m / 512)) ** 2
             + np.sum(frame * np.sin(2 * np.pi * k * m / 512)) ** 2) / 512
            for k in range(257)
        ])  # fmt: skip
        energy = power.sum() or eps
        logs = []
        for f in range(26):
            lo, mid, hi = edge[f], edge[f + 1], edge[f + 2]
            e = sum(power[i] * (i - lo) / (mid - lo) for i in range(lo, mid))
            e += sum(power[i] * (hi - i) / (hi - mid) for i in range(mid, hi))
            logs.append(math.log(e if e != 0 else eps))
        for q in range(13):
            c = sum(logs[i] * math.cos(math.pi * q * (2 * i + 1) / 52) for i in range(26))
            c *= math.sqrt((1 if q == 0 else 2) / 26)
            out[j, q] = c * (1 + 11 * math.sin(math.pi * q / 22))
        out[j, 0] = math.log(energy)
    return out


@pytest.mark.parametrize("num_samples", [1, 399, 400, 401, 561, 1200, 16000])
def test_sync_mfcc_equals_python_speech_features(num_samples: int) -> None:
    g = np.random.default_rng(num_samples)
    x = g.uniform(-0.5, 0.5, num_samples)
    got = sync_mfcc(torch.from_numpy(x))
    ref = python_speech_features.mfcc(32768 * x, 16000)  # syncnet_python's call on int16 values
    assert got.dtype == torch.float64 and got.shape == (13, ref.shape[0])
    np.testing.assert_allclose(got.numpy().T, ref, rtol=0, atol=1e-9)


def test_sync_mfcc_equals_direct_formulas() -> None:
    g = np.random.default_rng(7)
    t = np.arange(1300) / 16000
    x = 0.3 * np.sin(2 * np.pi * 300 * t) + 0.05 * g.standard_normal(1300)
    x[1000:] = 0.0  # silent tail: an all-zero last frame takes the eps branches
    got = sync_mfcc(torch.from_numpy(x)).numpy().T
    ref = naive_mfcc(32768 * x)
    assert got.shape == ref.shape == (7, 13)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-7)


def test_sync_mfcc_channels_rates_and_errors() -> None:
    g = np.random.default_rng(3)
    stereo = g.uniform(-0.5, 0.5, (2, 3000))
    np.testing.assert_allclose(
        sync_mfcc(torch.from_numpy(stereo)).numpy(),
        sync_mfcc(torch.from_numpy(stereo.mean(0))).numpy(), atol=1e-12)  # fmt: skip
    from decouple.data.io import resample_audio

    x = torch.from_numpy(g.uniform(-0.5, 0.5, 4410))
    ref = python_speech_features.mfcc(32768 * resample_audio(x, 22050, 16000).numpy(), 16000)
    np.testing.assert_allclose(sync_mfcc(x, 22050).numpy().T, ref, rtol=0, atol=1e-9)
    assert sync_mfcc(torch.zeros(16000, dtype=torch.float32)).shape == (13, 99)
    for bad in (torch.zeros(100, dtype=torch.int16), torch.zeros(0), torch.zeros(1, 2, 100)):
        with pytest.raises(ValueError, match="waveform must be a floating tensor"):
            sync_mfcc(bad)
    with pytest.raises(ValueError, match="sample_rate must be a positive int"):
        sync_mfcc(torch.zeros(100), 16000.0)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- SyncNet v2


def syncnet_python_layout() -> dict[str, tuple[int, ...]]:
    """Key -> shape of syncnet_python's SyncNetModel.S(num_layers_in_fc_layers=1024), written
    out from its layer list (Sequential indices count the ReLU and pooling layers)."""
    convs = {
        "netcnnaud": [(0, (64, 1, 3, 3)), (4, (192, 64, 3, 3)), (8, (384, 192, 3, 3)),
                      (11, (256, 384, 3, 3)), (14, (256, 256, 3, 3)), (18, (512, 256, 5, 4))],
        "netcnnlip": [(0, (96, 3, 5, 7, 7)), (4, (256, 96, 1, 5, 5)), (8, (256, 256, 1, 3, 3)),
                      (11, (256, 256, 1, 3, 3)), (14, (256, 256, 1, 3, 3)),
                      (18, (512, 256, 1, 6, 6))],
    }  # fmt: skip
    layout: dict[str, tuple[int, ...]] = {}

    def bn(prefix: str, c: int) -> None:
        for name in ("weight", "bias", "running_mean", "running_var"):
            layout[f"{prefix}.{name}"] = (c,)
        layout[f"{prefix}.num_batches_tracked"] = ()

    for tower, layers in convs.items():
        for index, shape in layers:
            layout[f"{tower}.{index}.weight"] = shape
            layout[f"{tower}.{index}.bias"] = (shape[0],)
            bn(f"{tower}.{index + 1}", shape[0])
    for head in ("netfcaud", "netfclip"):
        layout[f"{head}.0.weight"], layout[f"{head}.0.bias"] = (512, 512), (512,)
        bn(f"{head}.1", 512)
        layout[f"{head}.3.weight"], layout[f"{head}.3.bias"] = (1024, 512), (1024,)
    return layout


@pytest.fixture(scope="module")
def net() -> SyncNet:
    torch.manual_seed(0)
    return syncnet()


def test_syncnet_has_syncnet_python_key_layout(net: SyncNet) -> None:
    got = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert got == syncnet_python_layout()
    assert not net.training


def test_syncnet_towers_and_embed_shapes(net: SyncNet) -> None:
    assert isinstance(net, SyncModel)
    video = torch.randint(0, 256, (2, 5, 3, 224, 224), dtype=torch.uint8)
    with torch.no_grad():
        v = net.embed_video(video)
        a = net.embed_audio(torch.randn(3, 13, 20, dtype=torch.float64))
        small = net.embed_video(torch.rand(1, 5, 3, 40, 40))
        # syncnet_python's input: BGR, 0..255 floats, (b, 3, 5, 224, 224)
        raw = video.flip(2).float().transpose(1, 2).contiguous()
        ref = net.forward_lip(raw)
    assert v.shape == (2, 1024) and a.shape == (3, 1024) and small.shape == (1, 1024)
    assert a.dtype == torch.float32
    torch.testing.assert_close(v, ref, rtol=1e-4, atol=1e-3)
    with pytest.raises(ValueError, match=r"embed_video: windows must be \(b, 5, 3, h, w\)"):
        net.embed_video(torch.zeros(2, 4, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(ImageSpecError, match="SyncNet"):
        net.embed_video(torch.full((1, 5, 3, 32, 32), 200.0))  # 0..255 floats are refused
    with pytest.raises(ValueError, match=r"embed_audio: windows must be floating \(b, 13, 20\)"):
        net.embed_audio(torch.randn(2, 13, 19))
    with pytest.raises(ValueError, match=r"forward_lip: x must be \(b, 3, 5, 224, 224\)"):
        net.forward_lip(torch.zeros(1, 3, 5, 112, 112))
    with pytest.raises(ValueError, match=r"forward_aud: x must be \(b, 1, 13, 20\)"):
        net.forward_aud(torch.zeros(1, 13, 20))


def test_syncnet_loads_a_state_dict_file(tmp_path, net: SyncNet) -> None:
    path = save_weights(net, tmp_path / "syncnet_v2.model")
    loaded = syncnet(path)
    for (k, x), (k2, y) in zip(net.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(x, y), k
    # the published file predates BatchNorm's num_batches_tracked
    old = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(old, tmp_path / "old.model")
    mfcc = torch.randn(2, 13, 20)
    with torch.no_grad():
        torch.testing.assert_close(syncnet(tmp_path / "old.model").embed_audio(mfcc),
                                   net.embed_audio(mfcc))  # fmt: skip


def test_syncnet_rejects_a_wrong_state_dict(tmp_path, net: SyncNet) -> None:
    state = dict(net.state_dict())
    del state["netcnnlip.18.weight"]
    state["netcnnlip.23.weight"] = torch.zeros(3)
    state["netfcaud.3.weight"] = torch.zeros(512, 512)
    torch.save(state, tmp_path / "bad.model")
    with pytest.raises(CheckpointError) as err:
        syncnet(tmp_path / "bad.model")
    message = str(err.value)
    for part in ("bad.model", "missing keys (1): netcnnlip.18.weight",
                 "unexpected keys (1): netcnnlip.23.weight",
                 "netfcaud.3.weight: file (512, 512) vs model (1024, 512)"):  # fmt: skip
        assert part in message, message
    with pytest.raises(FileNotFoundError):
        syncnet(tmp_path / "absent.model")


# ----------------------------------------------------------------------------- lip_sync

LEVELS = (0.02, 0.06, 0.18, 0.54)  # tone amplitude per code
TONE = 1000.0  # Hz


def tone(codes: list[int], sample_rate: int) -> torch.Tensor:
    """One 25 fps frame (40 ms) of a 1 kHz tone per code, at amplitude LEVELS[code]."""
    per = sample_rate // 25
    amp = torch.tensor([LEVELS[c] for c in codes], dtype=torch.float64).repeat_interleave(per)
    t = torch.arange(len(amp), dtype=torch.float64) / sample_rate
    return amp * torch.sin(2 * math.pi * TONE * t)


class Oracle:
    """Video: frame f's grey value encodes its code (30 + 60 c); audio: the log energy of the
    MFCC column 4g + 1 (inside frame g, clear of its edges) encodes it. Both sides embed a
    window as the one-hot codes of its 5 frames, so aligned windows are at distance 0."""

    def __init__(self) -> None:
        self.calls = 0
        ref = torch.stack([sync_mfcc(tone([c] * 4, 16000))[0, 1] for c in range(len(LEVELS))])
        self.log_energy = ref  # (K,)

    def embed_video(self, windows: torch.Tensor) -> torch.Tensor:
        assert windows.dtype == torch.uint8 and windows.shape[1:3] == (5, 3)
        self.calls += 1
        codes = ((windows.float().mean((2, 3, 4)) - 30) / 60).round().long().clamp(0, 3)
        return torch.nn.functional.one_hot(codes, 4).flatten(1).float()

    def embed_audio(self, windows: torch.Tensor) -> torch.Tensor:
        assert windows.shape[1:] == (13, 20)
        energy = windows[:, 0, 1::4].double()  # (b, 5)
        codes = (energy[..., None] - self.log_energy).abs().argmin(-1)
        return torch.nn.functional.one_hot(codes, 4).flatten(1).float()


def clip(num_frames: int, shift: int, *, seed: int = 0, fps: int = 25, sample_rate: int = 16000
         ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Frames at `fps` showing codes[f] at 25 fps time f, and audio whose frame f carries
    codes[f - shift] (shift > 0: the audio lags)."""
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, 4, (num_frames + 8,), generator=g).tolist()  # codes[f + 4]
    t25 = num_frames
    audio = tone([codes[f - shift + 4] for f in range(t25)], sample_rate)
    n_src = round(t25 * fps / 25)
    slots = [min(t25 - 1, round(j * 25 / fps)) for j in range(n_src)]
    grey = torch.tensor([30 + 60 * codes[s + 4] for s in slots], dtype=torch.uint8)
    frames = grey[:, None, None, None].expand(n_src, 3, 6, 6).contiguous()
    return frames, audio.float()


@pytest.mark.parametrize("shift", [-3, -2, -1, 0, 1, 2, 3])
def test_oracle_gives_the_audio_shift(shift: int) -> None:
    frames, audio = clip(40, shift, seed=shift + 10)
    for padding in ("valid", "zeros"):
        s = lip_sync(Oracle(), frames, audio, fps=25, max_offset=6, padding=padding)
        assert s.offset == shift, (padding, s)
        assert s.lse_c > 0.5
        if padding == "valid":
            assert s.lse_d == 0.0 and s.distances[shift + 6] == 0.0


@pytest.mark.parametrize("shift", [-2, 0, 3])
def test_oracle_at_30_fps_and_22050_hz(shift: int) -> None:
    frames, audio = clip(50, shift, seed=4, fps=30, sample_rate=22050)
    assert frames.shape[0] == 60 and audio.shape[0] == 50 * 882
    s = lip_sync(Oracle(), frames, audio, fps=30, sample_rate=22050, max_offset=5)
    assert s.offset == shift and s.lse_d == 0.0


def test_batches_and_float_frames_do_not_change_the_result() -> None:
    frames, audio = clip(30, 1, seed=2)
    ref = lip_sync(Oracle(), frames, audio, fps=25, max_offset=4)
    oracle = Oracle()
    got = lip_sync(oracle, frames.float() / 255, audio.double(), fps=25, max_offset=4,
                   batch_size=4)  # fmt: skip
    assert oracle.calls == math.ceil(26 / 4)
    torch.testing.assert_close(got.distances, ref.distances, rtol=0, atol=0)


class Recorder:
    """Keeps the windows lip_sync passes."""

    def __init__(self) -> None:
        self.video: list[torch.Tensor] = []
        self.audio: list[torch.Tensor] = []

    def embed_video(self, windows: torch.Tensor) -> torch.Tensor:
        self.video.append(windows.clone())
        return windows.float().flatten(1)[:, :6]

    def embed_audio(self, windows: torch.Tensor) -> torch.Tensor:
        self.audio.append(windows.clone())
        return windows.flatten(1)[:, :6]


@pytest.mark.parametrize("audio_frames", [9.2, 12.0, 14.5])
def test_windows_are_frames_and_mfcc_columns(audio_frames: float) -> None:
    """Video window i = frames i..i+4; audio window i = columns 4i..4i+19 of the MFCC of the
    audio cut or zero-padded to 640 n + 240 samples, n = min(frames, whole audio frames)."""
    g = torch.Generator().manual_seed(0)
    frames = torch.rand(12, 3, 4, 4, generator=g)
    audio = 0.2 * torch.randn(int(audio_frames * 640), generator=g, dtype=torch.float64)
    rec = Recorder()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lip_sync(rec, frames, audio, fps=25, max_offset=1, batch_size=3)
    n = min(12, int(audio_frames))
    w = n - 4
    video = torch.cat(rec.video)
    expected = (frames * 255).round().to(torch.uint8)
    assert video.shape == (w, 5, 3, 4, 4)
    assert all(torch.equal(video[i], expected[i : i + 5]) for i in range(w))
    x = np.zeros(640 * n + 240)
    m = min(len(x), len(audio))
    x[:m] = audio.numpy()[:m]
    mfcc = python_speech_features.mfcc(32768 * x, 16000).T  # (13, 4n)
    assert mfcc.shape == (13, 4 * n)
    got = torch.cat(rec.audio)
    assert got.shape == (w, 13, 20) and got.dtype == torch.float32
    for i in range(w):
        np.testing.assert_allclose(got[i].numpy(), mfcc[:, 4 * i : 4 * i + 20], rtol=1e-6,
                                   atol=1e-4)  # fmt: skip


def test_short_audio_trims_the_video_with_a_warning() -> None:
    frames, audio = clip(30, 0, seed=5)
    with pytest.warns(UserWarning, match=r"audio \(0\.800 s\) is shorter than the video.*first 20"):
        s = lip_sync(Oracle(), frames, audio[: 20 * 640], fps=25, max_offset=3)
    assert s.offset == 0 and s.lse_d == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # less than one frame short: no warning
        lip_sync(Oracle(), frames, audio[: 29 * 640 + 300], fps=25, max_offset=3)


def test_shortest_clip_is_scored_and_a_shorter_one_raises(net: SyncNet) -> None:
    g = torch.Generator().manual_seed(1)
    frames = torch.randint(0, 256, (6, 3, 48, 48), dtype=torch.uint8, generator=g)
    audio = 0.1 * torch.randn(6 * 640, generator=g)
    s = lip_sync(net, frames, audio, fps=25, max_offset=1)  # 5 frames + the offset
    assert s.distances.shape == (3,) and s.lse_d > 0 and s.lse_c >= 0
    with pytest.raises(ValueError, match=r"the clip has 5 frames at 25 fps.*needs at least 6"):
        lip_sync(net, frames[:5], audio, fps=25, max_offset=1)
    z = lip_sync(net, frames[:5], audio, fps=25, max_offset=1, padding="zeros")  # one window
    assert z.distances.shape == (3,)
    with pytest.raises(ValueError, match=r"has 4 frames.*padding='zeros' needs at least 5"):
        lip_sync(net, frames[:4], audio, fps=25, max_offset=1, padding="zeros")
    # the audio limits the clip too
    with pytest.raises(ValueError, match=r"the clip has 5 frames at 25 fps .*0\.200 s of audio"):
        lip_sync(net, frames, audio[: 5 * 640], fps=25, max_offset=1)
    # the usual +-10: 15 frames are enough (the pipelines of the papers need 100)
    f15, a15 = clip(15, 0, seed=9)
    assert lip_sync(Oracle(), f15, a15, fps=25, max_offset=10).offset == 0
    with pytest.raises(ValueError, match=r"14 frames at 25 fps.*max_offset=10.*at least 15"):
        lip_sync(Oracle(), f15[:14], a15, fps=25, max_offset=10)


def test_module_mode_is_restored(net: SyncNet) -> None:
    frames = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    audio = 0.1 * torch.randn(6 * 640)
    ref = lip_sync(net, frames, audio, fps=25, max_offset=1)
    net.train()
    frozen = next(m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
    frozen.eval()  # a part frozen in eval mode inside a training model stays in eval mode
    try:
        got = lip_sync(net, frames, audio, fps=25, max_offset=1)
        assert net.training
        assert not frozen.training
    finally:
        net.eval()
    torch.testing.assert_close(got.distances, ref.distances)


def test_lip_sync_rejects_bad_input() -> None:
    frames, audio = clip(20, 0)
    oracle = Oracle()
    with pytest.raises(TypeError, match="embed_video and embed_audio"):
        lip_sync(object(), frames, audio, fps=25)  # type: ignore[arg-type]
    with pytest.raises(ImageSpecError, match="channels-last"):
        lip_sync(oracle, frames.permute(0, 2, 3, 1), audio, fps=25, max_offset=2)
    with pytest.raises(ImageSpecError, match=r"must be \(b, 3, h, w\)"):
        lip_sync(oracle, frames[0], audio, fps=25, max_offset=2)
    with pytest.raises(ImageSpecError, match="values up to 255"):
        lip_sync(oracle, frames.float(), audio, fps=25, max_offset=2)
    with pytest.raises(ValueError, match="frames is empty"):
        lip_sync(oracle, frames[:0], audio, fps=25, max_offset=2)
    with pytest.raises(ValueError, match=r"waveform must be a floating tensor \(s,\) or \(c, s\)"):
        lip_sync(oracle, frames, (audio * 1000).short(), fps=25, max_offset=2)
    for kwargs, match in [({"fps": 0}, "fps must be a positive number"),
                          ({"fps": 25, "sample_rate": 0}, "sample_rate must be a positive int"),
                          ({"fps": 25, "batch_size": 0}, "batch_size must be a positive int"),
                          ({"fps": 25, "padding": "full"}, "padding must be one of")]:  # fmt: skip
        with pytest.raises(ValueError, match=match):
            lip_sync(oracle, frames, audio, **kwargs)

    class Wrong(Oracle):
        def embed_audio(self, windows: torch.Tensor) -> torch.Tensor:
            return super().embed_audio(windows)[:, :10]

    with pytest.raises(ValueError, match=r"20-d and model.embed_audio 10-d"):
        lip_sync(Wrong(), frames, audio, fps=25, max_offset=2)

    class Flat(Oracle):
        def embed_video(self, windows: torch.Tensor) -> torch.Tensor:
            return super().embed_video(windows).flatten()

    with pytest.raises(ValueError, match=r"model.embed_video must return \(b, d\)"):
        lip_sync(Flat(), frames, audio, fps=25, max_offset=2)
