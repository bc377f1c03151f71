"""Media I/O: read and write video and audio with PyAV and soundfile (no system FFmpeg needed).

This is the one home of media decoding and encoding in `decouple`; converters, the shard
reader, metrics and recipes all call it.

- Video is decoded with PyAV (its wheels bundle FFmpeg, libx264 included) into a
  [Video][decouple.data.io.Video]: `frames` of shape (t, 3, h, w), uint8 RGB, and `fps`.
- Audio is read with soundfile (bundled libsndfile) for `.wav`, `.flac` and `.ogg`, and with
  PyAV for everything else (`.m4a`, `.mp4`, `.aac`, `.flv`, ...). It becomes an
  [Audio][decouple.data.io.Audio]: a float32 waveform in [-1, 1], mono (s,) by default, and
  its sample rate. Resampling uses `torchaudio.functional.resample`.
- Every source can be a path or the bytes of an encoded file (a shard member, say). Errors
  raise [MediaError][decouple.data.io.MediaError] naming the file (or the `name` given for
  bytes) and what was wrong.
- Files are written to a temporary name in the target directory and renamed when complete
  ([atomic_write_bytes][decouple.data.io.atomic_write_bytes]), so a file under its final name
  is never half-written.

Encoder delay: AAC encoders prepend priming samples (1024 for FFmpeg's encoder). MP4/M4A
files written here (and by FFmpeg) record them in an edit list and decode without them; raw
ADTS `.aac` and FLV have no such field, so their decoded audio starts with the priming
samples, as with any FFmpeg-based reader.
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

try:
    import av
    import soundfile as sf
    import torchaudio.functional as AF
    from av.video.reformatter import VideoReformatter
except ImportError as _err:  # pragma: no cover - depends on the environment
    raise ImportError(
        f"decouple.data.io needs PyAV, soundfile and torchaudio ({_err}): "
        "pip install 'decouple[audio]'"
    ) from _err

__all__ = [
    "Audio",
    "MediaError",
    "MediaSource",
    "Video",
    "atomic_write_bytes",
    "encode_audio",
    "encode_av",
    "encode_video",
    "read_audio",
    "read_av",
    "read_video",
    "resample_audio",
    "resample_indices",
    "temp_file_for",
    "write_audio",
    "write_av",
    "write_video",
]

MediaSource = str | os.PathLike | bytes | bytearray | memoryview
"""A path to a media file, or the bytes of an encoded file held in memory."""

# Read with soundfile (libsndfile); every other suffix goes through PyAV.
SOUNDFILE_SUFFIXES = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}
# Audio written through PyAV: suffix/format name -> (FFmpeg muxer, codec).
_PYAV_AUDIO = {
    "m4a": ("mp4", "aac"),
    "mp4": ("mp4", "aac"),
    "aac": ("adts", "aac"),
    "flv": ("flv", "aac"),
}
# Containers for video: suffix/format name -> FFmpeg muxer.
_VIDEO_CONTAINERS = {"mp4": "mp4", "m4v": "mp4", "mov": "mov", "mkv": "matroska", "flv": "flv"}
# Encoders that take the x264-style `crf` and `preset` options.
_CRF_CODECS = {"libx264", "libx265"}


class MediaError(ValueError):
    """A media file (or in-memory encoded media) cannot be read or written as asked.

    The message names the file and what was wrong: no video stream, undecodable data, no
    frames, an odd frame size for yuv420p, and so on.

    Examples:
        >>> try:
        ...     read_video(b"not a video", name="clip.mp4")
        ... except MediaError as err:
        ...     print(str(err).split(":")[0])
        clip.mp4
    """


@dataclass
class Video:
    """Decoded video frames.

    Attributes:
        frames: Frames (t, 3, h, w), uint8 RGB.
        fps: Frames per second.

    Examples:
        >>> v = Video(torch.zeros(30, 3, 8, 8, dtype=torch.uint8), fps=30.0)
        >>> v.num_frames, v.duration
        (30, 1.0)
    """

    frames: Tensor
    fps: float

    def __post_init__(self) -> None:
        f = self.frames
        if not isinstance(f, Tensor) or f.dtype != torch.uint8 or f.ndim != 4 or f.shape[1] != 3:
            raise ValueError(
                "Video.frames must be a uint8 tensor (t, 3, h, w), got "
                f"{_describe(f)}"
            )
        if not (isinstance(self.fps, int | float) and math.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"Video.fps must be a positive number, got {self.fps!r}")
        self.fps = float(self.fps)

    @property
    def num_frames(self) -> int:
        """Number of frames t."""
        return int(self.frames.shape[0])

    @property
    def duration(self) -> float:
        """Duration in seconds (`num_frames / fps`)."""
        return self.num_frames / self.fps


@dataclass
class Audio:
    """A decoded waveform.

    Attributes:
        waveform: Samples (s,) for mono, or (c, s) for c channels (`read_audio(...,
            mono=False)`); floating point in [-1, 1] (float32 when decoded here).
        sample_rate: Samples per second.

    Examples:
        >>> a = Audio(torch.zeros(16000), sample_rate=16000)
        >>> a.num_samples, a.duration
        (16000, 1.0)
    """

    waveform: Tensor
    sample_rate: int

    def __post_init__(self) -> None:
        w = self.waveform
        if not isinstance(w, Tensor) or not w.is_floating_point() or w.ndim not in (1, 2):
            raise ValueError(
                f"Audio.waveform must be a floating tensor (s,) or (c, s), got {_describe(w)}"
            )
        if isinstance(self.sample_rate, bool) or not isinstance(self.sample_rate, int | np.integer):
            raise ValueError(f"Audio.sample_rate must be an int, got {self.sample_rate!r}")
        if self.sample_rate <= 0:
            raise ValueError(f"Audio.sample_rate must be positive, got {self.sample_rate}")
        self.sample_rate = int(self.sample_rate)

    @property
    def num_samples(self) -> int:
        """Number of samples s (per channel)."""
        return int(self.waveform.shape[-1])

    @property
    def duration(self) -> float:
        """Duration in seconds (`num_samples / sample_rate`)."""
        return self.num_samples / self.sample_rate


# --------------------------------------------------------------------------------------------
# helpers


def _describe(x: object) -> str:
    if isinstance(x, Tensor | np.ndarray):
        return f"{type(x).__name__} of shape {tuple(x.shape)} and dtype {x.dtype}"
    return type(x).__name__


def _label(src: MediaSource, name: str | None) -> str:
    if name is not None:
        return name
    if isinstance(src, bytes | bytearray | memoryview):
        return f"<{len(src)} bytes of encoded media>"
    return os.fspath(src)


def _as_input(src: MediaSource, label: str) -> str | io.BytesIO:
    """A path string or an in-memory file for PyAV / soundfile."""
    if isinstance(src, bytes | bytearray | memoryview):
        if len(src) == 0:
            raise MediaError(f"{label}: empty (0 bytes)")
        return io.BytesIO(bytes(src))
    if not isinstance(src, str | os.PathLike):
        raise TypeError(f"media source must be a path or bytes, got {type(src).__name__}")
    path = os.fspath(src)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{label}: no such file")
    if os.path.getsize(path) == 0:
        raise MediaError(f"{label}: empty file (0 bytes)")
    return path


def temp_file_for(path: str | os.PathLike) -> tuple[int, Path]:
    """Create the temporary file a final file is written to before it is renamed into place.

    The file is `.NAME.XXXX.tmp` in the destination's directory (so `os.replace` is atomic),
    with the permissions a plain `open()` would give (0666 minus the umask), not the 0600 of
    `tempfile.mkstemp`: datasets are usually shared.

    Args:
        path: The final destination.

    Returns:
        An open file descriptor and the temporary path.

    Examples:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> fd, tmp = temp_file_for(Path(d) / "x.tar")
        >>> os.close(fd); tmp.name.startswith(".x.tar.") and tmp.name.endswith(".tmp")
        True
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)
    return fd, Path(tmp)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` through a temporary file in the same directory and a rename.

    A reader (or a crashed run) never sees a half-written file under the final name. Missing
    parent directories are created.

    Args:
        path: Destination file.
        data: Bytes to write.

    Returns:
        The destination path.

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     p = atomic_write_bytes(Path(d) / "a" / "x.bin", b"abc")
        ...     p.read_bytes(), sorted(q.name for q in p.parent.iterdir())
        (b'abc', ['x.bin'])
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_file_for(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def _format_from_suffix(path: str | os.PathLike, known: dict[str, Any], what: str) -> str:
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in known:
        raise ValueError(
            f"{os.fspath(path)}: cannot tell the {what} format from the suffix "
            f"'.{suffix}'; expected one of {sorted('.' + k for k in known)}"
        )
    return suffix


# --------------------------------------------------------------------------------------------
# decoding


@functools.cache
def _swscale_has_threads() -> bool:
    """Whether this PyAV's `VideoReformatter.reformat` takes `threads` (newer swscale)."""
    try:
        VideoReformatter().reformat(av.VideoFrame(16, 16, "yuv420p"), format="rgb24", threads=1)
    except TypeError:
        return False
    return True


def _rgb_converter(threads: int | None) -> Callable[..., np.ndarray]:
    """Frame -> (h, w, 3) uint8 RGB array through one swscale context (reused per stream).

    `threads` None leaves swscale's automatic threading; an int is passed on (as for the
    decoder: for small frames swscale's own threads made the conversion 2-6x slower on two
    busy cores, 13-15 us vs 30-115 us per 128 x 128 frame). With `out`, the RGB frame is
    copied straight into that (h, w, 3) array (one copy instead of two).
    """
    reformatter = VideoReformatter()
    options = {"threads": threads} if threads is not None and _swscale_has_threads() else {}

    def to_rgb(frame: av.VideoFrame, out: np.ndarray | None = None) -> np.ndarray:
        rgb = reformatter.reformat(frame, format="rgb24", **options)
        if out is None:
            return rgb.to_ndarray()
        plane = rgb.planes[0]  # packed rgb24 rows, each padded to plane.line_size bytes
        h, w = rgb.height, rgb.width
        rows = np.frombuffer(plane, np.uint8).reshape(h, plane.line_size)
        out[...] = rows[:, : 3 * w].reshape(h, w, 3)
        return out

    return to_rgb


@dataclass
class _Decoded:
    frames: list[np.ndarray]
    times: list[float | None]
    fps: float | None
    audio: list[np.ndarray]
    audio_start: float | None
    audio_rate: int | None
    audio_duration: int | None  # samples the container says the stream holds


def _decode(
    src: MediaSource, label: str, *, video: bool, audio: bool, threads: int | None = None
) -> _Decoded:
    """Decode the first video and/or audio stream of a container with PyAV.

    `threads` None: FFmpeg's automatic frame and slice threading; else that many threads.
    """
    target = _as_input(src, label)
    out = _Decoded([], [], None, [], None, None, None)
    try:
        with av.open(target, "r") as container:
            vs = container.streams.video[0] if video and container.streams.video else None
            ast = container.streams.audio[0] if audio and container.streams.audio else None
            if video and vs is None:
                raise MediaError(f"{label}: no video stream")
            streams = [s for s in (vs, ast) if s is not None]
            if not streams:
                return out
            if vs is not None:
                if threads is None:
                    vs.thread_type = "AUTO"
                else:
                    vs.codec_context.thread_count = threads
                rate = vs.average_rate or vs.guessed_rate or vs.base_rate
                out.fps = float(rate) if rate else None
            to_rgb = _rgb_converter(threads)  # one swscale context for the whole stream
            resampler = None
            if ast is not None:
                out.audio_rate = int(ast.codec_context.sample_rate or ast.rate or 0) or None
                if ast.duration is not None and ast.time_base is not None and out.audio_rate:
                    out.audio_duration = round(float(ast.duration * ast.time_base)
                                               * out.audio_rate)
                resampler = av.AudioResampler(format="fltp")
            for packet in container.demux(*streams):
                for frame in packet.decode():
                    if isinstance(frame, av.VideoFrame):
                        out.frames.append(to_rgb(frame))
                        out.times.append(frame.time)
                    elif isinstance(frame, av.AudioFrame):
                        if out.audio_start is None:
                            out.audio_start = frame.time
                            out.audio_rate = out.audio_rate or frame.sample_rate
                        for f in resampler.resample(frame):
                            out.audio.append(f.to_ndarray())
            if resampler is not None:
                for f in resampler.resample(None):
                    out.audio.append(f.to_ndarray())
    except MediaError:
        raise
    except (av.FFmpegError, OSError, ValueError, RuntimeError) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise MediaError(f"{label}: cannot decode ({err})") from err
    return out


def _video_from(dec: _Decoded, label: str, fps: float | None) -> Video:
    if not dec.frames:
        raise MediaError(f"{label}: the video stream has no decodable frames")
    src_fps = dec.fps
    times = dec.times
    if any(t is None for t in times):
        if src_fps is None:
            raise MediaError(f"{label}: frames carry no timestamps and the stream no frame rate")
        times = [i / src_fps for i in range(len(dec.frames))]
    if src_fps is None:
        steps = np.diff(np.asarray(times, dtype=np.float64))
        steps = steps[steps > 0]
        if steps.size == 0:
            raise MediaError(f"{label}: cannot determine the frame rate")
        src_fps = float(1.0 / np.median(steps))
    frames = dec.frames
    if fps is not None:
        idx = resample_indices(times, fps, src_fps=src_fps).tolist()
        frames = [frames[i] for i in idx]
        out_fps = float(fps)
    else:
        out_fps = src_fps
    array = np.stack(frames)  # t h w c
    return Video(torch.from_numpy(array).permute(0, 3, 1, 2).contiguous(), out_fps)


def _audio_from(
    dec: _Decoded, label: str, sample_rate: int | None, mono: bool, *, start: float | None = None
) -> Audio:
    if not dec.audio or dec.audio_rate is None:
        raise MediaError(f"{label}: the audio stream has no decodable samples")
    channels = {a.shape[0] for a in dec.audio}
    if len(channels) != 1:
        raise MediaError(f"{label}: the channel count changes inside the stream ({channels})")
    wave = np.concatenate(dec.audio, axis=1).astype(np.float32, copy=False)  # c s
    if dec.audio_duration is not None and 0 < wave.shape[1] - dec.audio_duration <= 2048:
        # Padding of the last codec frame past the duration the container states.
        wave = wave[:, : dec.audio_duration]
    if start is not None and dec.audio_start is not None:
        # Align to the video: audio starting after the first frame gets leading silence,
        # audio starting before it loses its head.
        shift = round((dec.audio_start - start) * dec.audio_rate)
        if shift > 0:
            wave = np.concatenate([np.zeros((wave.shape[0], shift), np.float32), wave], axis=1)
        elif shift < 0:
            wave = wave[:, -shift:]
    return _finish_audio(torch.from_numpy(np.ascontiguousarray(wave)), dec.audio_rate,
                         label, sample_rate, mono)


def _finish_audio(
    wave: Tensor, rate: int, label: str, sample_rate: int | None, mono: bool
) -> Audio:
    """(c, s) float32 -> mono / resampled Audio."""
    if wave.shape[-1] == 0:
        raise MediaError(f"{label}: no audio samples")
    if mono:
        wave = wave.mean(dim=0)
    if sample_rate is not None and sample_rate != rate:
        wave = resample_audio(wave, rate, sample_rate)
        rate = sample_rate
    return Audio(wave.contiguous(), int(rate))


def resample_indices(
    timestamps: Sequence[float] | Tensor | np.ndarray, fps: float, *, src_fps: float
) -> Tensor:
    """Source frames picked to resample a video to `fps` by nearest timestamp.

    Output frame k is shown at time `k / fps` (times counted from the first frame) and takes
    the source frame whose timestamp is nearest (ties go to the earlier frame). The output
    has every frame whose time falls inside the clip, whose duration is the last timestamp
    plus one source frame (`1 / src_fps`): 30 frames at 30 fps give 25 frames at 25 fps.

    Args:
        timestamps: Presentation times of the source frames in seconds, increasing.
        fps: Target frame rate.
        src_fps: Frame rate of the source (for the duration of its last frame).

    Returns:
        Long tensor (t_out,) of source frame indices.

    Examples:
        >>> resample_indices([i / 30 for i in range(12)], 25, src_fps=30).tolist()
        [0, 1, 2, 4, 5, 6, 7, 8, 10, 11]
        >>> resample_indices([i / 10 for i in range(3)], 20, src_fps=10).tolist()
        [0, 0, 1, 1, 2, 2]
    """
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    if not (math.isfinite(src_fps) and src_fps > 0):
        raise ValueError(f"src_fps must be a positive number, got {src_fps!r}")
    t = torch.as_tensor(np.asarray(timestamps, dtype=np.float64))
    if t.ndim != 1 or t.numel() == 0:
        raise ValueError(f"timestamps must be a non-empty 1-D sequence, got shape {tuple(t.shape)}")
    t = t - t[0]
    duration = float(t[-1]) + 1.0 / src_fps
    n = max(1, math.ceil(duration * fps - 1e-6))
    target = torch.arange(n, dtype=torch.float64) / fps
    right = torch.searchsorted(t, target).clamp(1, max(1, t.numel() - 1))
    if t.numel() == 1:
        return torch.zeros(n, dtype=torch.long)
    left = right - 1
    take_left = (target - t[left]) <= (t[right] - target) + 1e-9
    return torch.where(take_left, left, right).long()


# --------------------------------------------------------------------------------------------
# public readers


def read_video(
    src: MediaSource,
    *,
    fps: float | None = None,
    name: str | None = None,
    start: int = 0,
    stop: int | None = None,
    threads: int | None = None,
) -> Video:
    """Decode the first video stream of a file (or of encoded bytes) to RGB frames.

    With `start` / `stop` (and no `fps`), only frames [start, stop) are returned and the
    decoder does as little as it can: it seeks to the keyframe at or before `start` (encodes
    from [encode_video][decouple.data.io.encode_video] have one every `gop` frames), converts
    only the frames it returns and stops after `stop - 1`. This is how the shard reader cuts a
    training window out of a clip.

    Args:
        src: Path, or the bytes of an encoded container (mp4, mkv, flv, ...).
        fps: Resample to this frame rate by nearest timestamp
            ([resample_indices][decouple.data.io.resample_indices]); None keeps every frame
            at the stream's frame rate.
        name: Name used in error messages when `src` is bytes (a shard and key, say).
        start: First frame to return (counted at the output frame rate).
        stop: One past the last frame to return; None = to the end.
        threads: Decoder threads. None: FFmpeg's automatic frame and slice threading when
            the whole stream is decoded (large source videos), one thread for a frame range.
            1 is the fastest choice for small frames and inside DataLoader workers (each
            worker already has a core; for 128 x 128 H.264, FFmpeg's threads made decoding
            ~1.5x slower, see docs/benchmarks/data.md); 0 = FFmpeg's automatic count.

    Returns:
        A [Video][decouple.data.io.Video] with frames (t, 3, h, w), uint8 RGB.

    Raises:
        FileNotFoundError: The path does not exist.
        MediaError: No video stream, undecodable or empty data (the message names the file).

    Examples:
        >>> frames = torch.zeros(6, 3, 16, 16, dtype=torch.uint8)
        >>> v = read_video(encode_video(frames, fps=30))
        >>> tuple(v.frames.shape), v.fps
        ((6, 3, 16, 16), 30.0)
        >>> read_video(encode_video(frames, fps=30), fps=15).num_frames
        3
        >>> read_video(encode_video(frames, fps=30), start=2, stop=5).num_frames
        3
    """
    label = _label(src, name)
    if start < 0 or (stop is not None and stop <= start):
        raise ValueError(f"{label}: need 0 <= start < stop, got start={start}, stop={stop}")
    if threads is not None and (isinstance(threads, bool) or threads < 0):
        raise ValueError(f"{label}: threads must be None or an int >= 0, got {threads!r}")
    if fps is None and (start > 0 or stop is not None):
        return _read_video_range(src, label, start, stop, 1 if threads is None else threads)
    dec = _decode(src, label, video=True, audio=False, threads=threads)
    video = _video_from(dec, label, fps)
    if start > 0 or stop is not None:
        video = Video(video.frames[start:stop], video.fps)
        if video.num_frames == 0:
            raise MediaError(f"{label}: no frame in [{start}, {stop})")
    return video


def _read_video_range(
    src: MediaSource, label: str, start: int, stop: int | None, threads: int = 1
) -> Video:
    """Frames [start, stop) at the stream's own rate: seek, skip, convert only what is kept."""
    target = _as_input(src, label)
    buffer: np.ndarray | None = None  # (n, h, w, 3): the kept frames, converted in place
    count = 0
    try:
        with av.open(target, "r") as container:
            if not container.streams.video:
                raise MediaError(f"{label}: no video stream")
            vs = container.streams.video[0]
            expected = (stop if stop is not None else max(vs.frames, start + 1)) - start
            # PyAV's default (thread_count 0) starts FFmpeg's slice threads; for small frames
            # their synchronisation costs more than they save (parallelism comes from
            # DataLoader workers), so a frame range is decoded on one thread by default.
            vs.codec_context.thread_count = threads
            rate = vs.average_rate or vs.guessed_rate or vs.base_rate
            if not rate:
                raise MediaError(f"{label}: the video stream has no frame rate")
            fps = float(rate)
            t0 = float(vs.start_time * vs.time_base) if vs.start_time is not None else 0.0
            if start > 0:  # to the keyframe at or before `start`
                container.seek(
                    round((t0 + start / fps) / vs.time_base), stream=vs, backward=True
                )
            to_rgb = _rgb_converter(threads)
            for frame in container.decode(vs):
                index = round((frame.time - t0) * fps) if frame.time is not None else None
                if index is None:
                    raise MediaError(f"{label}: frames carry no timestamps")
                if index < start:
                    continue
                if stop is not None and index >= stop:
                    break
                if buffer is None or count == buffer.shape[0] or buffer.shape[1:3] != (
                    frame.height, frame.width
                ):
                    buffer = _grow(buffer, count, expected, frame.height, frame.width, label)
                to_rgb(frame, buffer[count])
                count += 1
    except MediaError:
        raise
    except (av.FFmpegError, OSError, ValueError, RuntimeError) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise MediaError(f"{label}: cannot decode ({err})") from err
    if buffer is None or count == 0:
        raise MediaError(f"{label}: no frame in [{start}, {stop})")
    # t h w c, viewed as (t, 3, h, w): a window is collated (copied) next anyway
    return Video(torch.from_numpy(buffer[:count]).permute(0, 3, 1, 2), fps)


def _grow(
    buffer: np.ndarray | None, count: int, expected: int, h: int, w: int, label: str
) -> np.ndarray:
    """A frame buffer with room for more frames (or the first one), keeping `count` frames."""
    if buffer is not None and buffer.shape[1:3] != (h, w):
        raise MediaError(f"{label}: the frame size changes inside the stream "
                         f"({buffer.shape[2]}x{buffer.shape[1]} -> {w}x{h})")  # fmt: skip
    size = max(expected, 1) if buffer is None else 2 * buffer.shape[0]
    grown = np.empty((size, h, w, 3), np.uint8)
    if buffer is not None:
        grown[:count] = buffer[:count]
    return grown


def read_audio(
    src: MediaSource,
    *,
    sample_rate: int | None = 16000,
    mono: bool = True,
    name: str | None = None,
) -> Audio:
    """Read audio as a float32 waveform in [-1, 1], by default 16 kHz mono.

    `.wav`, `.flac` and `.ogg` files are read with soundfile; other suffixes (`.m4a`, `.mp4`,
    `.aac`, `.flv`, ...) with PyAV. Bytes are tried with soundfile first, then with PyAV.

    Args:
        src: Path, or the bytes of an encoded file.
        sample_rate: Resample to this rate with `torchaudio.functional.resample`; None keeps
            the file's rate.
        mono: Average the channels to (s,); False keeps them as (c, s).
        name: Name used in error messages when `src` is bytes.

    Returns:
        An [Audio][decouple.data.io.Audio].

    Raises:
        FileNotFoundError: The path does not exist.
        MediaError: No audio stream, undecodable or empty data (the message names the file).

    Examples:
        >>> tone = torch.sin(torch.arange(8000) * 0.1) * 0.5
        >>> a = read_audio(encode_audio(tone, 8000), sample_rate=None)
        >>> a.sample_rate, a.num_samples, round(float((a.waveform - tone).abs().max()), 3)
        (8000, 8000, 0.0)
        >>> read_audio(encode_audio(tone, 8000)).num_samples  # 16 kHz by default
        16000
    """
    label = _label(src, name)
    if sample_rate is not None and (isinstance(sample_rate, bool) or sample_rate <= 0):
        raise ValueError(f"sample_rate must be a positive int or None, got {sample_rate!r}")
    target = _as_input(src, label)
    use_soundfile = isinstance(target, io.BytesIO) or (
        Path(target).suffix.lower() in SOUNDFILE_SUFFIXES
    )
    sf_error: Exception | None = None
    if use_soundfile:
        try:
            data, rate = sf.read(target, dtype="float32", always_2d=True)  # s c
        except (sf.SoundFileError, RuntimeError, ValueError) as err:
            if not isinstance(target, io.BytesIO):
                raise MediaError(f"{label}: cannot decode audio ({err})") from err
            sf_error = err
        else:
            wave = torch.from_numpy(np.ascontiguousarray(data.T))
            return _finish_audio(wave, int(rate), label, sample_rate, mono)
    try:
        dec = _decode(src, label, video=False, audio=True)
    except MediaError as err:
        if sf_error is not None:
            raise MediaError(f"{err} (soundfile: {sf_error})") from err
        raise
    if dec.audio_rate is None and not dec.audio:
        raise MediaError(f"{label}: no audio stream")
    return _audio_from(dec, label, sample_rate, mono)


def read_av(
    src: MediaSource,
    *,
    fps: float | None = None,
    sample_rate: int | None = 16000,
    mono: bool = True,
    name: str | None = None,
) -> tuple[Video, Audio | None]:
    """Decode the video and (when there is one) the audio stream of one container.

    The audio is aligned to the first video frame: if it starts later it gets leading
    silence, if it starts earlier its head is cut, so sample `round(i / fps * sample_rate)`
    belongs to video frame i.

    Args:
        src: Path, or the bytes of an encoded container.
        fps: Resample the video by nearest timestamp (None keeps the stream's frames).
        sample_rate: Resample the audio (None keeps the stream's rate).
        mono: Average the audio channels to (s,).
        name: Name used in error messages when `src` is bytes.

    Returns:
        The [Video][decouple.data.io.Video], and the [Audio][decouple.data.io.Audio] or None
        when the container has no audio stream.

    Raises:
        FileNotFoundError: The path does not exist.
        MediaError: No video stream, undecodable or empty data.

    Examples:
        >>> frames = torch.zeros(10, 3, 16, 16, dtype=torch.uint8)
        >>> data = encode_av(frames, 25, torch.zeros(6400), 16000)
        >>> video, audio = read_av(data)
        >>> video.num_frames, audio.sample_rate, audio.num_samples
        (10, 16000, 6400)
    """
    label = _label(src, name)
    dec = _decode(src, label, video=True, audio=True)
    video = _video_from(dec, label, fps)
    if dec.audio_rate is None and not dec.audio:
        return video, None
    start = next((t for t in dec.times if t is not None), None)
    return video, _audio_from(dec, label, sample_rate, mono, start=start)


# --------------------------------------------------------------------------------------------
# resampling


def resample_audio(waveform: Tensor, orig_sr: int, new_sr: int) -> Tensor:
    """Resample a waveform with `torchaudio.functional.resample` (windowed sinc).

    Args:
        waveform: Samples (..., s), floating point.
        orig_sr: Its sample rate.
        new_sr: The sample rate wanted.

    Returns:
        Samples (..., s') with `s' = ceil(s * new_sr / orig_sr)`; the input itself when the
        rates are equal.

    Examples:
        >>> resample_audio(torch.zeros(2, 22050), 22050, 16000).shape
        torch.Size([2, 16000])
    """
    for label, sr in (("orig_sr", orig_sr), ("new_sr", new_sr)):
        if isinstance(sr, bool) or not isinstance(sr, int | np.integer) or sr <= 0:
            raise ValueError(f"{label} must be a positive int, got {sr!r}")
    if not isinstance(waveform, Tensor) or not waveform.is_floating_point():
        raise ValueError(f"waveform must be a floating tensor (..., s), got {_describe(waveform)}")
    if orig_sr == new_sr:
        return waveform
    return AF.resample(waveform, int(orig_sr), int(new_sr))


# --------------------------------------------------------------------------------------------
# encoding


def _check_frames(frames: Tensor) -> np.ndarray:
    if (not isinstance(frames, Tensor) or frames.dtype != torch.uint8 or frames.ndim != 4
            or frames.shape[1] != 3):
        raise ValueError(f"frames must be a uint8 tensor (t, 3, h, w), got {_describe(frames)}")
    t, _, h, w = frames.shape
    if t == 0:
        raise ValueError("frames is empty (t = 0): nothing to encode")
    if h % 2 or w % 2:
        raise ValueError(
            f"frames of size {h}x{w} (h x w): yuv420p video needs an even height and width; "
            "crop or pad the frames (face crops from crop_faces have an even size if asked)"
        )
    return frames.permute(0, 2, 3, 1).contiguous().cpu().numpy()  # t h w c


def _check_waveform(waveform: Tensor) -> np.ndarray:
    if (not isinstance(waveform, Tensor) or not waveform.is_floating_point()
            or waveform.ndim not in (1, 2)):
        raise ValueError(
            f"waveform must be a floating tensor (s,) or (c, s), got {_describe(waveform)}"
        )
    if waveform.shape[-1] == 0:
        raise ValueError("waveform is empty (0 samples): nothing to encode")
    if not bool(torch.isfinite(waveform).all()):
        raise ValueError("waveform holds NaN or infinite samples")
    wave = waveform.detach().to(torch.float32).cpu().clamp(-1.0, 1.0)
    if wave.ndim == 1:
        wave = wave[None]
    return np.ascontiguousarray(wave.numpy())  # c s


def _fps_fraction(fps: float) -> Fraction:
    if not (isinstance(fps, int | float | Fraction) and math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    return Fraction(fps).limit_denominator(1001)


def _layout(channels: int) -> str:
    if channels == 1:
        return "mono"
    if channels == 2:
        return "stereo"
    raise ValueError(f"cannot encode {channels} audio channels through PyAV (1 or 2 supported)")


def _encode_container(
    fmt: str,
    video: tuple[np.ndarray, Fraction, str, dict[str, str]] | None,
    audio: tuple[np.ndarray, int, str] | None,
) -> bytes:
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as container:
        vs = ast = None
        if video is not None:
            array, rate, codec, options = video
            vs = container.add_stream(codec, rate=rate, options=options)
            vs.width, vs.height = array.shape[2], array.shape[1]
            vs.pix_fmt = "yuv420p"
        if audio is not None:
            wave, sr, acodec = audio
            ast = container.add_stream(acodec, rate=sr, layout=_layout(wave.shape[0]))
            ast.bit_rate = 128000 * wave.shape[0]
        if vs is not None:
            for i, image in enumerate(array):
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                frame.pts, frame.time_base = i, 1 / rate
                container.mux(vs.encode(frame))
            container.mux(vs.encode(None))
        if ast is not None:
            frame = av.AudioFrame.from_ndarray(wave, format="fltp", layout=_layout(wave.shape[0]))
            frame.sample_rate = sr
            # An explicit pts lets the encoder mark its priming samples (negative pts), which
            # the mp4 muxer records in an edit list, so readers drop them again.
            frame.pts, frame.time_base = 0, Fraction(1, sr)
            container.mux(ast.encode(frame))
            container.mux(ast.encode(None))
    return buf.getvalue()


def _video_options(
    codec: str, crf: int, preset: str | None, gop: int | None, tune: str | None
) -> dict[str, str]:
    options: dict[str, str] = {}
    if gop is not None:
        options["g"] = str(int(gop))
    if codec not in _CRF_CODECS:
        return options
    options["crf"] = str(int(crf))
    if preset is not None:
        options["preset"] = preset
    if tune is not None:
        options["tune"] = tune
    return options


def encode_video(
    frames: Tensor,
    fps: float,
    *,
    codec: str = "libx264",
    crf: int = 18,
    preset: str | None = None,
    container: str = "mp4",
    gop: int | None = 16,
    tune: str | None = "fastdecode",
) -> bytes:
    """Encode frames to an H.264 (by default) mp4 held in memory, pixel format yuv420p.

    The defaults are made for training data that is read many times in short windows: a
    keyframe every `gop` = 16 frames lets a reader seek close to any window, and x264's
    `fastdecode` tuning (no CABAC, no deblocking) makes decoding about 30% cheaper for a few
    percent more bytes.

    Args:
        frames: Frames (t, 3, h, w), uint8 RGB; h and w must be even (yuv420p halves the
            chroma resolution): an odd size is an error naming the size, never a silent pad.
        fps: Frame rate (stored as a fraction with a denominator up to 1001, so 29.97 and
            30000/1001 are both kept exactly).
        codec: PyAV/FFmpeg encoder name (`libx264`, `libx265`, `mpeg4`, ...).
        crf: Constant rate factor for libx264/libx265 (0 lossless, 18 visually lossless,
            23 FFmpeg's default); ignored by other encoders.
        preset: x264/x265 speed preset (`ultrafast` ... `veryslow`); None keeps the encoder's
            default (`medium`).
        container: `mp4` (default), `mov`, `mkv` or `flv`.
        gop: Keyframe interval in frames; None keeps the encoder's default (250 for x264).
        tune: x264/x265 tuning (`fastdecode`, `film`, ...); None for none.

    Returns:
        The encoded file as bytes.

    Raises:
        ValueError: Bad frames (dtype, shape, odd size, empty) or fps.

    Examples:
        >>> data = encode_video(torch.zeros(4, 3, 16, 16, dtype=torch.uint8), fps=25)
        >>> data[4:8]
        b'ftyp'
    """
    array = _check_frames(frames)
    rate = _fps_fraction(fps)
    if container not in _VIDEO_CONTAINERS:
        raise ValueError(f"container must be one of {sorted(_VIDEO_CONTAINERS)}, got {container!r}")
    options = _video_options(codec, crf, preset, gop, tune)
    return _encode_container(_VIDEO_CONTAINERS[container], (array, rate, codec, options), None)


def write_video(path: str | os.PathLike, frames: Tensor, fps: float, **kwargs: Any) -> Path:
    """Encode frames and write them atomically; the container comes from the suffix.

    Args:
        path: Destination (`.mp4`, `.m4v`, `.mov`, `.mkv` or `.flv`).
        frames: Frames (t, 3, h, w), uint8 RGB, even h and w.
        fps: Frame rate.
        **kwargs: `codec`, `crf`, `preset` of [encode_video][decouple.data.io.encode_video].

    Returns:
        The destination path.

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     p = write_video(Path(d) / "x.mp4", torch.zeros(3, 3, 8, 8, dtype=torch.uint8), 30)
        ...     read_video(p).num_frames
        3
    """
    fmt = _format_from_suffix(path, _VIDEO_CONTAINERS, "video container")
    return atomic_write_bytes(path, encode_video(frames, fps, container=fmt, **kwargs))


def encode_audio(waveform: Tensor, sample_rate: int, *, format: str = "flac") -> bytes:
    """Encode a waveform to bytes.

    Lossless `flac` and `wav` store 16-bit PCM (samples are clipped to [-1, 1] and rounded
    to multiples of 1/32768); `ogg` is Vorbis; `m4a`/`mp4` (AAC in an mp4 container), `aac`
    (raw ADTS) and `flv` go through PyAV's AAC encoder at 128 kb/s per channel.

    Args:
        waveform: Samples (s,) or (c, s), floating point in [-1, 1]; NaN or infinity is an
            error.
        sample_rate: Samples per second.
        format: `flac` (default), `wav`, `ogg`, `m4a`, `mp4`, `aac` or `flv`.

    Returns:
        The encoded file as bytes.

    Raises:
        ValueError: Bad waveform, sample rate or format.

    Examples:
        >>> encode_audio(torch.zeros(1600), 16000)[:4]
        b'fLaC'
        >>> encode_audio(torch.zeros(1600), 16000, format="wav")[:4]
        b'RIFF'
    """
    wave = _check_waveform(waveform)
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int | np.integer) or (
        sample_rate <= 0
    ):
        raise ValueError(f"sample_rate must be a positive int, got {sample_rate!r}")
    fmt = format.lower().lstrip(".")
    if "." + fmt in SOUNDFILE_SUFFIXES:
        buf = io.BytesIO()
        subtype = "VORBIS" if fmt == "ogg" else "PCM_16"
        sf.write(buf, wave.T, int(sample_rate), format=SOUNDFILE_SUFFIXES["." + fmt],
                 subtype=subtype)
        return buf.getvalue()
    if fmt in _PYAV_AUDIO:
        muxer, codec = _PYAV_AUDIO[fmt]
        return _encode_container(muxer, None, (wave, int(sample_rate), codec))
    known = sorted([s.lstrip(".") for s in SOUNDFILE_SUFFIXES] + list(_PYAV_AUDIO))
    raise ValueError(f"audio format must be one of {known}, got {format!r}")


def write_audio(path: str | os.PathLike, waveform: Tensor, sample_rate: int) -> Path:
    """Encode a waveform and write it atomically; the format comes from the suffix.

    Args:
        path: Destination (`.flac`, `.wav`, `.ogg`, `.m4a`, `.mp4`, `.aac` or `.flv`).
        waveform: Samples (s,) or (c, s) in [-1, 1].
        sample_rate: Samples per second.

    Returns:
        The destination path.

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     p = write_audio(Path(d) / "x.flac", torch.zeros(800), 16000)
        ...     read_audio(p).num_samples
        800
    """
    known = {s.lstrip("."): None for s in SOUNDFILE_SUFFIXES} | dict.fromkeys(_PYAV_AUDIO)
    fmt = _format_from_suffix(path, known, "audio")
    return atomic_write_bytes(path, encode_audio(waveform, sample_rate, format=fmt))


def encode_av(
    frames: Tensor,
    fps: float,
    waveform: Tensor,
    sample_rate: int,
    *,
    codec: str = "libx264",
    crf: int = 18,
    preset: str | None = None,
    container: str = "mp4",
) -> bytes:
    """Encode video frames and an AAC audio track into one container held in memory.

    Both streams start at time 0 (the AAC priming samples are marked for removal in mp4).

    Args:
        frames: Frames (t, 3, h, w), uint8 RGB, even h and w.
        fps: Frame rate.
        waveform: Samples (s,) or (c, s) in [-1, 1] (c = 1 or 2).
        sample_rate: Audio samples per second.
        codec: Video encoder (see [encode_video][decouple.data.io.encode_video]).
        crf: Constant rate factor for libx264/libx265.
        preset: x264/x265 speed preset, None for the default.
        container: `mp4` (default), `mov`, `mkv` or `flv`.

    Returns:
        The encoded file as bytes.

    Examples:
        >>> data = encode_av(torch.zeros(5, 3, 16, 16, dtype=torch.uint8), 25,
        ...                  torch.zeros(3200), 16000)
        >>> read_av(data)[1].num_samples
        3200
    """
    array = _check_frames(frames)
    rate = _fps_fraction(fps)
    wave = _check_waveform(waveform)
    if container not in _VIDEO_CONTAINERS:
        raise ValueError(f"container must be one of {sorted(_VIDEO_CONTAINERS)}, got {container!r}")
    options = _video_options(codec, crf, preset, None, None)
    return _encode_container(
        _VIDEO_CONTAINERS[container], (array, rate, codec, options), (wave, int(sample_rate), "aac")
    )


def write_av(
    path: str | os.PathLike,
    frames: Tensor,
    fps: float,
    waveform: Tensor,
    sample_rate: int,
    **kwargs: Any,
) -> Path:
    """Write video with an AAC audio track atomically; the container comes from the suffix.

    Args:
        path: Destination (`.mp4`, `.m4v`, `.mov`, `.mkv` or `.flv`).
        frames: Frames (t, 3, h, w), uint8 RGB, even h and w.
        fps: Frame rate.
        waveform: Samples (s,) or (c, s) in [-1, 1].
        sample_rate: Audio samples per second.
        **kwargs: `codec`, `crf`, `preset` of [encode_av][decouple.data.io.encode_av].

    Returns:
        The destination path.

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     p = write_av(Path(d) / "x.mp4", torch.zeros(4, 3, 8, 8, dtype=torch.uint8), 25,
        ...                  torch.zeros(2560), 16000)
        ...     video, audio = read_av(p)
        ...     video.num_frames, audio.num_samples
        (4, 2560)
    """
    fmt = _format_from_suffix(path, _VIDEO_CONTAINERS, "video container")
    data = encode_av(frames, fps, waveform, sample_rate, container=fmt, **kwargs)
    return atomic_write_bytes(path, data)
