"""JPEG compression with a real JPEG codec (Pillow's libjpeg), one image at a time.

Real-ESRGAN trains with DiffJPEG, a differentiable imitation of JPEG; nothing here needs gradients
through the degradation, so we use the codec that made the photos users bring: the IJG quantization
tables scaled by quality, 4:2:0 chroma subsampling (as DiffJPEG, cameras and the web), 8-bit input.
"""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image


def jpeg_bytes(image: np.ndarray, quality: int) -> bytes:
    """Encode an ``H×W`` (gray) or ``H×W×3`` uint8 image as baseline JPEG of ``quality`` (1–95)."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=int(quality), subsampling="4:2:0")
    return buffer.getvalue()


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    """What a JPEG of ``quality`` decodes to: uint8, same shape."""
    with Image.open(io.BytesIO(jpeg_bytes(image, quality))) as decoded:
        return np.asarray(decoded)


def jpeg(images: torch.Tensor, quality: torch.Tensor | float) -> torch.Tensor:
    """JPEG round trip of each image of a ``B×C×H×W`` batch in [0, 1] at its own quality (rounded).

    The images are rounded to 8 bit first, as any JPEG encoder sees them.
    """
    qualities = torch.as_tensor(quality, dtype=torch.float32).reshape(-1).expand(images.shape[0])
    pixels = (images.detach().float().clamp(0, 1) * 255).round().byte().cpu().permute(0, 2, 3, 1).numpy()
    out = []
    for image, q in zip(pixels, qualities.tolist(), strict=True):
        plane = image[..., 0] if image.shape[2] == 1 else image
        decoded = jpeg_roundtrip(np.ascontiguousarray(plane), int(round(q)))
        out.append(torch.from_numpy(decoded.reshape(image.shape).copy()))
    return torch.stack(out).permute(0, 3, 1, 2).to(images.device, images.dtype) / 255.0
