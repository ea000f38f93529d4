"""prepare_dataset.py from dance videos the tests make (sound, a moving dancer, a hard cut), offline:
with no model (static-camera masks, template captions) and with tiny random-weight mask, pose and
captioning models from local folders; the trainer reads the result and the evaluation runs on it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from musedance_core.training import dataset as fmt
from musedance_core.training.data import ClipSampler, read_manifest
from tests.support.dance_videos import FPS, make_dance_video

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[1]
ENV = os.environ | {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
CUT_AT = 4.0
OUT_FPS = 12.0


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    folder = tmp_path_factory.mktemp("dances")
    truth = {
        "bounce.mp4": make_dance_video(folder / "bounce.mp4", style="bounce", seed=1),
        "sway.mp4": make_dance_video(folder / "sway.mp4", style="sway", bpm=100.0, seed=2),
        "cut.mp4": make_dance_video(folder / "cut.mp4", seconds=8.0, style="bounce", bpm=128.0, cut_at=CUT_AT, seed=3),
    }
    return folder, truth


def _prepare(videos: Path, out: Path, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
    run = subprocess.run([sys.executable, "training/prepare_dataset.py", "--videos", str(videos), "--out", str(out),
                          "--width", "160", "--height", "120", "--fps", str(OUT_FPS), "--clip-seconds", "2",
                          "--stride-seconds", "2", "--val-fraction", "0.34", "--workers", "1", *extra],
                         cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600, check=False)
    if check:
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    return run


@pytest.fixture(scope="module")
def no_models(videos, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("plain") / "data"
    _prepare(videos[0], out)
    return out


def test_without_models_clips_follow_shots_and_downbeats_with_static_camera_masks(no_models, videos):
    records = fmt.read_manifest(no_models)
    by_video: dict[str, list[dict]] = {}
    for r in records:
        by_video.setdefault(r["video"], []).append(r)
    assert set(by_video) == {"bounce.mp4", "sway.mp4", "cut.mp4"}
    for r in by_video["cut.mp4"]:  # no clip crosses the cut
        assert r["start"] + 2.0 <= CUT_AT + 1e-6 or r["start"] >= CUT_AT - 1e-6, r
    assert {r["shot"] for r in by_video["cut.mp4"]} == {0, 1}
    ious, on_downbeat = [], 0
    for r in records:
        arrays = fmt.load_clip(no_models, r)
        fmt.check_arrays(r, arrays)
        # clips start on a downbeat (a beat where the shot has no downbeat to start on): it falls in frame 0
        assert len(arrays["beat_times"]) and arrays["beat_times"][0] < 1 / OUT_FPS, (r["id"], arrays["beat_times"])
        on_downbeat += bool(len(arrays["downbeat_times"]) and arrays["downbeat_times"][0] < 1 / OUT_FPS)
        assert r["mask_source"] == "static" and r["caption_source"] == "template"
        assert r["caption"].startswith("a dancer ") and r["caption"].endswith(" music")
        true = videos[1][r["video"]][round(r["start"] * FPS)::round(FPS / OUT_FPS)][:r["num_frames"]] > 0
        got = arrays["mask"] > 0
        ious.append((got & true).sum() / (got | true).sum())
    assert np.mean(ious) >= 0.7, ious
    assert on_downbeat >= len(records) - 1  # at most the shot after the cut starts on a plain beat
    bounce = [r["caption"] for r in by_video["bounce.mp4"]]
    assert any("bounces" in c or "jumps" in c for c in bounce), bounce
    sway = [r["caption"] for r in by_video["sway.mp4"]]
    assert any("side to side" in c for c in sway), sway
    progress = [json.loads(x)["video"] for x in (no_models / "videos.jsonl").read_text().splitlines()]
    assert sorted(progress) == ["bounce.mp4", "cut.mp4", "sway.mp4"]


def test_a_rerun_decodes_nothing_and_adds_nothing(no_models, videos):
    before = (no_models / fmt.MANIFEST_NAME).read_text()
    run = _prepare(videos[0], no_models)
    assert "3 finished before" in run.stdout + run.stderr
    assert (no_models / fmt.MANIFEST_NAME).read_text() == before


def test_the_trainer_reads_the_prepared_clips(no_models):
    records = read_manifest(no_models, "train")
    sampler = ClipSampler(no_models, tuple(records), "clip", num_frames=16)
    ex = sampler.example(0, 0)
    assert tuple(ex["pixels"].shape) == (16, 3, 120, 160) and float(ex["mask"].max()) == 1.0
    assert ex["music"].shape[0] == ex["beats"].shape[0] == 16 and ex["caption"]


@pytest.fixture(scope="module")
def model_folders(tmp_path_factory) -> dict[str, Path]:
    from tests.test_prepare_captions import make_smolvlm
    from tests.test_prepare_masks import make_segformer
    from tests.test_prepare_poses import make_vitpose

    root = tmp_path_factory.mktemp("models")
    return {"mask": make_segformer(root / "segformer"), "pose": make_vitpose(root / "vitpose"),
            "caption": make_smolvlm(root / "smolvlm")}


def test_with_mask_pose_and_caption_model_folders(videos, model_folders, tmp_path):
    out = tmp_path / "data"
    # random weights segment at random: accept any subject size so clips are kept
    _prepare(videos[0], out, "--mask-model", str(model_folders["mask"]), "--pose-model", str(model_folders["pose"]),
             "--caption-model", str(model_folders["caption"]), "--min-subject", "0", "--max-subject", "1",
             "--min-visible", "0", "--max-clips-per-video", "1", "--width", "64", "--height", "64")
    records = fmt.read_manifest(out)
    assert len(records) == 3 and sum(r["split"] == "train" for r in records) >= 1
    for r in records:
        arrays = fmt.load_clip(out, r)
        fmt.check_arrays(r, arrays)
        assert r["mask_source"] == "model" and r["has_parts"]
        assert arrays["parts"].shape == arrays["mask"].shape == (24, 64, 64) and arrays["parts"].dtype == np.uint8
        assert r["caption_source"] in ("model", "template") and r["caption"]
    info = json.loads((out / "dataset.json").read_text())
    assert info["config"]["mask_model"] == str(model_folders["mask"].resolve())
    sampler = ClipSampler(out, tuple(read_manifest(out)), "frame", part_focus=1.0)
    focus = sampler.example(0, 0)["mask"]
    assert tuple(focus.shape) == (1, 1, 64, 64) and np.isfinite(focus.numpy()).all()
    # and the trainer trains on it: two stage-1 steps of a fresh tiny model, part-balanced loss
    run = subprocess.run([sys.executable, "training/train.py", "--config", "training/configs/tiny_stage1.yaml", "--set",
                          f"data={out}", f"output_dir={tmp_path / 'run'}", "init=''", "max_steps=2", "batch_size=2",
                          "checkpoint_every=2", "log_every=1", "warmup_steps=1", "part_focus=1.0"],
                         cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    assert (tmp_path / "run" / "model.safetensors").is_file()


@pytest.mark.parametrize("make, message", [
    (lambda d: d, "not found"),  # no folder at all
    (lambda d: (d.mkdir(), d)[1], "config.json"),  # an empty folder
    (lambda d: (d.mkdir(), (d / "config.json").write_text('{"model_type": "clip"}'), d)[2], "clip"),
])
def test_a_wrong_model_folder_stops_before_anything_is_written(videos, tmp_path, make, message):
    folder = make(tmp_path / "not-a-model")
    out = tmp_path / "data"
    run = _prepare(videos[0], out, "--mask-model", str(folder), check=False)
    assert run.returncode != 0 and "Traceback" not in run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert str(folder) in last and message in last.lower(), last
    assert not out.exists() or not any(out.iterdir())


def test_evaluate_runs_on_a_prepared_real_video_data_set(no_models, tmp_path):
    from training.evaluate import main

    report = main(["--gt-as-generated", "--data", str(no_models), "--out", str(tmp_path / "eval"), "--clips", "4",
                   "--plots", "1", "--videos", "1"])
    summary = report["summary"]
    assert "style_accuracy" not in summary  # no styles in real video
    assert summary["beat"]["gt_own_bas"] > 0 and summary["appearance"]["mask_iou"] > 0.5
    assert (tmp_path / "eval" / "report.md").read_text().count("Not measured") == 1
    assert len(list((tmp_path / "eval").glob("*.mp4"))) == 1


def test_the_stage_1_check_runs_on_a_prepared_real_video_data_set(no_models, tmp_path):
    from training.check_appearance import main

    report = main(["--truth", "--data", str(no_models), "--out", str(tmp_path / "check"), "--frames", "4"])
    assert report["clips"] and report["summary"]["shape_iou"] > 0.5
    assert (tmp_path / "check" / "tiles.png").stat().st_size > 0
