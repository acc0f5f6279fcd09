"""MP4 video in and out through PyAV (`av`): the LeRobot datasets' camera streams.

LeRobot writes AV1 (libsvtav1, yuv420p) by default; PyAV's wheels decode it (libdav1d) and encode it
(libsvtav1), and also do H.264. torchvision/torchcodec are not used: their Linux wheels on the index are CUDA
builds that do not load beside the CPU torch. Every failure is a `VideoError` naming the file.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

CODECS = {'av1': 'libsvtav1', 'h264': 'libx264'}


class VideoError(ValueError):
    """A video cannot be read or written (the message names the file)."""


def decode(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Every frame of the file's first video stream: (times s float64 [N], frames uint8 [N, H, W, 3] RGB)."""
    import av
    path = Path(path)
    if not path.is_file():
        raise VideoError(f'{path}: no such video file')
    times, frames = [], []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError(f'{path}: no video stream')
            stream = container.streams.video[0]
            for frame in container.decode(stream):
                times.append(float(frame.time) if frame.time is not None else float(len(times)))
                frames.append(frame.to_ndarray(format='rgb24'))
    except VideoError:
        raise
    except Exception as exc:
        raise VideoError(f'{path}: cannot decode ({type(exc).__name__}: {exc})') from None
    if not frames:
        raise VideoError(f'{path}: no decodable frames')
    order = np.argsort(np.asarray(times), kind='stable')
    return np.asarray(times)[order], np.stack(frames)[order]


def frames_at(path, times: np.ndarray, frames: np.ndarray, wanted: np.ndarray, fps: float) -> np.ndarray:
    """The decoded frames at the `wanted` times (s); each must lie within half a frame period of one."""
    wanted = np.asarray(wanted, dtype=np.float64)
    idx = np.clip(np.searchsorted(times, wanted), 1, max(len(times) - 1, 1))
    if len(times) > 1:
        idx = np.where(np.abs(times[idx - 1] - wanted) <= np.abs(times[idx] - wanted), idx - 1, idx)
    else:
        idx = np.zeros(len(wanted), dtype=np.int64)
    gap = np.abs(times[idx] - wanted)
    if gap.size and gap.max() > 0.5 / fps:
        bad = int(np.argmax(gap))
        raise VideoError(f'{path}: no frame at {wanted[bad]:.4f} s (nearest {times[idx[bad]]:.4f} s; the file has '
                         f'{len(times)} frames up to {times[-1]:.4f} s)')
    return frames[idx]


def encode(path: str | os.PathLike, frames: np.ndarray, fps: float, codec: str = 'av1', crf: int = 30,
           gop: int = 2) -> dict:
    """Frames uint8 [N, H, W, 3] RGB -> one MP4 (yuv420p, as LeRobot). Returns the LeRobot `info` of the
    stream. H and W must be even (4:2:0 chroma)."""
    import av
    from fractions import Fraction
    os.environ.setdefault('SVT_LOG', '1')            # SVT-AV1 prints its configuration otherwise
    frames = np.asarray(frames)
    n, h, w = frames.shape[:3]
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] != 3:
        raise VideoError(f'{path}: frames must be uint8 [N, H, W, 3], got {frames.dtype} {frames.shape}')
    if h % 2 or w % 2:
        raise VideoError(f'{path}: {w}x{h} frames: yuv420p video needs an even width and height')
    if codec not in CODECS:
        raise VideoError(f'{path}: codec {codec!r} is not one of {sorted(CODECS)}')
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = Fraction(fps).limit_denominator(1000)
    with av.open(str(path), 'w', format='mp4') as container:
        stream = container.add_stream(CODECS[codec], rate=rate)
        stream.width, stream.height, stream.pix_fmt = w, h, 'yuv420p'
        stream.options = {'crf': str(crf), 'g': str(gop)} if codec == 'av1' else {'crf': str(min(crf, 18)),
                                                                                 'g': str(gop)}
        for rgb in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format='rgb24')):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return {'video.height': int(h), 'video.width': int(w), 'video.codec': codec, 'video.pix_fmt': 'yuv420p',
            'video.is_depth_map': False, 'video.fps': fps, 'video.channels': 3, 'has_audio': False}
