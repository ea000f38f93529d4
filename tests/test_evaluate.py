"""training/evaluate.py on a micro SynthDance: the ground truth scored as if generated (the tracker
recovers the styles, the music-driven video beats the shuffled-music control, colours match) and a
tiny random model end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from musedance_core.errors import MuseDanceError
from musedance_core.training import dataset as fmt
from musedance_core.training.evaluation.appearance import psnr, ssim
from musedance_core.training.evaluation.beat_scores import pick_partners
from musedance_core.training.evaluation.tracking import learn_subject, track_subject, unwrap_angles
from training.evaluate import main

ROOT = Path(__file__).resolve().parents[1]
ENV = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


@pytest.fixture(scope="module")
def micro(tmp_path_factory) -> Path:
    """16 songs of one clip each; every 4th song (4 clips of 48 frames) is held out."""
    out = tmp_path_factory.mktemp("synth") / "micro"
    run = subprocess.run([sys.executable, "training/synth_dance.py", "--out", str(out), "--clips", "16",
                          "--size", "64", "--frames", "16", "--val-frames", "48", "--val-fraction", "0.25",
                          "--clips-per-song", "1", "--song-seconds", "12", "--workers", "1"],
                         cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr
    return out


@pytest.mark.integration
def test_ground_truth_as_generated(micro, tmp_path):
    out = tmp_path / "gt"
    report = main(["--gt-as-generated", "--data", str(micro), "--out", str(out), "--plots", "1", "--videos", "1"])
    s = report["summary"]
    assert s["style_accuracy"]["gt_motion"] == 1.0
    assert s["style_accuracy"]["gt_tracked"] >= 0.75  # the tracker, validated on the true frames
    assert s["style_accuracy"]["generated"] == s["style_accuracy"]["gt_tracked"]
    assert s["beat"]["gen_own_bas"] == pytest.approx(s["beat"]["gt_own_bas"])
    assert s["beat"]["gt_own_bas"] > s["beat"]["shuf_orig_bas"]  # music-driven beats the control
    assert s["beat"]["gt_own_vs"] > s["beat"]["shuf_orig_vs"]
    assert s["beat"]["gt_own_track_bas"] > s["beat"]["gt_partner_track_bas"]  # the tracked subject's pauses too
    assert {t["target"] for t in report["targets"]} >= {
        "BAS(subject track, 50 ms): generated >= 2 x shuffled-music control",
        "beat-phase VS(generated) >= 2 x VS(shuffled-music control)"}
    assert s["appearance"]["color_delta_e"] < 2.0
    assert s["appearance"]["ssim"] == pytest.approx(1.0)
    assert s["appearance"]["mask_iou"] > 0.9
    assert all(c["partner_rule_ok"] for c in report["clips"])
    for name in ("report.md", "report.json"):
        assert (out / name).stat().st_size > 0
    assert json.loads((out / "report.json").read_text())["info"]["clips"] == 4
    assert len(list(out.glob("tracks_*.png"))) == 1 and len(list(out.glob("*.mp4"))) == 1
    assert "BAS" in (out / "report.md").read_text()


@pytest.mark.integration
def test_tracker_follows_true_motion(micro):
    record = fmt.read_manifest(micro, "val")[0]
    arrays = fmt.load_clip(micro, record)
    track, masks = track_subject(arrays["frames"], learn_subject(arrays["frames"][0], arrays["mask"][0]))
    assert track.shape == arrays["motion"].shape and masks.shape == arrays["mask"].shape
    for c in (0, 1):  # centroid follows the true position (an offset is allowed)
        if arrays["motion"][:, c].std() > 1e-3:
            assert np.corrcoef(track[:, c], arrays["motion"][:, c])[0, 1] > 0.95


def test_unwrap_spin_and_tilt():
    spin = np.array([0, 0, 60, 180, 300, 0, 0, 0, 90, 200, 330, 0, 0], float)
    out = unwrap_angles(np.mod(spin + 37.0, 360.0))  # rest at 37 degrees
    assert np.allclose(out, spin, atol=1e-6)
    out = unwrap_angles(np.mod(37.0 - spin, 360.0))  # clockwise
    assert np.allclose(out, -spin, atol=1e-6)
    tilt = np.array([-15, 0, 15, 0, -15, 0, 15], float)
    assert np.allclose(unwrap_angles(np.mod(tilt, 360.0)), tilt, atol=1e-6)


def test_image_measures_and_partners():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (2, 16, 16, 3)).astype(np.uint8)
    assert psnr(a, a) == float("inf") and ssim(a, a) == pytest.approx(1.0)
    b = np.clip(a.astype(int) + 10, 0, 255)
    assert 20 < psnr(a, b) < 40 and ssim(a, b) < 1.0
    records = [{"bpm": 100.0, "music_id": "s1"}, {"bpm": 105.0, "music_id": "s2"}, {"bpm": 130.0, "music_id": "s3"},
               {"bpm": 130.0, "music_id": "s3"}]
    pairs = pick_partners(records, seed=0)
    assert pairs[0] in ((2, True), (3, True)) and pairs[2] in ((0, True), (1, True))


@pytest.mark.integration
def test_tiny_model_end_to_end(micro, tmp_path):
    import torch

    from musedance_core.checkpoints.bundle import save_bundle
    from musedance_core.models.config import tiny_config
    from musedance_core.models.musedance import MuseDanceModel

    torch.manual_seed(0)
    bundle = save_bundle(MuseDanceModel(tiny_config()), tmp_path / "tiny.safetensors")
    out = tmp_path / "model"
    report = main(["--model", str(bundle), "--data", str(micro), "--out", str(out), "--clips", "2", "--frames", "24", "--cfg", "1",
                   "--steps", "1", "--plots", "1", "--videos", "1"])
    assert report["info"]["clips"] == 2 and report["info"]["steps"] == 1 and report["info"]["frames"] == 24
    assert set(report["summary"]["beat"]) >= {"gen_own_bas", "shuf_orig_bas", "gt_own_vs"}
    assert (out / "report.md").is_file() and (out / "report.json").is_file()
    assert len(list(out.glob("*.mp4"))) == 1


@pytest.mark.integration
def test_appearance_check_scores_truth_as_perfect_and_an_untrained_model_as_poor(micro, tmp_path):
    import torch

    from musedance_core.checkpoints.bundle import save_bundle
    from musedance_core.models.config import tiny_config
    from musedance_core.models.musedance import MuseDanceModel
    from training import check_appearance

    truth = check_appearance.main(["--truth", "--data", str(micro), "--out", str(tmp_path / "gt"), "--frames", "6"])
    assert truth["summary"]["shape_iou"] > 0.95  # the colour segmentation of the true frames: near their masks
    assert truth["summary"]["color_delta_e"] < 2.0
    torch.manual_seed(0)
    bundle = save_bundle(MuseDanceModel(tiny_config()), tmp_path / "tiny.safetensors")
    out = tmp_path / "model"
    report = check_appearance.main(["--model", str(bundle), "--data", str(micro), "--out", str(out), "--clips", "2",
                                    "--frames", "2", "--steps", "2", "--cfg", "1"])
    assert len(report["clips"]) == 2 and report["summary"]["shape_iou"] < 0.5  # noise is no subject
    assert set(report["summary"]["shape_iou_by_style"]) == {c["style"] for c in report["clips"]}
    assert (out / "report.json").is_file() and (out / "tiles.png").stat().st_size > 0
    with pytest.raises(SystemExit):
        check_appearance.parse_args(["--data", str(micro)])  # no model and no --truth
    with pytest.raises(MuseDanceError, match="not a readable .safetensors file"):
        check_appearance.main(["--model", str(ROOT / "README.md"), "--data", str(micro), "--out", str(out)])
