"""Video and image files: MP4 through imageio-ffmpeg (H.264, yuv420p so every player opens it), GIF and PNG
through imageio. Frames are float in [0, 1] (core convention) or uint8; written atomically."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .io import atomic_write


def to_uint8(image) -> np.ndarray:
    """(…, H, W, 3) float in [0, 1] (tensor or array) or uint8 → uint8 numpy array (values clipped)."""
    if hasattr(image, "detach"):
        image = image.detach().cpu().numpy()
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def write_png(path, image) -> Path:
    """Write one (H, W, 3|4) image to a PNG atomically."""
    import imageio.v3 as iio

    return atomic_write(path, lambda p: iio.imwrite(p, to_uint8(image), extension=".png"))


def write_mp4(path, frames, fps: float = 30.0, quality: int = 8) -> Path:
    """Write (T, H, W, 3) frames to an H.264 MP4 atomically.

    H and W are padded to even sizes (yuv420p requires it). Raises ValueError on an empty frame list or a
    non-positive fps.
    """
    import imageio_ffmpeg

    frames = to_uint8(frames)
    if frames.ndim != 4 or frames.shape[0] == 0 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (T, H, W, 3) with T ≥ 1, got {frames.shape}")
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    T, H, W, _ = frames.shape
    if H % 2 or W % 2:
        frames = np.pad(frames, ((0, 0), (0, H % 2), (0, W % 2), (0, 0)), mode="edge")

    def write(tmp):
        writer = imageio_ffmpeg.write_frames(tmp, (frames.shape[2], frames.shape[1]), fps=fps, quality=quality,
                                             codec="libx264", pix_fmt_out="yuv420p", macro_block_size=1,
                                             output_params=["-f", "mp4"])
        writer.send(None)
        for frame in frames:
            writer.send(np.ascontiguousarray(frame))
        writer.close()

    return atomic_write(path, write)


def write_gif(path, frames, fps: float = 15.0) -> Path:
    """Write (T, H, W, 3) frames to a looping GIF atomically."""
    import imageio.v3 as iio

    frames = to_uint8(frames)
    return atomic_write(path, lambda p: iio.imwrite(p, list(frames), extension=".gif",
                                                    duration=1000.0 / fps, loop=0))


def read_video(path) -> tuple[np.ndarray, float]:
    """Read an MP4 back → (frames (T, H, W, 3) uint8, fps). Used by tests and previews."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    meta = reader.__next__()
    W, H = meta["size"]
    frames = [np.frombuffer(f, dtype=np.uint8).reshape(H, W, 3) for f in reader]
    return np.stack(frames), float(meta["fps"])
