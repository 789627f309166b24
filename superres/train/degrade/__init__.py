"""Synthetic real-world degradations: what happens to a photo before it reaches a super-resolver.

* :mod:`~superres.train.degrade.kernels` — blur kernels (Gaussian, generalized, plateau, sinc), filtering, USM.
* :mod:`~superres.train.degrade.noise` — Gaussian and Poisson noise, colour and gray.
* :mod:`~superres.train.degrade.jpeg` — JPEG round trips through a real codec (Pillow).
* :mod:`~superres.train.degrade.pipeline` — Real-ESRGAN's random high-order model for training
  (settings: :class:`superres.train.config.DegradationConfig`).
* :mod:`~superres.train.degrade.recipes` — fixed, seeded recipes for the real-world benchmark
  (``superres eval --degrade``).

Nothing is imported eagerly: each module loads torch when it is itself imported.
"""
