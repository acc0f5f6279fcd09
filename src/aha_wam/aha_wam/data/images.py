"""The one image decoder of the suite: sensor_msgs/Image and sensor_msgs/CompressedImage -> RGB uint8.

Used by the bag reader (rosbags messages), the ROS nodes (`aha_wam.ros.convert.image_to_rgb`, rclpy messages)
and the dataset importers (PNG/JPEG bytes). Works on anything with the message's fields; never imports ROS.
Every failure is an `ImageError` (a ValueError) whose message says what is wrong.
"""
from __future__ import annotations

import io

import numpy as np

# encoding -> (channels, RGB channel order inside the pixel)
RAW_ENCODINGS = {'rgb8': (3, (0, 1, 2)), 'bgr8': (3, (2, 1, 0)), 'rgba8': (4, (0, 1, 2)), 'bgra8': (4, (2, 1, 0)),
                 'mono8': (1, (0, 0, 0))}


class ImageError(ValueError):
    """An image cannot be decoded (the message says why)."""


def raw_to_rgb(encoding: str, height: int, width: int, step: int, data) -> np.ndarray:
    """Raw image fields -> [h, w, 3] uint8 RGB (a new, writable, contiguous array)."""
    enc = str(encoding)
    if enc not in RAW_ENCODINGS:
        raise ImageError(f'image encoding {enc!r} is not supported ({", ".join(RAW_ENCODINGS)})')
    channels, order = RAW_ENCODINGS[enc]
    h, w, step = int(height), int(width), int(step)
    if h < 1 or w < 1 or step < channels * w:
        raise ImageError(f'image geometry {w}x{h} with step {step} is invalid (step must be >= {channels}*width)')
    buf = np.frombuffer(data, np.uint8) if isinstance(data, (bytes, bytearray, memoryview)) else \
        np.asarray(data, dtype=np.uint8).reshape(-1)
    if buf.size < h * step:
        raise ImageError(f'image data has {buf.size} bytes, {w}x{h} with step {step} needs {h * step}')
    px = buf[:h * step].reshape(h, step)[:, :channels * w].reshape(h, w, channels)
    return np.ascontiguousarray(px[..., list(order)])


def encoded_to_rgb(data, fmt: str = '') -> np.ndarray:
    """PNG/JPEG (any format Pillow reads) bytes -> [h, w, 3] uint8 RGB."""
    try:
        from PIL import Image as PILImage
        with PILImage.open(io.BytesIO(bytes(data))) as im:
            return np.asarray(im.convert('RGB'), dtype=np.uint8).copy()
    except Exception as exc:
        raise ImageError(f'cannot decode {fmt or "encoded"} image ({type(exc).__name__}: {exc})') from None


def msg_to_rgb(msg, compressed: bool | None = None) -> np.ndarray:
    """A sensor_msgs/Image or CompressedImage (rclpy or rosbags object) -> [h, w, 3] uint8 RGB."""
    if compressed is None:
        compressed = hasattr(msg, 'format') and not hasattr(msg, 'encoding')
    if compressed:
        return encoded_to_rgb(msg.data, str(msg.format))
    return raw_to_rgb(msg.encoding, msg.height, msg.width, msg.step, msg.data)


def rgb_to_png(rgb: np.ndarray) -> bytes:
    from PIL import Image as PILImage
    out = io.BytesIO()
    PILImage.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).save(out, format='PNG')
    return out.getvalue()
