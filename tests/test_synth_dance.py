"""SynthDance: deterministic clips, the data-set format round trip, beat-locked motion, exact masks,
held-out music and resumable generation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from musedance_core.audio.io import load_audio
from musedance_core.metrics import (
    beat_alignment_score,
    beat_phase_vector_strength,
    motion_beats,
    motion_energy,
)
from musedance_core.notes import collect_notes
from musedance_core.types import BEAT_FEATURE_NAMES
from musedance_core.training import dataset as fmt
from musedance_core.training.synthdance.appearance import background_image
from musedance_core.training.synthdance.generator import (
    SynthDanceConfig,
    clip_spec,
    generate,
    is_val_song,
    make_clip,
    make_song,
)
from musedance_core.training.synthdance.motion import STYLES, classify_motion

FPS = 12.0
CFG = SynthDanceConfig(seed=3, size=64, fps=FPS, num_frames=24, clips_per_song=2, val_fraction=0.5,
                       song_seconds=12.0, val_frames=36)
LONG = 120  # frames for the beat-locking checks (10 s: enough beats for stable statistics)


@pytest.fixture(scope="module")
def songs():
    return [make_song(CFG, 0), make_song(CFG, 4)]  # 95 and 144 BPM: the second is the control


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthdance")
    stats = generate(CFG, root, 4, workers=1, log=lambda *_: None)
    return root, stats


def _quiet(*_):
    pass


def test_clip_is_deterministic_for_a_seed(songs):
    a_record, a, a_audio = make_clip(CFG, songs[0], 1)
    b_record, b, b_audio = make_clip(CFG, make_song(CFG, 0), 1)
    assert a_record == b_record
    assert a.keys() == b.keys()
    for key, value in a.items():
        np.testing.assert_array_equal(value, b[key], err_msg=key)
    np.testing.assert_array_equal(a_audio, b_audio)
    other, _, _ = make_clip(SynthDanceConfig(**{**CFG.__dict__, "seed": 4}), make_song(CFG, 0), 1)
    assert other["caption"] != a_record["caption"] or other["start"] != a_record["start"]


def test_shapes_dtypes_and_record(dataset):
    root, stats = dataset
    assert stats["written"] == 4
    records = fmt.read_manifest(root)
    assert [r["id"] for r in records] == ["sd3_000000", "sd3_000001", "sd3_000002", "sd3_000003"]
    k = len(BEAT_FEATURE_NAMES)
    assert {r["split"]: r["num_frames"] for r in records} == {"train": 24, "val": 36}
    for record in records:
        t = CFG.frames_for(record["split"])
        assert set(fmt.RECORD_KEYS) <= set(record)
        assert record["source"] == "synthdance" and record["style"] in STYLES
        assert (record["num_frames"], record["width"], record["height"], record["fps"]) == (t, 64, 64, FPS)
        arrays = fmt.load_clip(root, record)
        assert set(arrays) == set(fmt.ARRAY_KEYS) - {"parts"}  # SynthDance has exact masks, no part maps
        assert arrays["frames"].shape == (t, 64, 64, 3) and arrays["frames"].dtype == np.uint8
        assert arrays["mask"].shape == (t, 64, 64) and arrays["mask"].dtype == np.uint8
        assert set(np.unique(arrays["mask"])) <= {0, 1}
        assert arrays["music"].dtype == np.float32 and arrays["music"].shape[0] == t
        assert arrays["beats"].shape == arrays["beats_true"].shape == (t, k)
        assert arrays["motion"].shape == (t, 4) and arrays["motion"].dtype == np.float32
        bt = arrays["beat_times"]
        assert len(bt) >= 2 and bt.min() >= 0 and bt.max() < t / FPS
        assert set(np.round(arrays["downbeat_times"], 9)) <= set(np.round(bt, 9))
        audio = load_audio(root / record["audio"], mono=True)
        assert abs(audio.duration - t / FPS) < 1e-3
        words = record["caption"].split()
        assert record["color"] in words


def test_manifest_and_clip_round_trip(tmp_path):
    record = {"id": "c1", "caption": "a red star bounces on every beat", "fps": 12.0, "num_frames": 3, "width": 8,
              "height": 8, "split": "train", "source": "test", "style": "bounce", "bpm": 120.0, "beats_per_bar": 4}
    rng = np.random.default_rng(0)
    arrays = {"frames": rng.integers(0, 255, (3, 8, 8, 3), dtype=np.uint8), "mask": np.ones((3, 8, 8), np.uint8),
              "music": rng.standard_normal((3, 5)).astype(np.float32),
              "beats": rng.standard_normal((3, 7)).astype(np.float32), "motion": np.zeros((3, 4), np.float32)}
    written = fmt.write_clip(tmp_path, record, arrays)
    fmt.append_manifest(tmp_path, written)
    (read,) = fmt.read_manifest(tmp_path)
    assert read == written and read["clip"] == "clips/c1.npz"
    loaded = fmt.load_clip(tmp_path, read)
    for key, value in arrays.items():
        np.testing.assert_array_equal(loaded[key], value)
    # a torn last line (interrupted append) is skipped, then repaired by the next append
    with open(tmp_path / fmt.MANIFEST_NAME, "a") as f:
        f.write('{"id": "c2", "cap')
    with collect_notes() as notes:
        assert [r["id"] for r in fmt.read_manifest(tmp_path)] == ["c1"]
    assert len(notes) == 1 and "skipping a torn last line" in notes[0]
    fmt.append_manifest(tmp_path, dict(written, id="c3"))
    assert [r["id"] for r in fmt.read_manifest(tmp_path)] == ["c1", "c3"]
    with pytest.raises(fmt.DatasetFormatError, match="frames"):
        fmt.write_clip(tmp_path, record, dict(arrays, frames=arrays["frames"][:2]))
    with pytest.raises(fmt.DatasetFormatError, match="lacks"):
        fmt.append_manifest(tmp_path, {"id": "x"})


def _events(style, arrays):
    bt, db = arrays["beat_times"], arrays["downbeat_times"]
    return {"jump": bt[::2], "sway": db, "spin": db}.get(style, bt)


@pytest.mark.parametrize("style", STYLES)
def test_motion_is_beat_locked(songs, style):
    """Motion energy of the rendered frames sits at one phase of the style's events (vector strength)
    with the clip's own beats, not with another song's; the true track is classified as its style."""
    song, other = songs
    assert abs(song.track.groove.bpm - other.track.groove.bpm) > 5  # a control at another tempo
    _, arrays, _ = make_clip(CFG, song, 7, style=style, start_frame=6, num_frames=LONG)
    _, control, _ = make_clip(CFG, other, 7, style=style, start_frame=6, num_frames=LONG)
    energy = motion_energy(arrays["frames"])
    own = beat_phase_vector_strength(energy, _events(style, arrays), FPS)
    foreign = beat_phase_vector_strength(energy, _events(style, control), FPS)
    assert own > 0.15 and own > 4 * foreign, (own, foreign)

    bpb = song.track.groove.beats_per_bar
    found, scores = classify_motion(arrays["motion"], arrays["beats_true"], bpb)
    assert found == style, scores
    assert max(scores[s] for s in STYLES if s != style) < 0.8

    beat_frames = np.round(arrays["beat_times"] * FPS).astype(int)
    _, y, _, scale = arrays["motion"].T
    if style == "bounce":  # on the floor (largest y, image y points down) at every beat
        lows = [i for i in range(1, LONG - 1) if y[i] >= y[i - 1] and y[i] >= y[i + 1]]
        assert all(min(abs(b - lo) for lo in lows) <= 1 for b in beat_frames[1:-1])
    if style == "pulse":  # largest on every beat
        assert np.all(scale[beat_frames] > np.percentile(scale, 75))
    if style in ("sway", "tilt"):  # pauses on the downbeats / beats: BAS with motion beats
        events = _events(style, arrays)
        bas = beat_alignment_score(events, motion_beats(energy, FPS), FPS)
        assert bas > 0.85, bas


def test_mask_matches_subject(songs):
    for index in range(4):
        spec = clip_spec(CFG, songs[0], index)
        _, arrays, _ = make_clip(CFG, songs[0], index)
        big = background_image(spec.background, spec.bg_colors, spec.floor_y, 4 * CFG.size, 4 * CFG.size)
        bg = np.asarray(Image.fromarray(big).reduce(4)).astype(int)
        differs = np.abs(arrays["frames"].astype(int) - bg[None]).max(axis=-1) > 40  # [T, H, W]
        mask = arrays["mask"].astype(bool)
        assert differs[mask].mean() > 0.9  # the mask covers the subject ...
        assert differs[~mask].mean() < 0.02  # ... and the rest is background (edge pixels aside)
        area = mask.mean(axis=(1, 2))
        assert np.all(area > 0.03) and np.all(area < 0.4), area


def test_val_music_never_in_train(dataset):
    root, _ = dataset
    records = fmt.read_manifest(root)
    train = {r["music_id"] for r in records if r["split"] == "train"}
    val = {r["music_id"] for r in records if r["split"] == "val"}
    assert train and val and not train & val
    assert sum(is_val_song(j, 0.05) for j in range(500)) == 25
    info = fmt.read_info(root)
    assert info["config"]["val_fraction"] == CFG.val_fraction and "val_rule" in info


def test_resume_skips_existing_clips(dataset, tmp_path):
    root, _ = dataset
    before = {p.name: p.stat().st_mtime_ns for p in (root / "clips").iterdir()}
    stats = generate(CFG, root, 6, workers=1, log=_quiet)
    assert (stats["written"], stats["skipped"]) == (2, 4)
    ids = [r["id"] for r in fmt.read_manifest(root)]
    assert ids == [f"sd3_{i:06d}" for i in range(6)]
    assert all((root / "clips" / name).stat().st_mtime_ns == t for name, t in before.items())
    # the same clips come out of a fresh run: generation depends on (seed, index) only
    fresh = tmp_path / "fresh"
    generate(CFG, fresh, 6, workers=1, log=_quiet)
    a, b = fmt.read_manifest(root), fmt.read_manifest(fresh)
    assert a == b
    np.testing.assert_array_equal(fmt.load_clip(root, a[5])["frames"], fmt.load_clip(fresh, b[5])["frames"])
    with pytest.raises(ValueError, match="same parameters"):
        generate(SynthDanceConfig(**{**CFG.__dict__, "size": 96}), root, 6, workers=1, log=_quiet)
    assert json.loads((root / fmt.INFO_NAME).read_text())["config"]["size"] == 64


def test_a_data_set_with_the_older_beat_columns_is_not_topped_up(tmp_path):
    root = tmp_path / "old"
    generate(CFG, root, 2, workers=1, log=_quiet)
    info = json.loads((root / fmt.INFO_NAME).read_text())
    info["beat_features"] = info["beat_features"][:7]  # as written before the pair phases
    (root / fmt.INFO_NAME).write_text(json.dumps(info))
    with pytest.raises(ValueError, match="older MuseDance.*7 beat features.*writes 11.*Delete the folder"):
        generate(CFG, root, 4, workers=1, log=_quiet)
    assert len(fmt.read_manifest(root)) == 2  # nothing added


def test_a_data_set_of_another_generator_version_is_not_topped_up(tmp_path):
    root = tmp_path / "v1"
    generate(CFG, root, 2, workers=1, log=_quiet)
    info = json.loads((root / fmt.INFO_NAME).read_text())
    info["generator_version"] = 1
    (root / fmt.INFO_NAME).write_text(json.dumps(info))
    with pytest.raises(ValueError, match="made by SynthDance generator v1; this is v2.*Delete the folder"):
        generate(CFG, root, 4, workers=1, log=_quiet)
    assert len(fmt.read_manifest(root)) == 2  # nothing added


def test_captions_fit_the_text_encoder_and_name_the_spin_direction(songs):
    """No caption is cut by the tiny models' tokenizer (the dance is named at its end), and a spin's
    direction follows from its caption: 'clockwise' turns clockwise (negative angles), others the other way."""
    from musedance_core.models.text import MAX_TOKENS, ByteTokenizer

    tokenizer, song, seen = ByteTokenizer(), songs[0], set()
    for index in range(120):
        spec = clip_spec(CFG, song, index)
        assert len(tokenizer.encode(spec.caption)) <= MAX_TOKENS - 2, spec.caption
        if spec.style != "spin":
            continue
        _, arrays, _ = make_clip(CFG, song, index)
        turn = arrays["motion"][:, 2]
        clockwise = "clockwise" in spec.caption
        assert np.abs(turn).max() > 90, spec.caption
        assert (turn.min() < -90 and turn.max() <= 0) if clockwise else (turn.max() > 90 and turn.min() >= 0)
        seen.add(clockwise)
    assert seen == {True, False}  # both directions occur
