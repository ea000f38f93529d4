"""Beat tracking on synthesised music with exactly known beats, and the per-frame features."""

from __future__ import annotations

import numpy as np
import pytest
from mir_eval.beat import f_measure

from musedance_core.audio.beats import track_beats
from musedance_core.audio.synth import Groove, render_ambient, render_groove
from musedance_core.errors import InputError
from musedance_core.notes import collect_notes
from musedance_core.types import BEAT_FEATURE_NAMES

FPS = 24


def _track(groove: Groove, seed: int = 0, **kwargs):
    song = render_groove(groove, seed=seed)
    return song, track_beats(song.samples, song.sample_rate, FPS, **kwargs)


@pytest.mark.parametrize("bpm", [92.0, 120.0, 128.0, 150.0, 174.0])
def test_steady_tempi_are_tracked(bpm):
    song, beats = _track(Groove(bpm=bpm, seconds=16.0), seed=int(bpm))
    assert f_measure(song.beat_times, beats.beat_times) >= 0.95
    assert beats.tempo == pytest.approx(bpm, rel=0.02)
    assert beats.beats_per_bar == 4


def test_waltz_meter_and_downbeats():
    song, beats = _track(Groove(bpm=150.0, beats_per_bar=3, seconds=16.0), seed=3)
    assert beats.beats_per_bar == 3
    assert f_measure(song.downbeat_times, beats.downbeat_times) >= 0.9


def test_downbeats_in_four_four():
    song, beats = _track(Groove(bpm=118.0, seconds=16.0), seed=4)
    assert f_measure(song.downbeat_times, beats.downbeat_times) >= 0.9
    # every downbeat is one of the beats
    assert np.isin(beats.downbeat_times, beats.beat_times).all()


def test_given_meter_is_used():
    _, beats = _track(Groove(bpm=118.0, seconds=12.0), seed=4, beats_per_bar=2)
    assert beats.beats_per_bar == 2
    assert len(beats.downbeat_times) == pytest.approx(len(beats.beat_times) / 2, abs=1)


def test_swing_keeps_the_beat_not_the_offbeat():
    song, beats = _track(Groove(bpm=110.0, swing=1 / 3, seconds=16.0), seed=5)
    assert f_measure(song.beat_times, beats.beat_times) >= 0.95


def test_tempo_change_is_followed():
    song, beats = _track(Groove(bpm=96.0, bpm_end=132.0, seconds=30.0), seed=6)
    assert f_measure(song.beat_times, beats.beat_times) >= 0.9
    # local tempo rises with the music: early frames slow, late frames fast
    early, late = beats.local_tempo[FPS * 3 : FPS * 6].mean(), beats.local_tempo[-FPS * 6 : -FPS * 3].mean()
    assert early < 105 and late > 120


def test_quiet_intro_beats_are_found():
    song, beats = _track(Groove(bpm=124.0, intro_bars=4, seconds=20.0), seed=7)
    intro_end = song.beat_times[16]
    ref_intro = song.beat_times[song.beat_times < intro_end]
    est_intro = beats.beat_times[beats.beat_times < intro_end]
    assert f_measure(ref_intro, est_intro) >= 0.8


def test_tempo_hint_picks_the_octave():
    _, free = _track(Groove(bpm=172.0, seconds=12.0), seed=8)
    _, hinted = _track(Groove(bpm=172.0, seconds=12.0), seed=8, min_bpm=60, max_bpm=100)
    assert free.tempo == pytest.approx(172, rel=0.03)
    assert hinted.tempo == pytest.approx(86, rel=0.03)


def test_silent_track_returns_no_beats_but_all_rows():
    with collect_notes() as notes:
        beats = track_beats(np.zeros(22050 * 3, np.float32), 22050, FPS)
    assert len(notes) == 1 and notes[0].startswith("no beat found: the audio is silent")
    assert beats.notes == tuple(notes) and beats.to_dict()["notes"] == notes
    assert len(beats.beat_times) == 0 and beats.tempo == 0.0
    assert beats.frame_features.shape == (72, len(BEAT_FEATURE_NAMES))
    assert np.isfinite(beats.frame_features).all()
    assert not beats.frame_features.any()


def test_beatless_music_returns_no_beats():
    with collect_notes() as notes:
        beats = track_beats(render_ambient(16.0, seed=2), 22050, FPS)
    assert len(notes) == 1 and notes[0].startswith("no beat found")
    assert len(beats.beat_times) == 0
    assert beats.frame_features.shape == (16 * 24, len(BEAT_FEATURE_NAMES))
    onset = beats.frame_features[:, BEAT_FEATURE_NAMES.index("onset_strength")]
    assert onset.max() > 0  # onset strength is still reported


def test_white_noise_returns_no_beats():
    noise = np.random.default_rng(0).standard_normal(22050 * 10).astype(np.float32) * 0.1
    beats = track_beats(noise, 22050, FPS)
    assert len(beats.beat_times) == 0


@pytest.mark.parametrize("seconds, fps", [(10.0, 24.0), (7.3, 30.0), (5.0, 29.97), (3.21, 12.5), (0.01, 24.0)])
def test_row_count_is_round_duration_times_fps(seconds, fps):
    song = render_groove(Groove(bpm=120.0, seconds=max(seconds, 0.05)), seed=9)
    samples = song.samples[: int(round(seconds * song.sample_rate))]
    beats = track_beats(samples, song.sample_rate, fps)
    assert beats.num_frames == int(round(seconds * fps))
    assert beats.local_tempo.shape == (beats.num_frames,)


def test_frame_features_describe_the_beats(groove_120):
    beats = track_beats(groove_120.samples, groove_120.sample_rate, FPS)
    f = {name: beats.frame_features[:, i] for i, name in enumerate(BEAT_FEATURE_NAMES)}
    on_beat = np.round(beats.beat_times * FPS).astype(int)
    on_beat = on_beat[on_beat < beats.num_frames]
    assert f["beat_pulse"][on_beat].mean() > 0.7
    off_beat = np.round((beats.beat_times[:-1] + 0.25) * FPS).astype(int)  # half way between beats at 120 BPM
    assert f["beat_pulse"][off_beat].max() < 0.05
    # phase is ~0 on the beat (cos ~ 1) and ~0.5 half way (cos ~ -1)
    assert f["beat_phase_cos"][on_beat].mean() > 0.8
    assert f["beat_phase_cos"][off_beat].mean() < -0.8
    assert np.allclose(f["beat_phase_sin"] ** 2 + f["beat_phase_cos"] ** 2, 1.0, atol=1e-5)
    down = np.round(beats.downbeat_times * FPS).astype(int)
    down = down[down < beats.num_frames]
    assert f["downbeat"][down].mean() > 0.7
    assert 0.0 <= f["onset_strength"].min() and f["onset_strength"].max() <= 1.0


def test_pair_phases_tell_one_beat_and_one_bar_from_the_next(groove_120):
    beats = track_beats(groove_120.samples, groove_120.sample_rate, FPS)
    f = {name: beats.frame_features[:, i] for i, name in enumerate(BEAT_FEATURE_NAMES)}
    on_beat = np.round(beats.beat_times * FPS).astype(int)
    on_beat = on_beat[on_beat < beats.num_frames]
    # the two-beat phase is 0 on the first beat, 1/2 on the next: cos alternates +1, -1
    signs = np.sign(f["beat_pair_phase_cos"][on_beat])
    assert (signs[::2] > 0).mean() > 0.9 and (signs[1::2] < 0).mean() > 0.9
    assert np.allclose(f["beat_pair_phase_sin"] ** 2 + f["beat_pair_phase_cos"] ** 2, 1.0, atol=1e-5)
    down = np.round(beats.downbeat_times * FPS).astype(int)
    down = down[down < beats.num_frames]
    bar_signs = np.sign(f["bar_pair_phase_cos"][down])
    assert (bar_signs[::2] > 0).all() and (bar_signs[1::2] < 0).all()
    # and the one-beat phase is the two-beat phase doubled
    doubled = np.cos(2 * np.arctan2(f["beat_pair_phase_sin"], f["beat_pair_phase_cos"]))
    assert np.allclose(doubled, f["beat_phase_cos"], atol=1e-4)


def test_a_model_reads_its_own_beat_columns():
    from musedance_core.errors import InputError
    from musedance_core.types import LEGACY_BEAT_FEATURE_NAMES, select_beat_features

    features = np.arange(5 * len(BEAT_FEATURE_NAMES), dtype=np.float32).reshape(5, -1)
    legacy = select_beat_features(features, LEGACY_BEAT_FEATURE_NAMES)  # a model from before the pair phases
    assert np.array_equal(legacy, features[:, :len(LEGACY_BEAT_FEATURE_NAMES)])
    assert select_beat_features(features, BEAT_FEATURE_NAMES) is features
    assert np.array_equal(select_beat_features(legacy, LEGACY_BEAT_FEATURE_NAMES), legacy)  # old stored data
    with pytest.raises(InputError, match="lack beat_pair_phase_sin.*Compute the beats again"):
        select_beat_features(legacy, BEAT_FEATURE_NAMES)
    with pytest.raises(InputError, match="beat features have 5 columns"):
        select_beat_features(features[:, :5], LEGACY_BEAT_FEATURE_NAMES)


def test_deterministic(groove_120):
    a = track_beats(groove_120.samples, groove_120.sample_rate, FPS)
    b = track_beats(groove_120.samples, groove_120.sample_rate, FPS)
    np.testing.assert_array_equal(a.beat_times, b.beat_times)
    np.testing.assert_array_equal(a.frame_features, b.frame_features)


@pytest.mark.parametrize("kwargs, message", [
    ({"fps": 0.0}, "fps must be between"),
    ({"fps": float("nan")}, "fps must be between"),
    ({"fps": 500.0}, "fps must be between"),
    ({"fps": 24.0, "min_bpm": 200, "max_bpm": 100}, "min_bpm < max_bpm"),
    ({"fps": 24.0, "max_bpm": 1000}, "max_bpm <= 300"),
    ({"fps": 24.0, "beats_per_bar": 40}, "beats_per_bar must be 1..16"),
])
def test_bad_arguments_are_named(groove_120, kwargs, message):
    with pytest.raises(InputError, match=message):
        track_beats(groove_120.samples, groove_120.sample_rate, **kwargs)


def test_to_dict_is_json_ready(groove_120):
    import json

    beats = track_beats(groove_120.samples, groove_120.sample_rate, FPS)
    data = json.loads(json.dumps(beats.to_dict()))
    assert data["num_frames"] == beats.num_frames
    assert len(data["beat_times"]) == len(beats.beat_times)
    assert data["feature_names"] == list(BEAT_FEATURE_NAMES)


def test_no_beats_in_the_reverb_tail():
    song = render_groove(Groove(bpm=120.0, seconds=12.0), seed=10)
    sr = song.sample_rate
    t = np.arange(int(2.5 * sr)) / sr  # 2.5 s of decaying noise after the music, like a reverb tail
    fade_in = np.minimum(t / 0.3, 1.0)  # no new attack where the tail starts
    tail = np.random.default_rng(0).standard_normal(t.size) * 0.05 * fade_in * np.exp(-t / 0.6)
    samples = np.concatenate([song.samples, tail.astype(np.float32)])
    beats = track_beats(samples, sr, FPS)
    assert f_measure(song.beat_times, beats.beat_times) >= 0.95
    # The music stops dead at 12.0 s, on the grid (where the next beat falls): a beat there marks
    # the cut. None may follow in the 2.5 s tail (the tracker must not keep its period through it).
    music_end = len(song.samples) / sr
    assert beats.beat_times.max() <= music_end + 0.07


@pytest.mark.parametrize("seconds", [2.5, 4.0, 6.0])
def test_short_clips_are_tracked(seconds):
    """Clips shorter than the 8 s tempogram window (typical video clips) still get their beats."""
    song, beats = _track(Groove(bpm=126.0, seconds=seconds), seed=12)
    assert f_measure(song.beat_times, beats.beat_times) >= 0.9
    assert beats.tempo == pytest.approx(126, rel=0.03)
