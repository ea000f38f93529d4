"""Core data types passed between the audio front-end, the pipeline and the ComfyUI nodes.

They are the payloads of the custom ComfyUI types ``MUSEDANCE_BEATS`` and ``MUSEDANCE_MUSIC``
(docs/ARCHITECTURE.md, Contracts). Arrays are float32 numpy arrays with one row per video frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import InputError

# Column names of BeatTrack.frame_features, in order. A model reads the columns its config's
# ``beat_features`` names.
BEAT_FEATURE_NAMES: tuple[str, ...] = (
    "beat_pulse",  # Gaussian bump centred on each beat, 1.0 on the beat
    "beat_phase_sin",  # sin(2*pi*phase), phase in [0, 1) from one beat to the next
    "beat_phase_cos",
    "downbeat",  # Gaussian bump centred on each downbeat (first beat of a bar)
    "bar_phase_sin",  # sin(2*pi*bar phase), bar phase in [0, 1) from one downbeat to the next
    "bar_phase_cos",
    "onset_strength",  # onset envelope, max-pooled per frame, scaled to [0, 1] per track
    # Phases over two beats and two bars, counted from the first beat / downbeat of the analysed
    # music: they tell one beat (bar) from the next, which "every other beat" and "one bar each
    # way" need; the beat and bar phases above repeat every beat and bar.
    "beat_pair_phase_sin",
    "beat_pair_phase_cos",
    "bar_pair_phase_sin",
    "bar_pair_phase_cos",
)
# The columns before the pair phases: what models and data sets made before them hold.
LEGACY_BEAT_FEATURE_NAMES: tuple[str, ...] = BEAT_FEATURE_NAMES[:7]


def beat_feature_names(width: int) -> tuple[str, ...]:
    """The column names of beat features ``width`` columns wide (this version's or the legacy set)."""
    for names in (BEAT_FEATURE_NAMES, LEGACY_BEAT_FEATURE_NAMES):
        if width == len(names):
            return names
    raise InputError(f"beat features have {width} columns; MuseDance computes {len(BEAT_FEATURE_NAMES)} "
                     f"({len(LEGACY_BEAT_FEATURE_NAMES)} in older versions). Compute the beats again with the "
                     "Beat Extractor or `musedance beats`.")


def select_beat_features(features: np.ndarray, names) -> np.ndarray:
    """The columns ``names`` (a model's ``beat_features``) of beat features [T, K], in that order."""
    have = beat_feature_names(features.shape[1])
    missing = [n for n in names if n not in have]
    if missing:
        raise InputError(f"the beat features lack {', '.join(missing)}, which this model reads: they were computed "
                         "by an older MuseDance. Compute the beats again with the Beat Extractor or `musedance beats`.")
    if tuple(names) == have:
        return features
    return features[:, [have.index(n) for n in names]]


@dataclass(frozen=True)
class BeatTrack:
    """Beats of one piece of music and their per-video-frame features.

    Attributes:
        beat_times: beat positions in seconds from the start of the analysed segment, shape [NB].
        downbeat_times: the subset of ``beat_times`` that start a bar, shape [ND].
        tempo: median tempo in beats per minute (0.0 when no beat was found).
        beats_per_bar: meter used for the downbeats (given or estimated).
        frame_features: [T, K] float32 with T = round(duration * fps), columns BEAT_FEATURE_NAMES.
        fps: video frame rate the features are sampled at.
        duration: length of the analysed segment in seconds.
        local_tempo: [T] float32 tempo in BPM at each frame (0.0 where there is no beat).
        pulse_clarity: 0..1, how sure the tracker is of the beat (mean beat probability at the beats; below
            beats.NO_BEAT_CONFIDENCE counts as no beat).
        notes: what the user is told, e.g. "no beat found: the track is silent" (see notes.py).
    """

    beat_times: np.ndarray
    downbeat_times: np.ndarray
    tempo: float
    beats_per_bar: int
    frame_features: np.ndarray
    fps: float
    duration: float
    local_tempo: np.ndarray
    pulse_clarity: float = 0.0
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def num_frames(self) -> int:
        return int(self.frame_features.shape[0])

    def feature(self, name: str) -> np.ndarray:
        """One column of ``frame_features`` by name, e.g. "beat_pulse": [T] float32."""
        if name not in BEAT_FEATURE_NAMES:
            raise InputError(f"unknown beat feature '{name}'; choose one of {', '.join(BEAT_FEATURE_NAMES)}.")
        index = BEAT_FEATURE_NAMES.index(name)
        if index >= self.frame_features.shape[1]:
            raise InputError(f"these beats have no '{name}' column (made by an older MuseDance); compute them again.")
        return self.frame_features[:, index]

    def to_dict(self) -> dict:
        """JSON-ready summary (times rounded to 1 ms)."""
        return {
            "tempo": round(float(self.tempo), 3),
            "beats_per_bar": int(self.beats_per_bar),
            "fps": float(self.fps),
            "duration": round(float(self.duration), 6),
            "num_frames": self.num_frames,
            "pulse_clarity": round(float(self.pulse_clarity), 3),
            "beat_times": [round(float(t), 3) for t in self.beat_times],
            "downbeat_times": [round(float(t), 3) for t in self.downbeat_times],
            "feature_names": list(BEAT_FEATURE_NAMES),
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class MusicFeatures:
    """Per-video-frame music features from a music encoder.

    Attributes:
        features: [T, D] float32, row t describes the music during video frame t.
        fps: video frame rate.
        encoder: id of the encoder that made them (e.g. "spectral-v1"); a model records it.
        start: start of the segment in the source, seconds.
        duration: length of the segment, seconds.
        source_sample_rate: sample rate of the audio before resampling.
    """

    features: np.ndarray
    fps: float
    encoder: str
    start: float
    duration: float
    source_sample_rate: int

    @property
    def num_frames(self) -> int:
        return int(self.features.shape[0])

    @property
    def dim(self) -> int:
        return int(self.features.shape[1])


def num_video_frames(duration: float, fps: float) -> int:
    """Frames a segment of ``duration`` seconds gives at ``fps``: round(duration * fps)."""
    return int(round(duration * fps))
