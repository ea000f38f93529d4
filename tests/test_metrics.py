"""BAS and vector strength behave as defined; the beat scores the project takes from mir_eval
count every beat (no 5 s trimming)."""

from __future__ import annotations

import mir_eval
import numpy as np
import pytest

from musedance_core.metrics import (
    beat_alignment_score,
    beat_phase_vector_strength,
    motion_beats,
    subject_speed,
    motion_energy,
)


def test_mir_eval_beat_scores_count_the_first_five_seconds():
    """The benchmarks and the beat tracker's training call f_measure / continuity on the full lists;
    mir_eval trims only in ``evaluate`` (``trim_beats``). A tracker that finds only the first 5 s
    must score below one, and one that misses only them must too."""
    ref = np.arange(0.5, 20.0, 0.5)
    first, rest = ref[ref < 5.0], ref[ref >= 5.0]
    assert mir_eval.beat.f_measure(ref, ref) == 1.0
    assert mir_eval.beat.f_measure(ref, first) == pytest.approx(2 * len(first) / (len(first) + len(ref)))
    assert mir_eval.beat.f_measure(ref, rest) == pytest.approx(2 * len(rest) / (len(rest) + len(ref)))
    assert mir_eval.beat.continuity(ref, rest)[1] == pytest.approx(len(rest) / len(ref))  # CMLt


def test_empty_inputs_score_zero():
    with pytest.warns(UserWarning, match="Estimated beats are empty"):
        assert mir_eval.beat.f_measure(np.array([1.0, 2.0]), np.array([])) == 0.0
    assert beat_alignment_score(np.array([]), np.array([1.0]), fps=24) == 0.0


def test_bas_is_one_for_perfect_alignment_and_falls_with_distance():
    beats = np.arange(1.0, 10.0, 0.5)
    assert beat_alignment_score(beats, beats, fps=24) == pytest.approx(1.0)
    one_frame = beat_alignment_score(beats, beats + 1 / 24, fps=24, sigma_frames=2.0)
    assert one_frame == pytest.approx(np.exp(-1 / 8))  # d = sigma / 2
    assert beat_alignment_score(beats, beats + 0.25, fps=24) < 0.02  # d = 3 sigma
    # extra motion beats do not hurt (BAS is averaged over music beats)
    assert beat_alignment_score(beats, np.sort(np.concatenate([beats, beats + 0.2])), fps=24) == pytest.approx(1.0)


def _bouncing_video(beat_times: np.ndarray, fps: float, seconds: float) -> np.ndarray:
    """A square that hops once per beat, pausing at the floor on the beat and at the top half way."""
    from musedance_core.audio.beats import pulse_and_phase

    t = np.arange(int(seconds * fps)) / fps
    _, phase = pulse_and_phase(t, beat_times, 1.0)
    height = np.sin(np.pi * phase) ** 2  # 0 on the beat, 1 half way, speed 0 at both
    frames = np.zeros((t.size, 64, 32, 1), np.float32)
    for i, h in enumerate(height):
        y = int(48 - 40 * h)
        frames[i, y : y + 8, 12:20] = 1.0
    return frames


def test_motion_beats_of_a_bouncing_square_land_on_the_music_beats():
    fps, beats = 24.0, np.arange(0.5, 10.0, 0.5)
    video = _bouncing_video(beats, fps, 10.0)
    energy = motion_energy(video)
    assert energy.shape == (video.shape[0],)
    found = motion_beats(energy, fps)
    # speed minima sit at the floor (on the beat) and at the top of each hop (half way)
    assert beat_alignment_score(beats, found, fps) > 0.9
    other_music = beats + 0.125  # beats a quarter of the way into each hop
    assert beat_alignment_score(other_music, found, fps) < 0.5


def test_subframe_motion_beats_find_minima_between_frames():
    fps, true_min = 12.0, np.arange(3.3, 40.0, 6.0)  # minima 0.3 frames after a frame
    t = np.arange(48, dtype=float)
    speed = np.min(np.abs(t[:, None] - true_min[None]), axis=1) ** 2  # a parabola around each minimum
    coarse = motion_beats(speed, fps, smooth_frames=0.0) * fps
    fine = motion_beats(speed, fps, smooth_frames=0.0, subframe=True) * fps
    assert len(coarse) == len(fine) == len(true_min)
    assert np.allclose(coarse, np.round(true_min))
    assert np.allclose(fine, true_min, atol=0.05)


def test_subject_speed_counts_turning_and_growing_at_the_outline():
    track = np.zeros((5, 4))
    track[:, 3] = 1.0
    track[:, 0] = [0.0, 0.1, 0.2, 0.2, 0.2]  # moves 0.1 a frame, then stops and turns
    track[:, 2] = [0.0, 0.0, 0.0, 90.0, 180.0]
    speed = subject_speed(track, radius=0.2)
    turn = 0.2 * np.pi / 2  # a quarter turn moves the outline by radius * pi / 2
    assert np.allclose(speed, [0.1, 0.1, (0.1 + turn) / 2, turn, turn])
    spin_end = np.zeros((3, 4))
    spin_end[:, 2] = [340.0, -20.0, -20.0]  # a turn that ends where it began: 340 -> -20 is no motion
    spin_end[:, 3] = [1.0, 1.2, 1.2]  # while it grows by 0.2
    assert np.allclose(subject_speed(spin_end, radius=0.5), [0.1, 0.05, 0.0])
    with pytest.raises(ValueError, match=r"\[T, 4\]"):
        subject_speed(np.zeros((5, 3)), 0.2)


def test_vector_strength_separates_locked_and_unlocked_motion():
    fps, beats = 24.0, np.arange(0.0, 20.0, 0.5)
    t = np.arange(int(20 * fps)) / fps
    locked = np.maximum(np.cos(2 * np.pi * t / 0.5), 0) ** 4  # motion bursts on every beat
    assert beat_phase_vector_strength(locked, beats, fps) > 0.8
    unrelated = np.maximum(np.cos(2 * np.pi * t / 0.37), 0) ** 4  # another tempo
    assert beat_phase_vector_strength(unrelated, beats, fps) < 0.2
    assert beat_phase_vector_strength(np.zeros_like(t), beats, fps) == 0.0


def test_motion_energy_rejects_wrong_shape():
    with pytest.raises(ValueError, match=r"\[T, H, W, C\]"):
        motion_energy(np.zeros((4, 8, 8)))
