"""prepare_dataset.py: clips cut from real video files (made here), fps resampling, feature alignment,
sidecar captions, masks, skipped videos, resume, and loading with the trainer's reader."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from musedance_core.audio.io import Audio, load_audio
from musedance_core.audio.synth import Groove, render_groove
from musedance_core.training import dataset as fmt
from musedance_core.training.data import ClipSampler, read_manifest
from musedance_core.video.writer import write_video
from musedance_core.training.prepare.config import PrepareConfig
from musedance_core.training.prepare.selection import plan_clips, shots_from_cuts, subject_check
from musedance_core.training.prepare.run import prepare
from musedance_core.training.prepare.sources import clip_id, sidecar_caption, video_split

SRC_FPS = 24
# the plain cutting these tests check: every stride, no shot cuts (the frames are flat grays), no masks
CFG = PrepareConfig(fps=12.0, width=32, height=32, clip_seconds=2.0, stride_seconds=1.5, val_fraction=0.0,
                    cut_detection=False, align="none", masks_from="none")
LEVEL = 4  # source frame i is flat gray 4 * i (mod 256): the resampled frame tells which one was picked


def _frames(n: int, w: int = 64, h: int = 48) -> np.ndarray:
    levels = (LEVEL * np.arange(n)) % 256
    return np.broadcast_to(levels[:, None, None, None], (n, h, w, 3)).astype(np.uint8).copy()


def _music(seconds: float, seed: int = 0) -> Audio:
    track = render_groove(Groove(bpm=120.0, seconds=seconds), seed=seed)
    return Audio(track.samples[None].astype(np.float32), track.sample_rate, track.sample_rate)


def _quiet(*_):
    pass


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    fast = {"preset": "ultrafast"}
    write_video(root / "a.mp4", _frames(5 * SRC_FPS), SRC_FPS, audio=_music(5.0), **fast)
    (root / "a.txt").write_text("a robot bounces on every beat\n")
    (root / "sub").mkdir()
    write_video(root / "sub" / "b.mov", _frames(4 * SRC_FPS), SRC_FPS, audio=_music(4.0, 1), **fast)
    (root / "sub" / "b.json").write_text(json.dumps(
        {"caption": "whole", "captions": [{"start": 0, "end": 1.2, "text": "intro"},
                                          {"start": 1.2, "end": 4.0, "text": "spins on the chorus"}]}))
    write_video(root / "noaudio.mp4", _frames(3 * SRC_FPS), SRC_FPS, **fast)
    write_video(root / "silent.mp4", _frames(3 * SRC_FPS), SRC_FPS,
                audio=Audio(np.zeros((1, 3 * 22050), np.float32), 22050, 22050), **fast)
    write_video(root / "short.mp4", _frames(SRC_FPS), SRC_FPS, audio=_music(1.0), **fast)
    (root / "corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(5000))
    return root


@pytest.fixture(scope="module")
def dataset(videos, tmp_path_factory):
    out = tmp_path_factory.mktemp("data")
    stats = prepare(CFG, videos, out, workers=1, log=_quiet)
    return out, stats


def test_clips_shapes_and_fps_resampling(dataset):
    out, stats = dataset
    records = fmt.read_manifest(out)
    by_video = {}
    for r in records:
        by_video.setdefault(r["video"], []).append(r)
    # a: 5 s at 12 fps = 60 frames, clips of 24 every 18 -> 0, 18, 36; b: 48 frames -> 0, 18
    assert sorted(by_video) == ["a.mp4", "sub/b.mov"]
    assert [r["start"] for r in by_video["a.mp4"]] == [0.0, 1.5, 3.0]
    assert len(by_video["sub/b.mov"]) == 2 and stats["written"] == 5
    for r in records:
        arrays = fmt.load_clip(out, r)
        fmt.check_arrays(r, arrays)
        assert arrays["frames"].shape == (24, 32, 32, 3) and r["fps"] == 12.0
        assert "mask" not in arrays
        # output frame k (video time start + k/12) shows source frame 2 * (start_frame + k)
        first = round(r["start"] * 12)
        want = (LEVEL * 2 * (first + np.arange(24))) % 256
        got = arrays["frames"].reshape(24, -1).mean(axis=1)
        assert np.abs(got - want).max() < 2.5, (r["id"], got.round(), want)


def test_features_align_with_frames_and_whole_song(dataset, videos):
    from musedance_core.audio.analysis import analyze
    from musedance_core.audio.beats import track_beats
    from musedance_core.audio.encoders import get_music_encoder

    out, _ = dataset
    from musedance_core.video.reader import probe_video

    audio = load_audio(videos / "a.mp4", mono=True, duration=probe_video(videos / "a.mp4").duration)
    analysis = analyze(audio.samples[0], audio.sample_rate)
    music = get_music_encoder("spectral").encode(audio.samples[0], audio.sample_rate, 12.0, analysis=analysis).features
    beats = track_beats(audio.samples[0], audio.sample_rate, 12.0, analysis=analysis)
    for r in fmt.read_manifest(out):
        if r["video"] != "a.mp4":
            continue
        arrays = fmt.load_clip(out, r)
        k0 = round(r["start"] * 12)
        assert arrays["music"].shape[0] == arrays["beats"].shape[0] == 24
        np.testing.assert_allclose(arrays["music"], music[k0:k0 + 24], atol=1e-5)
        np.testing.assert_allclose(arrays["beats"], beats.frame_features[k0:k0 + 24], atol=1e-5)
        assert np.all((arrays["beat_times"] >= 0) & (arrays["beat_times"] < 2.0))
        clip_audio = load_audio(out / r["audio"])
        assert abs(clip_audio.duration - 2.0) < 0.01


def test_sidecar_captions(dataset):
    out, _ = dataset
    captions = {(r["video"], r["start"]): r["caption"] for r in fmt.read_manifest(out)}
    assert captions[("a.mp4", 0.0)] == "a robot bounces on every beat"
    assert captions[("sub/b.mov", 0.0)] == "intro"  # [0, 2): 1.2 s of the intro, 0.8 s of the chorus
    assert captions[("sub/b.mov", 1.5)] == "spins on the chorus"


def test_sidecar_caption_picks_the_most_overlap():
    side = {"caption": "whole", "captions": [(0.0, 1.2, "intro"), (1.2, 4.0, "chorus")]}
    assert sidecar_caption(side, 0.0, 2.0) == "intro"
    assert sidecar_caption(side, 0.5, 2.5) == "chorus"
    assert sidecar_caption(side, 5.0, 7.0) == "whole"
    assert sidecar_caption(None, 0.0, 2.0) is None


def test_bad_videos_are_skipped_and_listed(dataset):
    out, stats = dataset
    listed = [json.loads(line) for line in (out / "skipped.jsonl").read_text().splitlines()]
    reasons = {s["video"]: s["reason"] for s in listed}
    assert reasons == {s["video"]: s["reason"] for s in stats["skipped"]}
    assert set(reasons) == {"corrupt.mp4", "noaudio.mp4", "silent.mp4", "short.mp4"}
    assert "no audio stream" in reasons["noaudio.mp4"]
    assert "silent audio" in reasons["silent.mp4"]
    assert "too short" in reasons["short.mp4"]
    assert "unreadable" in reasons["corrupt.mp4"]


def test_resume_skips_existing_clips_and_refuses_other_settings(dataset, videos):
    out, _ = dataset
    lines = (out / fmt.MANIFEST_NAME).read_text().splitlines()
    # as if the run had stopped before the last clip was listed: that video is not finished either
    (out / fmt.MANIFEST_NAME).write_text("\n".join(lines[:-1]) + "\n")
    last = json.loads(lines[-1])["video"]
    progress = out / "videos.jsonl"
    finished = [x for x in progress.read_text().splitlines() if json.loads(x)["video"] != last]
    assert len(finished) == 1  # a.mp4 and sub/b.mov were finished
    progress.write_text("\n".join(finished) + "\n")
    stats = prepare(CFG, videos, out, workers=1, log=_quiet)
    assert stats["written"] == 1  # the missing clip; that video's other clip is kept, not written again
    assert stats["existing"] == sum(json.loads(x)["video"] == last for x in lines) - 1
    assert [r["id"] for r in fmt.read_manifest(out)] == [json.loads(x)["id"] for x in lines]
    stats = prepare(CFG, videos, out, workers=1, log=_quiet)
    assert stats["written"] == 0 and stats["existing"] == 0  # both videos finished: not decoded again
    assert len(stats["skipped"]) == 4  # the unusable ones are tried (and listed) again
    with pytest.raises(ValueError, match="other settings"):
        prepare(PrepareConfig(**{**CFG.__dict__, "fps": 8.0}), videos, out, workers=1, log=_quiet)


def test_output_loads_with_the_trainer_reader(dataset):
    out, _ = dataset
    records = read_manifest(out, "train")
    sampler = ClipSampler(out, tuple(records), "clip", num_frames=16)
    ex = sampler.example(0, 0)
    assert tuple(ex["pixels"].shape) == (16, 3, 32, 32)
    assert tuple(ex["mask"].shape) == (16, 1, 32, 32) and float(ex["mask"].min()) == 1.0
    assert ex["music"].shape[0] == ex["beats"].shape[0] == 16
    assert ex["caption"]


def test_masks_hook_and_size(videos, tmp_path, monkeypatch):
    from PIL import Image

    masks = tmp_path / "masks"
    (masks / "sub" / "b").mkdir(parents=True)
    for i in range(4 * SRC_FPS):  # left half white on even source frames
        m = np.zeros((48, 64), np.uint8)
        m[:, : 32 if i % 2 == 0 else 16] = 255
        Image.fromarray(m).save(masks / "sub" / "b" / f"{i + 1:05d}.png")
    hook_dir = tmp_path / "hooks"
    hook_dir.mkdir()
    (hook_dir / "tiny_captioner.py").write_text(
        "def describe(frames, fps):\n    return f'{len(frames)} frames at {fps:g} fps'\n")
    cfg = PrepareConfig(fps=8.0, width=48, height=24, clip_seconds=3.0, stride_seconds=3.0, val_fraction=0.0,
                        max_clips_per_video=1, captions_from="none",
                        caption_hook=f"{hook_dir / 'tiny_captioner.py'}:describe",
                        masks=str(masks), cut_detection=False, align="none")
    out = tmp_path / "data"
    prepare(cfg, videos, out, workers=1, log=_quiet)
    records = {r["video"]: r for r in fmt.read_manifest(out)}
    assert set(records) == {"a.mp4", "sub/b.mov"}
    assert records["a.mp4"]["caption"] == "24 frames at 8 fps"
    b = fmt.load_clip(out, records["sub/b.mov"])
    assert b["frames"].shape == (24, 24, 48, 3) and b["mask"].shape == (24, 24, 48)
    # 24 -> 8 fps picks source frames 0, 3, 6, ...: odd ones have the narrow mask (1/4 of the width)
    assert b["mask"][0].mean() == pytest.approx(0.5, abs=0.05)
    assert b["mask"][1].mean() == pytest.approx(0.25, abs=0.05)
    assert "mask" not in fmt.load_clip(out, records["a.mp4"])


def test_ids_splits_and_plans_are_stable():
    assert clip_id("sub/b.mov", 18) == clip_id("sub/b.mov", 18) != clip_id("sub/c.mov", 18)
    assert video_split("x.mp4", 0.0) == "train" and video_split("x.mp4", 0.999999) == "val"


def test_clips_start_on_downbeats_inside_shots_at_least_a_stride_apart():
    cfg = PrepareConfig(fps=12.0, clip_seconds=2.0, stride_seconds=2.0)
    shots = shots_from_cuts([50, 60], 120)  # a cut at frame 50 and a 10-frame shot after it
    assert shots == [(0, 50), (50, 60), (60, 120)]
    beats = np.arange(0.25, 10.0, 0.5)  # 120 BPM from 0.25 s
    downbeats = beats[::4]  # 0.25, 2.25, 4.25, ... s: during frames 3, 27, 51, 75, 99
    plan = plan_clips(shots, beats, downbeats, cfg)
    assert plan == [(3, 0), (75, 2)]  # 27 + 24 > 50 and 99 + 24 > 120 end past their shots; shot 1 is too short
    assert [s for s, _ in plan_clips(shots, beats, downbeats, replace(cfg, align="beat"))] == [3, 63, 87]
    assert [s for s, _ in plan_clips(shots, beats, downbeats, replace(cfg, align="none"))] == [0, 24, 60, 84]
    assert plan_clips(shots, np.array([]), np.array([]), cfg) == [(0, 0), (24, 0), (60, 2), (84, 2)]  # no beat
    assert len(plan_clips(shots, beats, downbeats, replace(cfg, max_clips_per_video=2))) == 2


def test_a_clip_needs_a_visible_subject_of_a_sensible_size():
    cfg = PrepareConfig()
    masks = np.zeros((10, 20, 20), np.uint8)
    masks[:, 5:15, 5:15] = 1  # a quarter of the frame
    assert subject_check(masks, cfg) == (None, 0.25)
    speck = np.zeros_like(masks)
    speck[:, 0, 0] = 1  # 1 pixel of 400
    assert "too small" in subject_check(speck, cfg)[0]
    hidden = masks.copy()
    hidden[:5] = 0
    assert "seen in 50%" in subject_check(hidden, cfg)[0]
    assert "fills the frame" in subject_check(np.ones_like(masks), cfg)[0]


def test_a_learned_music_encoder_folder_gives_its_features_and_id(videos, tmp_path):
    from dataclasses import replace

    from tests.test_backbones import make_hubert

    encoders = tmp_path / "audio_encoders"
    make_hubert(encoders / "hubert-tiny")
    cfg = replace(CFG, music_encoder="hubert-tiny", audio_encoders=(str(encoders),))
    out = tmp_path / "data"
    prepare(cfg, videos, out, workers=1, log=_quiet)
    records = read_manifest(out)
    assert records and {r["music_encoder"] for r in records} == {"hubert:hubert-tiny:mean"}
    with np.load(out / records[0]["clip"]) as arrays:
        music, beats = arrays["music"], arrays["beats"]
    hidden = json.loads((encoders / "hubert-tiny" / "config.json").read_text())["hidden_size"]
    assert music.shape == (len(beats), hidden) and np.isfinite(music).all() and music.std() > 0


def test_template_captions_name_the_measured_moves_and_the_music():
    from musedance_core.training.prepare.template_captions import subject_motion, template_caption

    t, h, w = 24, 40, 60
    frames = np.zeros((t, h, w, 3), np.uint8)
    loud = np.sin(np.linspace(0, 2000, 44100)).astype(np.float32) * 0.9
    quiet = loud * 0.01

    def masks_at(xs, ys):
        out = np.zeros((t, h, w), np.uint8)
        for i, (x, y) in enumerate(zip(xs, ys)):
            out[i, int(y) - 4:int(y) + 4, int(x) - 3:int(x) + 3] = 1
        return out

    k = np.arange(t)
    bounce = masks_at(np.full(t, 30), 20 + 6 * np.abs(np.sin(np.pi * k / 6)))
    sway = masks_at(30 + 8 * np.sin(np.pi * k / 12), np.full(t, 20))
    travel = masks_at(np.linspace(10, 50, t), 20 + 6 * np.abs(np.sin(np.pi * k / 6)))
    still = masks_at(np.full(t, 30), np.full(t, 20))
    assert template_caption(subject_motion(frames, bounce), 135.0, loud) == \
        "a dancer bounces up and down on the beat to fast energetic music"
    assert "sways from side to side" in template_caption(subject_motion(frames, sway), 100.0, loud)
    caption = template_caption(subject_motion(frames, travel), 80.0, quiet)
    assert "bounces" in caption and "travels to the right" in caption and caption.endswith("to slow calm music")
    assert "in place" in template_caption(subject_motion(frames, still), 110.0, loud)
    assert template_caption(subject_motion(frames, None), 110.0, loud).startswith("a dancer dances with")
