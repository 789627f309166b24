"""Datasets by name: a data home, the known datasets, and the commands that fill it.

* :mod:`~superres.datasets.home` — the data home (``$SUPERRES_DATA`` or the user cache), where
  ``train`` and ``eval`` find datasets by name, and the one-line message when one is missing.
* :mod:`~superres.datasets.catalog` — Set5, Set14, BSD100, Urban100, Manga109, DIV2K, Flickr2K:
  official URLs, sizes, hashes, terms.
* :mod:`~superres.datasets.fetch` — download (resumable, hash-checked), unpack safely, lay out.
* :mod:`~superres.datasets.add` — your own folder or archive of HR images as a dataset.
* :mod:`~superres.datasets.prepare` — BasicSR-style training sub-images with their LR.
* :mod:`~superres.datasets.verify` — hashes and counts against what was installed.

    $ superres data fetch Set5 Set14 DIV2K
    $ superres data prepare DIV2K --workers 8
    $ superres train srresnet            # trains on DIV2K, validates on Set5 and Set14
"""

from __future__ import annotations

from superres.datasets.home import data_home

__all__ = ["data_home"]
