"""How visible a JPEG's 8×8 block grid is in an image or in its upscaled output.

JPEG codes 8×8 blocks independently, so at low quality the luma jumps at block boundaries. An
upscaler that mistakes those jumps for edges sharpens them into a mesh (the failure that made
Real-ESRGAN, Wang et al. ICCVW 2021, train on JPEG-compressed inputs). The ratio here compares the
mean |luma step| across block boundaries with the mean step across the other input-pixel boundaries,
at the same sub-pixel phase, so an upscaler's own ×``scale`` pattern cancels out: about 1 is no
visible grid; above the input's (or bicubic's) own ratio, the grid has been amplified. The image
must start on the JPEG's grid (a crop whose corner is a multiple of 8 input pixels).
"""

from __future__ import annotations

import numpy as np

from superres.quality.metrics import rgb_to_y


def block_grid_ratio(image: np.ndarray, scale: int = 1, block: int = 8) -> float:
    """Block-boundary over other-boundary mean luma step of ``image`` (uint8, the input ×``scale``)."""
    y = rgb_to_y(image) if image.ndim == 3 else image.astype(np.float64)
    ratios = []
    for steps in (np.abs(np.diff(y, axis=1)), np.abs(np.diff(y, axis=0)).T):
        edge = np.arange(1, steps.shape[1] + 1)  # the k-th step is between pixels k - 1 and k (0-based)
        pixel_boundary = edge % scale == 0
        block_boundary = edge % (block * scale) == 0
        ratios.append(steps[:, block_boundary].mean() / steps[:, pixel_boundary & ~block_boundary].mean())
    return float(np.mean(ratios))
