"""The package's layers, as the folders show them: the inference path loads nothing above it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import superres

PACKAGE = Path(superres.__file__).parent
# Above the inference path: nothing of these may be imported to load a model and upscale an image.
UPPER = ("superres.train", "superres.quality", "superres.datasets", "superres.web", "superres.video", "tensorboard")


def _run(code: str) -> dict:
    """Run ``code`` in a fresh interpreter (an import already made here would hide one made there)."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_upscaling_imports_nothing_from_training_quality_datasets_or_web(tmp_path: Path) -> None:
    source = tmp_path / "in.png"
    code = f"""
import json, sys
import numpy as np
from PIL import Image
Image.fromarray((np.arange(24 * 20 * 3) % 251).astype(np.uint8).reshape(24, 20, 3)).save({str(source)!r})
import superres
model = superres.load_model("superres-x4", device="cpu")
model.upscale_file({str(source)!r}, {str(tmp_path / "out.png")!r})
superres.load_model("superres-x4", device="cpu", strength=0.5)  # --strength blends in models/, not quality/
print(json.dumps(sorted(sys.modules)))
"""
    modules = _run(code)
    assert "superres.engine.inference" in modules and "superres.models.weights" in modules  # it really ran
    assert (tmp_path / "out.png").is_file()
    loaded = [m for m in modules if any(m == u or m.startswith(u + ".") for u in UPPER)]
    assert loaded == []


def test_help_imports_no_torch() -> None:
    code = """
import json, sys
from superres.cli import app
try:
    app(["--help"])
except SystemExit:
    pass
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "numpy", "PIL"))))
"""
    assert _run(code) == []


def test_top_level_holds_only_the_shared_basics() -> None:
    """Everything else lives in a subpackage that says what it is (engine, models, quality, train, …)."""
    modules = sorted(p.stem for p in PACKAGE.glob("*.py"))
    assert modules == ["__init__", "__main__", "demo", "errors", "imageio"]
    for package in ("archs", "engine", "models", "quality", "train", "datasets", "cli"):
        doc = (PACKAGE / package / "__init__.py").read_text()
        assert doc.startswith('"""') and len(doc.split('"""')[1]) > 60, package  # says what lives there


def test_old_module_paths_still_import_as_the_moved_modules() -> None:
    import warnings

    import superres.engine.inference as engine_inference
    import superres.quality.metrics as quality_metrics

    assert superres.metrics is quality_metrics  # public API: no warning
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import superres.inference as old  # noqa: F401  (the old name, on purpose)
    assert old is engine_inference
    assert any("superres.inference moved to superres.engine.inference" in str(w.message) for w in caught)
    from superres.metrics import psnr

    assert psnr is quality_metrics.psnr
