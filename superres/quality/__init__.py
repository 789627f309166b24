"""Judging images: the papers' evaluation protocol and its metrics.

* :mod:`~superres.quality.imresize` — MATLAB's ``imresize`` (bicubic, antialiased), which makes the LR images.
* :mod:`~superres.quality.metrics` — PSNR and SSIM on the Y channel, border cropped.
* :mod:`~superres.quality.evaluation` — a model on Set5 / Set14 / BSD100, as the papers score it.
* :mod:`~superres.quality.niqe` — NIQE (Mittal et al. 2013), no-reference naturalness, as the MATLAB release.
* :mod:`~superres.quality.lpips` — LPIPS (Zhang et al. 2018), learned perceptual distance to the HR.
* :mod:`~superres.quality.sweep` — the perception–distortion figure of a PSNR model and its GAN partner.
* :mod:`~superres.quality.score` — any image files scored as they are (``superres score``).
"""
