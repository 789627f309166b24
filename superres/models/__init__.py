"""Weights as data: read any known checkpoint, recognise its architecture, name, blend and export it.

* :mod:`~superres.models.weights` — reading (safetensors, ``.pth`` with ``weights_only=True``) and writing
  (safetensors + JSON metadata).
* :mod:`~superres.models.detect` — which architecture a state dict is, and its hyper-parameters, from
  its keys and tensor shapes; ESRGAN's old key layout converted.
* :mod:`~superres.models.registry` — known models by name: the bundled default, hash-checked downloads.
* :mod:`~superres.models.interpolation` — network interpolation, θ = (1 − α)·θ_PSNR + α·θ_GAN (ESRGAN §3.4).
* :mod:`~superres.models.export` — ONNX export, checked against PyTorch.
"""
