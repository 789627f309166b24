"""What a hostile user found (issue 12), one test per class: no traceback, no silently wrong image, no
unbounded work, nothing overwritten or lost. Fuzzing is in test_fuzz.py, fault injection in test_faults.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from superres.cli import app
from superres.errors import ImageError, SuperresError, WeightsError
from superres.imageio import ImageData, read_image, write_image

REPO = Path(__file__).resolve().parents[1]


def cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run ``superres ARGS`` in-process; fails the test on anything but a clean exit."""
    result = CliRunner().invoke(app, list(args), env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    return result.exit_code, result.stdout, result.stderr


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "in" / "photo.png"
    path.parent.mkdir()
    Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(path)
    return path


def _tampered(tiny_model: Path, folder: Path, edit) -> Path:
    """A copy of the tiny model with its tensors and/or metadata changed by ``edit(tensors, metadata)``."""
    from safetensors import safe_open

    with safe_open(tiny_model, "pt") as f:
        metadata = dict(f.metadata())
    tensors = load_file(tiny_model)
    edit(tensors, metadata)
    path = folder / "tampered.safetensors"
    save_file(tensors, path, metadata=metadata)
    return path


# ----------------------------------------------------------------- NaN weights, NaN output in fp32


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_weights_holding_nan_or_inf_are_an_error_not_a_black_image(tiny_model, photo, tmp_path, value):
    bad = _tampered(tiny_model, tmp_path, lambda t, m: t["body.0.weight"].fill_(value))
    code, _, err = cli("upscale", str(photo), "-o", str(tmp_path / "out"), "-m", str(bad), "--precision", "fp32")
    assert code == 1
    assert "tampered.safetensors" in one_error_line(err) and "NaN or inf" in err and "body.0.weight" in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_model_that_overflows_in_fp32_is_an_error_naming_the_image(tiny_model, photo, tmp_path):
    # finite weights whose output overflows float32: clamping would have written a white/black image
    bad = _tampered(tiny_model, tmp_path, lambda t, m: [t[k].mul_(1e30) for k in t if k.endswith("weight")])
    code, _, err = cli("upscale", str(photo), "-o", str(tmp_path / "out"), "-m", str(bad), "--precision", "fp32")
    assert code == 1
    line = one_error_line(err)
    assert str(photo) in line and "NaN/inf even in fp32" in line
    assert not any((tmp_path / "out").glob("*.png"))


# ------------------------------------------------------------------------- bounded hyper-parameters


@pytest.mark.parametrize(
    "hparams, message",
    [
        ({"num_conv": 10**9}, "num_conv=1000000000, but the file holds"),  # would build layers for minutes
        ({"num_feat": -8}, "num_feat=-8 is not a width"),  # was a RuntimeError traceback
        ({"num_feat": 10**12}, "is not a width the tensors have"),
        ({"upscale": 10**6}, "not a scale it builds"),
        ({"num_feat": "8"}, "must be int"),
        ({"num_conv": 2.5}, "must be int"),
        ({"act_type": "x" * 10**5}, "characters long"),
    ],
)
def test_hparams_from_metadata_are_bounded_by_the_tensors(tiny_model, tmp_path, time_limit, hparams, message):
    def edit(tensors, metadata):
        metadata["hparams"] = json.dumps({**json.loads(metadata["hparams"]), **hparams})

    bad = _tampered(tiny_model, tmp_path, edit)
    with time_limit(10):
        code, _, err = cli("info", str(bad))
    assert code == 1 and message in one_error_line(err) and "tampered.safetensors" in err


def test_hparams_inferred_from_key_names_are_bounded_too(tiny_model, tmp_path, time_limit):
    # SRVGGNetCompact's depth is read from its last body index: body.2000000002 means a billion convs
    def edit(tensors, metadata):
        metadata.clear()
        tensors["body.2000000002.weight"] = tensors.pop("body.6.weight")
        tensors["body.2000000002.bias"] = tensors.pop("body.6.bias")

    bad = _tampered(tiny_model, tmp_path, edit)
    with time_limit(10):
        code, _, err = cli("info", str(bad))
    assert code == 1 and "num_conv=1000000000" in one_error_line(err)


def test_deeply_nested_metadata_is_a_weights_error(tiny_model, tmp_path):
    bad = _tampered(tiny_model, tmp_path, lambda t, m: m.update(hparams="[" * 100_000 + "]" * 100_000))
    code, _, err = cli("info", str(bad))
    assert code == 1 and "unreadable superres metadata" in one_error_line(err)


# -------------------------------------------------------- out of memory, non-finite numeric options


def test_out_of_memory_fails_that_file_and_the_batch_goes_on(tiny_model, tmp_path, monkeypatch):
    from superres.engine.inference import Upscaler

    folder = tmp_path / "in"
    folder.mkdir()
    for name, size in (("a", 16), ("big", 24), ("c", 16)):
        Image.fromarray(np.full((size, size, 3), 90, np.uint8)).save(folder / f"{name}.png")
    real = Upscaler.upscale

    def upscale(self, image, *args, **kwargs):
        if np.asarray(image).shape[0] == 24:
            np.empty(1 << 62, np.uint8)  # NumPy's own MemoryError, as a real large image would raise
        return real(self, image, *args, **kwargs)

    monkeypatch.setattr(Upscaler, "upscale", upscale)
    code, _, err = cli("upscale", str(folder), "-o", str(tmp_path / "out"), "-m", str(tiny_model))
    assert code == 1
    assert "big.png: out of memory" in one_error_line(err)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_x2.png", "c_x2.png"]


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN"])
def test_numeric_options_must_be_finite(tiny_model, photo, tmp_path, value):
    code, _, err = cli("upscale", str(photo), "-o", str(tmp_path / "out"), "-m", str(tiny_model), "--outscale", value)
    assert code == 2 and "is not a finite number" in one_error_line(err) and "--outscale" in err
    code, _, err = cli("interpolate", str(tiny_model), str(tiny_model), "-o", str(tmp_path / "b.safetensors"),
                       "--alpha", value)  # fmt: skip
    assert code == 2 and "--alpha" in one_error_line(err)
    code, _, err = cli("train", "srresnet", f"optim.lr={value}")
    assert code == 1 and "optim.lr must be a finite number" in one_error_line(err)


def test_the_library_refuses_a_non_finite_outscale_too(tiny_model):
    import superres

    model = superres.load_model(tiny_model, device="cpu")
    with pytest.raises(SuperresError, match="outscale must be a finite number"):
        model.upscale(np.zeros((8, 8, 3), np.uint8), outscale=float("nan"))


# ------------------------------------------------------------- never write over one's own inputs


def test_interpolate_never_writes_over_its_own_input(tiny_model, tmp_path):
    psnr = tmp_path / "psnr.safetensors"
    psnr.write_bytes(tiny_model.read_bytes())
    before = psnr.read_bytes()
    code, _, err = cli("interpolate", str(psnr), str(tiny_model), "-o", str(psnr), "--overwrite")
    assert code == 1 and "is the input file" in one_error_line(err)
    assert psnr.read_bytes() == before
    # through another path to the same file, too
    alias = tmp_path / "sub" / ".." / "psnr.safetensors"
    (tmp_path / "sub").mkdir()
    code, _, err = cli("interpolate", str(tiny_model), str(psnr), "-o", str(alias), "--overwrite")
    assert code == 1 and psnr.read_bytes() == before


def test_demo_and_export_never_write_over_their_inputs(tiny_model, photo, tmp_path):
    before = photo.read_bytes()
    code, _, err = cli("demo", str(photo), "-o", str(photo), "--overwrite", "-m", "bicubic")
    assert code == 1 and "is the input file" in one_error_line(err) and photo.read_bytes() == before
    model_bytes = tiny_model.read_bytes()
    code, _, err = cli("export-onnx", str(tiny_model), "-o", str(tiny_model), "--overwrite")
    assert code == 1 and "is the input file" in one_error_line(err) and tiny_model.read_bytes() == model_bytes


# --------------------------------------------------------------------------------------------- eval


@pytest.fixture
def tiny_benchmark(tmp_path: Path) -> Path:
    rng = np.random.default_rng(1)
    hr = tmp_path / "data" / "Tiny" / "HR"
    hr.mkdir(parents=True)
    for name in ("a", "b"):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(hr / f"{name}.png")
    return tmp_path / "data"


def test_eval_prints_its_table_before_a_json_that_cannot_be_written(tiny_benchmark, tmp_path):
    blocked = tmp_path / "a_file"
    blocked.write_text("not a folder")
    code, out, err = cli("eval", "-m", "bicubic", "--data-root", str(tiny_benchmark), "-d", "Tiny", "--no-progress",
                         "--json", str(blocked / "report.json"))  # fmt: skip
    assert code == 1
    assert "Tiny" in out and "PSNR" in out  # the scores are not lost
    assert "cannot write" in one_error_line(err) and "report.json" in err


def test_eval_save_images_that_cannot_be_written_is_one_line_before_any_work(tiny_benchmark, tmp_path):
    blocked = tmp_path / "a_file"
    blocked.write_text("not a folder")
    code, _, err = cli("eval", "-m", "bicubic", "--data-root", str(tiny_benchmark), "-d", "Tiny", "--no-progress",
                       "--save-images", str(blocked))  # fmt: skip
    assert code == 1 and "--save-images" in one_error_line(err)


def test_eval_of_an_image_too_small_for_ssim_is_one_line_naming_it(tiny_benchmark):
    Image.fromarray(np.zeros((12, 16, 3), np.uint8)).save(tiny_benchmark / "Tiny" / "HR" / "c_small.png")
    code, _, err = cli("eval", "-m", "bicubic", "--data-root", str(tiny_benchmark), "-d", "Tiny", "--no-progress")
    assert code == 1 and "c_small.png" in one_error_line(err) and "too small to score" in err


def test_eval_json_is_not_written_over_an_input(tiny_benchmark):
    hr = tiny_benchmark / "Tiny" / "HR" / "a.png"
    before = hr.read_bytes()
    code, _, err = cli("eval", "-m", "bicubic", "--data-root", str(tiny_benchmark), "-d", "Tiny", "--no-progress",
                       "--json", str(hr), "--overwrite")  # fmt: skip
    assert code == 1 and "is the input file" in one_error_line(err) and hr.read_bytes() == before


# ------------------------------------------------------------------- bombs, frames, pixel limits


def test_a_decompression_bomb_is_refused_from_its_header(tiny_model, tmp_path, time_limit):
    bomb = tmp_path / "bomb.png"
    Image.new("1", (10000, 10000)).save(bomb)  # 100 Mpx in 12 KB: under Pillow's own limit
    assert bomb.stat().st_size < 20_000
    with time_limit(5):
        code, _, err = cli("upscale", str(bomb), "-o", str(tmp_path / "out"), "-m", str(tiny_model))
    assert code == 1 and "over the limit of 64 Mpx" in one_error_line(err) and "--max-pixels" in err


def test_max_pixels_is_ours_to_set_in_cli_and_api(tiny_model, photo, tmp_path):
    import superres

    code, _, err = cli("upscale", str(photo), "-o", str(tmp_path / "a"), "-m", str(tiny_model), "--max-pixels", "400")
    assert code == 1 and "over the limit of 0.0004 Mpx" in one_error_line(err)
    code, _, _ = cli("upscale", str(photo), "-o", str(tmp_path / "b"), "-m", str(tiny_model), "--max-pixels", "480")
    assert code == 0
    code, _, _ = cli("upscale", str(photo), "-o", str(tmp_path / "c"), "-m", str(tiny_model), "--max-pixels", "0")
    assert code == 0
    model = superres.load_model(tiny_model, device="cpu")
    with pytest.raises(ImageError, match="over the limit"):
        model.upscale_file(photo, tmp_path / "d.png", max_pixels=100)
    outcome = next(superres.upscale_files(model, [(photo, tmp_path / "e.png")], max_pixels=100))
    assert isinstance(outcome.error, ImageError) and "photo.png" in str(outcome.error)
    assert model.upscale_file(photo, tmp_path / "f.png", max_pixels=None).is_file()


def _frames(count: int) -> list[Image.Image]:
    return [Image.new("RGB", (16, 12), (40 * i, 80, 120)) for i in range(count)]


@pytest.mark.parametrize(
    "name, options, word",
    [
        ("anim.gif", {"duration": 80}, "3 frames"),
        ("anim.png", {"duration": 80}, "3 frames"),  # APNG
        ("anim.webp", {"duration": 80, "lossless": True}, "3 frames"),
        ("pages.tif", {}, "3 pages"),
    ],
)
def test_multi_frame_files_are_refused_not_cut_to_their_first_frame(tiny_model, tmp_path, name, options, word):
    first, *rest = _frames(3)
    first.save(tmp_path / name, save_all=True, append_images=rest, **options)
    code, _, err = cli("upscale", str(tmp_path / name), "-o", str(tmp_path / "out"), "-m", str(tiny_model))
    assert code == 1
    line = one_error_line(err)
    assert name in line and word in line and "does not keep only the first" in line
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_camera_mpo_jpeg_is_its_primary_picture(tmp_path):
    first, second = _frames(2)
    path = tmp_path / "camera.jpg"
    first.save(path, format="MPO", save_all=True, append_images=[second])
    assert Image.open(path).format == "MPO" and Image.open(path).n_frames == 2
    assert read_image(path).pixels.shape == (12, 16, 3)


# ---------------------------------------------------------------------- terminals and temporaries


def test_output_on_a_non_utf8_terminal_with_odd_file_names(tiny_model, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    names = ["café→ü.png", os.fsdecode(b"raw\xff\xfe.png")]  # the second is not valid UTF-8 at all
    for name in names:
        Image.fromarray(np.full((8, 8, 3), 99, np.uint8)).save(folder / name)
    env = {**os.environ, "PYTHONIOENCODING": "latin-1", "PYTHONPATH": str(REPO)}  # "→" has no latin-1 code
    result = subprocess.run(
        [sys.executable, "-m", "superres", "upscale", str(folder), "-o", str(tmp_path / "out"), "-m", str(tiny_model)],
        capture_output=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert b"Traceback" not in result.stderr and b"2 written, 0 skipped, 0 failed" in result.stdout
    assert len(list((tmp_path / "out").iterdir())) == 2


def test_a_killed_runs_temporaries_are_removed_by_the_next_run_and_never_listed(tiny_model, photo, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)  # fmt: skip
    stale = out / f".photo_x2.png.{int(dead.stdout)}.k1ll3d00.part"
    stale.write_bytes(b"\x89PNG half an image")
    alive = out / f".other.png.{os.getpid()}.w0rk1ng0.part"  # a live writer's: left alone
    alive.write_bytes(b"being written")
    code, _, _ = cli("upscale", str(out), "-o", str(tmp_path / "next"), "-m", str(tiny_model))
    assert code == 1  # the folder held no images: the temporaries are not taken for inputs
    code, _, _ = cli("upscale", str(photo), "-o", str(out), "-m", str(tiny_model))
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == [alive.name, "photo_x2.png"]


def test_no_overwrite_never_replaces_a_file_that_appeared_meanwhile(tmp_path, monkeypatch):
    from superres import imageio

    target = tmp_path / "out.png"
    real_link = os.link

    def someone_else_writes_first(src, dst):
        Path(dst).write_bytes(b"made by someone else")
        return real_link(src, dst)

    monkeypatch.setattr(imageio.os, "link", someone_else_writes_first)
    with pytest.raises(ImageError, match="already exists"):
        write_image(target, ImageData(np.zeros((4, 4, 3), np.uint8)))
    assert target.read_bytes() == b"made by someone else"
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


# ------------------------------------------------------------------------------ the top-level guard


def test_a_missing_optional_extra_is_one_line_naming_it(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if superres[onnx] were not installed
    code, _, err = cli("export-onnx", str(tiny_model), "-o", str(tmp_path / "m.onnx"))
    assert code == 1
    line = one_error_line(err)
    assert "onnx" in line and ('pip install "superres[onnx]"' in line or "pip install onnx" in line)


def test_an_unexpected_exception_is_one_line_and_debug_shows_the_traceback(tiny_model, monkeypatch):
    from superres.models import weights

    def broken(path):
        raise KeyError("a bug")

    monkeypatch.setattr(weights, "load_network", broken)
    code, _, err = cli("info", str(tiny_model))
    assert code == 1 and "unexpected KeyError" in one_error_line(err) and "--debug" in err
    assert len(err.strip().splitlines()) == 1
    for args in (["--debug", "info", str(tiny_model)], ["info", str(tiny_model), "--debug"]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 1 and "Traceback" in result.stderr and "raise KeyError" in result.stderr
        assert result.stderr.strip().splitlines()[-1].startswith("error: unexpected KeyError")


def test_usage_errors_are_one_line(tmp_path):
    for args in (["upscale"], ["no-such-command"], ["upscale", "x.png", "--no-such-option"]):
        code, out, err = cli(*args)
        assert code == 2 and out == "" and "--help" in one_error_line(err)
        assert len(err.strip().splitlines()) == 1


def test_ctrl_c_says_what_was_finished(tiny_model, tmp_path, monkeypatch):
    from superres.engine.inference import Upscaler

    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a", "b", "c"):
        Image.fromarray(np.full((8, 8, 3), 50, np.uint8)).save(folder / f"{name}.png")
    real = Upscaler.upscale
    calls = []

    def interrupted(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Upscaler, "upscale", interrupted)
    code, _, err = cli("upscale", str(folder), "-o", str(tmp_path / "out"), "-m", str(tiny_model))
    assert code == 130
    last = err.strip().splitlines()[-1]
    assert last.startswith("interrupted: ") and "of 3 images written" in last and "again does the rest" in last
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["a_x2.png", "b_x2.png"] and all(read_image(tmp_path / "out" / n) for n in written)
    monkeypatch.undo()
    code, out, _ = cli("upscale", str(folder), "-o", str(tmp_path / "out"), "-m", str(tiny_model))
    assert code == 0 and "1 written, 2 skipped, 0 failed" in out


def test_every_float_option_of_every_command_is_checked():
    """A command added later gets the check too: the guard wraps each subcommand's invocation."""
    import typer.main

    group = typer.main.get_command(app)
    for name, command in group.commands.items():
        assert command.invoke.__name__ == "checked", name


def test_save_network_refuses_nan_weights(tmp_path):
    from superres.archs import SRVGGNetCompact
    from superres.models.weights import save_network

    network = SRVGGNetCompact(num_feat=4, num_conv=1, upscale=2)
    with torch.no_grad():
        network.body[0].weight[0, 0, 0, 0] = float("nan")
    with pytest.raises(WeightsError, match="NaN or inf"):
        save_network(
            tmp_path / "nan.safetensors", network, "SRVGGNetCompact", {"num_feat": 4, "num_conv": 1, "upscale": 2}
        )
    assert list(tmp_path.iterdir()) == []


def test_help_still_imports_nothing_heavy_and_shows_debug():
    code = "from superres.cli import app\ntry:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60,
                            check=True)  # fmt: skip
    assert "--debug" in result.stdout
