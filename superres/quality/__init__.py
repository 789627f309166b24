"""Judging images: the papers' evaluation protocol and its metrics.

* :mod:`~superres.quality.imresize` — MATLAB's ``imresize`` (bicubic, antialiased), which makes the LR images.
* :mod:`~superres.quality.metrics` — PSNR and SSIM on the Y channel, border cropped.
* :mod:`~superres.quality.evaluation` — a model on Set5 / Set14 / BSD100, as the papers score it.
"""
