"""The engine: running a network on images of any size, on any device, without visible tiles.

Nothing here trains or scores; it needs only the networks (:mod:`superres.archs`) and their weights
(:mod:`superres.models`).

* :mod:`~superres.engine.inference` — :func:`load_model` and :class:`Upscaler`, the entry point.
* :mod:`~superres.engine.devices` — device and precision (fp32 / fp16 / bf16) choice, out-of-memory.
* :mod:`~superres.engine.budget` — context around tiles and the memory budgets that size them.
* :mod:`~superres.engine.tiling` — the tile grid.
* :mod:`~superres.engine.colour` — gray, colour, alpha and 16-bit pixels to the network and back.
* :mod:`~superres.engine.blockwise`, :mod:`~superres.engine.stripes`, :mod:`~superres.engine.tail` —
  RRDBNet run exactly, one dense block at a time in stripes of rows, and its fast upsampling tail.
* :mod:`~superres.engine.winograd` (+ ``csrc/winograd.cpp``) — Winograd F(4×4, 3×3) for fp32 on CPU.
* :mod:`~superres.engine.pipeline` — many files, decoding and encoding overlapped with the network.
* :mod:`~superres.engine.distributed` — one process per device under torchrun: shares and the final report.
"""
