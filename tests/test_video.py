"""Video: frames through the engine, everything else kept; resumable segments; torchrun shares the work.

The clips are made here with PyAV from real photos (moving 48×32 crops of Set5 baby), with variable frame
rate timestamps, a rotation tag, a 440 Hz sine in AAC and SubRip subtitles.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

av = pytest.importorskip("av")

from superres.cli import app  # noqa: E402
from superres.engine.inference import Upscaler, load_model  # noqa: E402
from superres.errors import VideoError  # noqa: E402
from superres.video.probe import probe  # noqa: E402
from superres.video.segments import parts_folder, plan_segments  # noqa: E402
from superres.video.transcode import VideoOptions, upscale_video  # noqa: E402

WEIGHTS = Path(__file__).resolve().parents[1] / "superres" / "weights" / "superres_x4.safetensors"
FRAMES = 16
DURATIONS = (100, 170, 100, 40)  # ms: a variable frame rate
SUBTITLES = "1\n00:00:00,100 --> 00:00:00,600\nhello\n\n2\n00:00:00,700 --> 00:00:01,200\nworld\n"


@pytest.fixture(scope="module")
def upscaler(one_thread: None) -> Upscaler:
    return load_model(WEIGHTS, device="cpu")


@pytest.fixture(scope="module")
def crops(shared: Path) -> list[np.ndarray]:
    """A window moving over a real photo: 3 px down and 2 px right per frame."""
    photo = np.asarray(Image.open(shared / "benchmarks" / "Set5" / "HR" / "baby.png").convert("RGB"))
    return [np.ascontiguousarray(photo[100 + 3 * i : 132 + 3 * i, 200 + 2 * i : 248 + 2 * i]) for i in range(FRAMES)]


def make_clip(path: Path, crops: list[np.ndarray], codec: str = "libx264", pix_fmt: str = "yuv420p") -> Path:
    """``crops`` as a video with VFR timestamps (ms), rotation 90°, AAC sine audio and SubRip subtitles
    (Matroska only); H.264 is tagged BT.709, keyframes every 4 frames."""
    srt = path.with_suffix(".srt")
    srt.write_text(SUBTITLES)
    with av.open(str(path), "w") as out, av.open(str(srt)) as subtitles:
        video = out.add_stream(codec, rate=10)
        video.width, video.height, video.pix_fmt = crops[0].shape[1], crops[0].shape[0], pix_fmt
        video.codec_context.time_base = video.time_base = Fraction(1, 1000)
        video.codec_context.gop_size = 4
        if codec == "libx264":
            video.codec_context.colorspace = video.codec_context.color_primaries = video.codec_context.color_trc = 1
            video.codec_context.color_range = 1
        video.set_display_rotation(90)
        audio = out.add_stream("aac", rate=8000)
        audio.layout = "mono"
        text = out.add_stream_from_template(subtitles.streams.subtitles[0]) if path.suffix == ".mkv" else None
        pts = 0
        for index, crop in enumerate(crops):
            frame = av.VideoFrame.from_ndarray(crop, format="rgb24")
            frame = frame.reformat(format=pix_fmt, dst_colorspace="ITU709", dst_color_range=1)
            frame.pts, frame.time_base = pts, Fraction(1, 1000)
            pts += DURATIONS[index % len(DURATIONS)]
            out.mux(video.encode(frame))
        out.mux(video.encode())
        t = np.arange(pts * 8) / 8000
        sine = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
        for start in range(0, sine.shape[1], 1024):
            chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(sine[:, start : start + 1024]), "flt", "mono")
            chunk.sample_rate, chunk.pts = 8000, start
            out.mux(audio.encode(chunk))
        out.mux(audio.encode())
        if text is not None:
            for packet in subtitles.demux(subtitles.streams.subtitles[0]):
                if packet.size:
                    packet.stream = text
                    out.mux(packet)
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory, crops: list[np.ndarray]) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    return {
        "h264": make_clip(folder / "vfr.mp4", crops),
        "lossless": make_clip(folder / "lossless.mkv", crops, "ffv1", "bgr0"),
    }


def frames_of(path: Path) -> list[tuple[Fraction, int, np.ndarray]]:
    """(time, rotation, RGB) of every frame, decoded with the matrix and range the file is tagged with."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        out = []
        for frame in container.decode(stream):
            matrix = {1: "ITU709"}.get(frame.colorspace, "ITU601")
            rgb = frame.to_ndarray(format="rgb24", src_colorspace=matrix, src_color_range=frame.color_range or 1)
            out.append((frame.pts * stream.time_base, frame.rotation, rgb))
        return out


def packets_of(path: Path, kind: str) -> list[tuple[bytes, Fraction]]:
    with av.open(str(path)) as container:
        return [(bytes(p), p.pts * p.time_base) for p in container.demux(**{kind: 0}) if p.size]


@pytest.fixture(scope="module")
def lossless_out(tmp_path_factory: pytest.TempPathFactory, clips: dict[str, Path], upscaler: Upscaler) -> Path:
    target = tmp_path_factory.mktemp("lossless") / "out.mkv"
    outcome = upscale_video(upscaler, clips["lossless"], target, VideoOptions(codec="ffv1", segment_seconds=0.3))
    assert outcome.written and outcome.frames == FRAMES and outcome.segments >= 3
    return target


def test_h264_keeps_frames_timestamps_rotation_audio_and_colour(
    clips: dict[str, Path], upscaler: Upscaler, tmp_path: Path
) -> None:
    target = tmp_path / "big.mp4"
    result = CliRunner().invoke(app, ["upscale", str(clips["h264"]), "-o", str(target), "--segment", "0.5"])
    assert result.exit_code == 0, result.output
    assert f"→ {target} ({FRAMES} frames)" in result.stdout and not parts_folder(target).exists()

    source, output = frames_of(clips["h264"]), frames_of(target)
    assert [(t, r) for t, r, _ in output] == [(t, r) for t, r, _ in source]  # count, VFR times, 90° rotation
    assert output[0][1] == 90 and len({b[0] - a[0] for a, b in itertools.pairwise(output)}) > 1
    assert output[0][2].shape == (32 * 4, 48 * 4, 3)
    assert packets_of(target, "audio") == packets_of(clips["h264"], "audio")  # copied, not re-encoded
    with av.open(str(target)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.codec_context.colorspace) == ("h264", 1)  # BT.709 kept
    # each frame is the image path's result for that frame, up to H.264 at CRF 18: colours decoded and
    # encoded with the source's BT.709 matrix (BT.601 would shift them and fail this)
    for (_, _, ours), (_, _, frame) in zip(output, source, strict=True):
        reference = upscaler.upscale(frame).astype(float)
        assert np.abs(ours.astype(float).mean((0, 1)) - reference.mean((0, 1))).max() < 1.0
        assert 10 * np.log10(255**2 / np.mean((ours - reference) ** 2)) > 33


def test_lossless_frames_equal_the_image_path(
    lossless_out: Path, clips: dict[str, Path], crops: list[np.ndarray], upscaler: Upscaler
) -> None:
    output = frames_of(lossless_out)
    assert [(t, r) for t, r, _ in output] == [(t, r) for t, r, _ in frames_of(clips["lossless"])]
    for (_, _, ours), crop in zip(output, crops, strict=True):
        assert np.array_equal(ours, upscaler.upscale(crop))
    assert packets_of(lossless_out, "audio") == packets_of(clips["lossless"], "audio")
    assert [p for p, _ in packets_of(lossless_out, "subtitles")] == [b"hello", b"world"]
    assert packets_of(lossless_out, "subtitles") == packets_of(clips["lossless"], "subtitles")


def test_interrupted_then_resumed_equals_uninterrupted(
    lossless_out: Path, clips: dict[str, Path], upscaler: Upscaler, tmp_path: Path
) -> None:
    target = tmp_path / "out.mkv"
    options = VideoOptions(codec="ffv1", segment_seconds=0.3)

    def interrupt(progress: object) -> None:
        if progress.frames_done == 9:  # type: ignore[attr-defined]
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        upscale_video(upscaler, clips["lossless"], target, options, progress=interrupt)
    parts = parts_folder(target)
    assert not target.exists() and sorted(p.name for p in parts.iterdir() if "part" in p.name) == []
    finished = sorted(p.name for p in parts.glob("*.json") if p.name != "plan.json")
    assert 1 <= len(finished) < len(plan_segments(probe(clips["lossless"]), 0.3))

    seen: list[int] = []
    outcome = upscale_video(upscaler, clips["lossless"], target, options, progress=lambda p: seen.append(p.frames_done))
    assert outcome.written and outcome.resumed == len(finished) and 0 < seen[0] < 9  # not from 0, nor frame 9 lost
    assert not parts.exists()
    again, whole = frames_of(target), frames_of(lossless_out)
    assert [t for t, _, _ in again] == [t for t, _, _ in whole]
    assert all(np.array_equal(a, b) for (_, _, a), (_, _, b) in zip(again, whole, strict=True))
    assert packets_of(target, "audio") == packets_of(lossless_out, "audio")


def test_resume_refuses_other_settings(clips: dict[str, Path], upscaler: Upscaler, tmp_path: Path) -> None:
    target = tmp_path / "out.mkv"

    def interrupt(progress: object) -> None:
        if progress.frames_done == 2:  # type: ignore[attr-defined]
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        upscale_video(upscaler, clips["h264"], target, VideoOptions(segment_seconds=0.3), progress=interrupt)
    with pytest.raises(VideoError, match=r"made with other settings \(crf\); .* delete it to start over"):
        upscale_video(upscaler, clips["h264"], target, VideoOptions(crf=30, segment_seconds=0.3))


def test_ten_bit_source_stays_ten_bit(crops: list[np.ndarray], upscaler: Upscaler, tmp_path: Path) -> None:
    source = make_clip(tmp_path / "deep.mp4", crops[:4], pix_fmt="yuv420p10le")
    outcome = upscale_video(upscaler, source, tmp_path / "out.mp4")
    assert outcome.written
    with av.open(str(tmp_path / "out.mp4")) as container:
        frame = next(container.decode(video=0))
        assert (frame.format.name, frame.width, frame.colorspace) == ("yuv420p10le", 192, 1)


def test_bad_inputs_get_one_line_each_and_the_rest_is_written(
    clips: dict[str, Path], crops: list[np.ndarray], tmp_path: Path
) -> None:
    notes = tmp_path / "notes.mp4"
    notes.write_text("not a video at all\n")
    song = tmp_path / "song.mp4"
    with av.open(str(song), "w") as out:
        audio = out.add_stream("aac", rate=8000)
        audio.layout = "mono"
        chunk = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), "flt", "mono")
        chunk.sample_rate, chunk.pts = 8000, 0
        out.mux(audio.encode(chunk))
        out.mux(audio.encode())
    data = clips["lossless"].read_bytes()
    truncated = tmp_path / "truncated.mkv"
    truncated.write_bytes(data[: len(data) * 6 // 10])
    unknown = tmp_path / "unknown.mkv"
    unknown.write_bytes(data.replace(b"V_FFV1", b"V_QQQQ"))  # a Matroska codec id no FFmpeg knows

    out = tmp_path / "out"
    inputs = [notes, song, truncated, unknown, clips["h264"]]
    result = CliRunner().invoke(app, ["upscale", *map(str, inputs), "-o", str(out), "--segment", "0.3"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 4, result.stderr
    assert f"{notes}: not a video file FFmpeg can read" in errors[0]
    assert f"{song}: has no video stream (it holds audio)" in errors[1]
    assert f"{truncated}: damaged or truncated at 0:00." in errors[2] and "(after frame" in errors[2]
    assert f"{unknown}: its video stream is in a codec this FFmpeg cannot decode" in errors[3]
    assert "1 written, 0 skipped, 4 failed" in result.stderr
    kept = frames_of(out / "truncated_x4.mkv")  # the frames before the damage, and they are whole
    assert 0 < len(kept) < FRAMES and str(len(kept)) in errors[2]
    assert len(frames_of(out / "vfr_x4.mp4")) == FRAMES
    assert sorted(p.name for p in out.iterdir()) == ["truncated_x4.mkv", "vfr_x4.mp4"]


def test_usage_errors_name_the_fix(clips: dict[str, Path], tmp_path: Path) -> None:
    runner = CliRunner()
    cases = [
        (["--codec", "mjpeg"], "unknown codec 'mjpeg'"),
        (["--crf", "70"], "--crf 70: h264 takes 0 (best) to 51"),
        (["--codec", "ffv1", "-o", str(tmp_path / "x.mp4")], "FFV1 goes into Matroska; name the output .mkv"),
        (["--outscale", "1.1"], "would be 53×35, but yuv420p needs sizes that are multiples of 2×2"),
        (["-o", str(tmp_path / "x.png")], ".png is not a video"),
    ]
    for args, message in cases:
        output = [] if "-o" in args else ["-o", str(tmp_path / "out")]
        result = runner.invoke(app, ["upscale", str(clips["h264"]), *output, *args])
        assert result.exit_code == 1 and message in result.stderr, (args, result.stderr)
        assert not (tmp_path / "x.mp4").exists()


def test_segments_start_at_keyframes(clips: dict[str, Path]) -> None:
    info = probe(clips["h264"])
    assert info.frames == FRAMES and info.keyframes == info.frame_pts[::4]
    segments = plan_segments(info, 0.5)
    assert [s.start for s in segments[1:]] == [s.end for s in segments[:-1]]
    assert all(s.start in info.keyframes for s in segments[1:])
    assert sum(s.frames for s in segments) == FRAMES and segments[0].start is None and segments[-1].end is None
    assert len(plan_segments(info, 100)) == 1


def test_torchrun_two_ranks_equal_one_rank(shared: Path, clips: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("baby", "bird", "butterfly"):
        image = Image.open(shared / "benchmarks" / "Set5" / "LR_bicubic" / "X4" / f"{name}.png").convert("RGB")
        image.crop((0, 0, 40, 32)).save(folder / f"{name}.png")
    (folder / "zz_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    outputs = {}
    for ranks in (1, 2):
        out = tmp_path / f"out{ranks}"
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}",
                   "-m", "superres", "upscale", str(folder), str(clips["lossless"]), "-o", str(out),
                   "--codec", "ffv1", "--segment", "0.3"]  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240, check=False)
        assert result.returncode != 0, result.stderr[-3000:]  # broken.png failed (on rank 1 of 2)
        # rank 0 reports every rank's files, once each, in order; the bad one in one line
        assert result.stderr.count("error: ") == 1 and "zz_broken.png" in result.stderr, result.stderr[-3000:]
        assert "4 written, 0 skipped, 1 failed" in result.stderr, result.stderr[-3000:]
        written = [line.split(" → ")[0] for line in result.stdout.splitlines() if "→" in line]
        assert written == [str(folder / f"{n}.png") for n in ("baby", "bird", "butterfly")] + [str(clips["lossless"])]
        outputs[ranks] = out
    images = sorted(p.name for p in outputs[1].glob("*.png"))
    assert images == sorted(p.name for p in outputs[2].glob("*.png")) and len(images) == 3
    for name in images:
        assert (outputs[1] / name).read_bytes() == (outputs[2] / name).read_bytes(), name
    one, two = frames_of(outputs[1] / "lossless_x4.mkv"), frames_of(outputs[2] / "lossless_x4.mkv")
    assert len(one) == FRAMES and [t for t, _, _ in one] == [t for t, _, _ in two]
    assert all(np.array_equal(a, b) for (_, _, a), (_, _, b) in zip(one, two, strict=True))
