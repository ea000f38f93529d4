"""Beat-tracker training data: deterministic compositions, label conventions (dotted quarters in 6/8),
beatless pieces, labels that survive rendering and augmentation (reverb, EQ, codec, start cut), and a
resumable generator."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from musedance_core.training.beat_tracker import music as bm
from musedance_core.training.beat_tracker import styles as bs
from tests.comfy_host import skip_or_fail

TEST_SOUNDFONT = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")  # small: loads fast


def _same(a: bm.Piece, b: bm.Piece) -> bool:
    return (a.notes == b.notes and a.controls == b.controls and np.array_equal(a.beats, b.beats)
            and np.array_equal(a.downbeats, b.downbeats) and a.style == b.style)


def test_compositions_are_deterministic():
    for seed in range(4):
        a = bm.compose_piece(np.random.default_rng(seed), 20.0)
        b = bm.compose_piece(np.random.default_rng(seed), 20.0)
        assert _same(a, b)
    assert not _same(bm.compose("pop", np.random.default_rng(0), 20.0), bm.compose("pop", np.random.default_rng(1), 20.0))


@pytest.mark.parametrize("style", sorted(bs.STYLES))
def test_labels_follow_the_conventions(style):
    for seed in range(2):
        piece = bm.compose(style, np.random.default_rng(seed), 18.0)
        assert piece.style == style and piece.notes
        if piece.category == bs.NO_BEAT:
            assert piece.beats.size == 0 and piece.downbeats.size == 0 and piece.beats_per_bar == 0
            continue
        meter = piece.info["meter"]
        assert piece.beats_per_bar == bm.METERS[meter][0]
        beats, downs = piece.beats, piece.downbeats
        assert np.all(np.diff(beats) > 0.25) and np.all(np.diff(beats) < 1.25)  # 48..240 BPM
        assert beats[0] >= 0 and beats[-1] <= piece.duration
        assert min(n[3] for n in piece.notes) <= beats[0] + 0.1  # labels start with the music
        first = int(np.searchsorted(beats, downs[0] - 1e-9))
        assert first < piece.beats_per_bar  # at most a pickup before the first downbeat
        np.testing.assert_array_equal(downs, beats[first::piece.beats_per_bar])


@pytest.mark.parametrize("style", ["jig", "quartet_presto", "tarantella"])
def test_six_eight_labels_dotted_quarters(style):
    piece = bm.compose(style, np.random.default_rng(5), 20.0)
    assert piece.info["meter"] == "6/8" and piece.beats_per_bar == 2
    melody = piece.info["programs"]["melody"]
    onsets = np.unique(np.round([n[3] for n in piece.notes if n[0] == melody and not n[1]], 3))
    ioi = np.diff(onsets)
    eighth = float(np.median(ioi[(ioi > 0.05) & (ioi < 1.0)]))
    beat = float(np.median(np.diff(piece.beats)))
    assert beat / eighth == pytest.approx(3.0, rel=0.2)  # a labelled beat spans three eighths


def test_beatless_category_and_weight():
    piece = bm.compose(bs.NO_BEAT, np.random.default_rng(0), 15.0)
    assert piece.category == bs.NO_BEAT and piece.beats.size == 0 and piece.beats_per_bar == 0
    weights = {c: sum(s.weight for s in bs.STYLE_LIST if s.category == c) for c in bs.CATEGORIES}
    assert 0.05 < weights[bs.NO_BEAT] / sum(weights.values()) < 0.12
    with pytest.raises(ValueError, match="unknown style"):
        bm.compose("polka_dots", np.random.default_rng(0), 10.0)


def _tools() -> str:
    exe = shutil.which("fluidsynth")
    if exe is None or not TEST_SOUNDFONT.is_file():
        skip_or_fail("fluidsynth or TimGM6mb.sf2 missing: `sudo apt-get install fluidsynth timgm6mb-soundfont`")
    return exe


@pytest.mark.parametrize("codec", ["aac", "mp3"])
def test_render_keeps_labels_exact_through_augmentation(codec):
    from musedance_core.training.beat_tracker import render as br

    exe = _tools()
    piece = bm.compose("house", np.random.default_rng(3), 8.0)
    plan = {"level_dbfs": -20.0, "offset_s": 1.3, "eq": {"type": "band", "low_hz": 300.0, "high_hz": 3400.0},
            "reverb": {"rt60": 0.8, "wet_db": -6.0, "predelay_s": 0.01}, "codec": {"name": codec, "kbps": 96}}
    rng = np.random.default_rng(0)
    audio, info = br.render_piece(piece, TEST_SOUNDFONT, exe, rng, plan=plan)
    assert audio.dtype == np.float32 and info["sample_rate"] == br.SAMPLE_RATE
    assert len(audio) / br.SAMPLE_RATE == pytest.approx(info["duration"])
    np.testing.assert_allclose(info["beats"], piece.beats[piece.beats >= 1.3] - 1.3, atol=1e-6)
    # the augmented audio keeps the clean render's timing (codec delay removed) to within 2 ms
    rng = np.random.default_rng(0)
    gain, fx = float(rng.uniform(0.2, 0.6)), {"reverb": bool(rng.random() < 0.6), "chorus": bool(rng.random() < 0.5)}
    clean = br.synthesize(piece, TEST_SOUNDFONT, exe, gain, **fx)[int(1.3 * br.SAMPLE_RATE):]
    assert abs(br.measure_lag(clean, audio, 2048)) <= 0.002 * br.SAMPLE_RATE
    # and the kicks (four on the floor) are heard at the labelled beats
    import librosa

    onsets = librosa.onset.onset_detect(y=audio, sr=br.SAMPLE_RATE, hop_length=256, units="time", backtrack=False)
    near = [np.min(np.abs(onsets - b)) < 0.035 for b in info["beats"] if b < info["duration"] - 0.5]
    assert np.mean(near) > 0.85


def test_make_beat_data_writes_and_resumes(tmp_path):
    import soundfile as sf

    from musedance_core.training.beat_tracker import dataset as mbd
    from training import make_beat_data

    exe = _tools()
    args = ["--out", str(tmp_path), "--pieces", "3", "--seed", "7", "--seconds-range", "6", "8",
            "--soundfonts", str(TEST_SOUNDFONT), "--workers", "1", "--fluidsynth", exe]
    make_beat_data.main(args)
    for i in range(3):
        meta = json.loads((tmp_path / f"piece_{i:05d}.json").read_text())
        audio, sr = sf.read(str(tmp_path / f"piece_{i:05d}.flac"))
        assert sr == 22050 and audio.ndim == 1
        assert meta["duration"] == pytest.approx(len(audio) / sr, abs=1e-3)
        assert meta["seed"] == mbd.piece_seed(7, i) and meta["generator_version"] == mbd.GENERATOR_VERSION
        beats = np.array(meta["beats"])
        assert np.all((beats >= 0) & (beats < meta["duration"])) and set(meta["downbeats"]) <= set(meta["beats"])
        assert meta["soundfont"] == TEST_SOUNDFONT.name
    index = json.loads((tmp_path / "index.json").read_text())
    assert index["summary"]["pieces"] == 3
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("piece_*")}
    stats = mbd.generate(tmp_path, 3, 7, (6.0, 8.0), [TEST_SOUNDFONT], exe, workers=1)
    assert stats["written"] == 0 and stats["skipped"] == 3
    assert before == {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("piece_*")}
    assert mbd.piece_seed(7, 0) != mbd.piece_seed(8, 0)
