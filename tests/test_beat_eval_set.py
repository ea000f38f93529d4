"""Composition of the beat evaluation set (``benchmarks/midi_scores.py``, ``benchmarks/beat_eval_set.py``):
fast checks without FluidSynth, plus one render when FluidSynth and FluidR3_GM are installed."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pretty_midi
import pytest

from benchmarks import beat_eval_set as E
from benchmarks import midi_scores as M
from tests.comfy_host import skip_or_fail

ORIGINAL_CATEGORIES = ("steady_44", "waltz_34", "swing", "tempo_change", "quiet_intro", "no_beat")
# Digest of every note, control and tempo of the original categories and the speed track, computed
# before the later categories were added: old benchmark figures stay comparable only while it holds.
ORIGINAL_DIGEST = "c6475930d09a78ac19daed6f7f02e2b926768c22feecdecd079e86d363ec9d52"
EXPECTED_METERS = {"jig_bodhran": "6/8", "jig_flute": "6/8", "presto_68": "6/8", "slow_blues_128": "12/8",
                   "ballad_68": "6/8", "polka": "2/4", "march": "2/4", "polonaise": "3/4", "quartet_minuet": "3/4"}


def score_digest(score: M.Score) -> str:
    """Stable over numpy versions: floats are rounded and printed by Python, not by numpy."""
    rows = [(n.part, n.pitch, round(float(n.start), 9), round(float(n.length), 9), n.velocity) for n in score.notes]
    rows += [(c.part, c.number, round(float(c.beat), 9), c.value) for c in score.controls]
    rows += [(round(float(b), 9), round(float(t), 9)) for b, t in score.tempo_map]
    rows += [(p.name, p.program, p.is_drum, p.stem) for p in score.parts.values()]
    return hashlib.sha256(repr((rows, score.num_beats, score.beats_per_bar)).encode()).hexdigest()


def original_specs() -> list[E.TrackSpec]:
    specs = E.plan_tracks(E.DEFAULT_SEED, quick=False, categories=set(ORIGINAL_CATEGORIES))
    return specs + [E.TrackSpec(E.SPEED_TRACK_NAME, "speed", "house", 0,
                                E.track_seed(E.DEFAULT_SEED, E.SPEED_TRACK_NAME))]


def midi_specs() -> list[E.TrackSpec]:
    return [s for s in E.plan_tracks(E.DEFAULT_SEED, quick=False) if s.style not in E.BEATLESS_SOUNDS]


def test_original_categories_are_unchanged():
    digest = hashlib.sha256("".join(score_digest(E.compose_track(s)) for s in original_specs()).encode()).hexdigest()
    assert digest == ORIGINAL_DIGEST, "the original categories' music changed: bump GENERATOR_VERSION (and say so)"
    assert all(s.category not in E.CATEGORY_VERSIONS for s in original_specs())


def test_plan_lists_every_category_in_order_with_filters():
    specs = E.plan_tracks(E.DEFAULT_SEED, quick=False)
    assert list(dict.fromkeys(s.category for s in specs)) == list(E.CATEGORIES)
    assert list(E.CATEGORIES)[:len(ORIGINAL_CATEGORIES)] == list(ORIGINAL_CATEGORIES)
    assert [s.name for s in specs[:2]] == ["steady_44_01_house", "steady_44_02_hiphop"]
    subset = E.plan_tracks(E.DEFAULT_SEED, quick=False, categories={"compound"})
    assert {s.category for s in subset} == {"compound"}
    assert {s.name: s.seed for s in subset} == {s.name: s.seed for s in specs if s.category == "compound"}
    for category in E.CATEGORY_VERSIONS:
        assert 4 <= len(E.CATEGORIES[category]) <= 6
    with pytest.raises(SystemExit, match="unknown categories"):
        E.parse_categories("drumless,jazz_fusion")


def test_every_midi_track_composes_with_consistent_beats():
    for spec in midi_specs():
        score = E.compose_track(spec)
        assert score.notes and min(n.start for n in score.notes) >= 0.0, spec.name
        if spec.category == "no_beat":
            continue
        seconds = M.seconds_at(score.tempo_map, score.num_beats)
        assert 28.0 <= seconds <= 45.0, (spec.name, seconds)
        assert score.num_beats % score.beats_per_bar == 0, spec.name
        compound = score.meter in ("6/8", "12/8")
        assert score.beat_unit == (M.DOTTED_QUARTER if compound else 1.0), spec.name
        assert score.steps_per_beat in (M.STEPS_PER_BEAT, M.COMPOUND_STEPS, 8), spec.name
        if spec.style in EXPECTED_METERS:
            assert score.meter == EXPECTED_METERS[spec.style], spec.name
        if spec.category == "drumless":
            assert not any(p.is_drum for p in score.parts.values()), spec.name


def test_compound_labels_are_dotted_quarters(tmp_path):
    spec = next(s for s in midi_specs() if s.style == "jig_bodhran")
    score = E.compose_track(spec)
    path = tmp_path / "jig.mid"
    E.to_pretty_midi(score, "main").write(str(path))
    label = E.labels_from_midi(path, score)
    bpm = score.tempo_map[0][1]
    beats = np.array(label["beats"])
    assert (label["meter"], label["beats_per_bar"]) == ("6/8", 2)
    assert np.allclose(np.diff(beats), 60.0 / bpm, atol=1e-3)
    assert label["tempo_map"][0][1] == pytest.approx(bpm, abs=1e-3)  # labelled in dotted quarters
    pm = pretty_midi.PrettyMIDI(str(path))
    assert pm.get_tempo_changes()[1][0] == pytest.approx(1.5 * bpm, abs=1e-3)  # MIDI tempo counts quarters
    assert (pm.time_signature_changes[0].numerator, pm.time_signature_changes[0].denominator) == (6, 8)
    bodhran = [n for n in pm.instruments[0].notes if n.pitch == M.LOW_FLOOR_TOM]  # on both beats of each bar
    assert np.abs(np.array([min(abs(beats - n.start)) for n in bodhran])).max() < 1e-3


def test_octave_trap_grooves_put_their_anchors_where_the_style_says():
    def bar_phases(style: str, drum: int, min_velocity: int = 0) -> set[float]:
        """Bar positions (in beats) of one drum's hits in the groove (not the intro or the closing hit)."""
        spec = next(s for s in midi_specs() if s.style == style)
        score = E.compose_track(spec)
        start = score.info["intro_bars"] * score.beats_per_bar
        return {round(n.start % score.beats_per_bar, 3) for n in score.notes
                if n.part == "drums" and n.pitch == drum and start <= n.start < score.num_beats
                and n.velocity >= min_velocity}

    assert bar_phases("reggae_onedrop", M.KICK) == {2.0}  # one drop: kick on beat 3 only
    assert bar_phases("trap_140", M.CLAP) == {2.0}  # half-time clap
    assert bar_phases("funk_syncopated", M.SNARE, 100) == {1.0, 3.0}  # the backbeat that defines the beat
    assert bar_phases("funk_syncopated", M.CLOSED_HAT, 100) == {0.5, 1.5, 2.5, 3.5}  # accents on every 'and'


def test_tempo_shapes():
    specs = {s.style: s for s in midi_specs() if s.category == "tempo_shapes"}
    pop = E.compose_track(specs["pop"])
    bpms = [bpm for _, bpm in pop.tempo_map]
    assert bpms[-1] < 0.7 * bpms[0] and bpms == sorted(bpms, reverse=True)  # ritardando to the end
    assert pop.tempo_map[-1][0] == pop.num_beats - 1
    techno = E.compose_track(specs["techno"])
    assert techno.info["intro_bars"] == 8 and {p.stem for p in techno.parts.values()} == {"main", "intro"}


def test_chorale_has_a_new_chord_on_every_beat_but_cadences():
    spec = next(s for s in midi_specs() if s.style == "organ_chorale")
    score = E.compose_track(spec)
    degrees = score.info["degrees"]
    assert len(degrees) == score.num_beats + 1
    onsets = {round(n.start) for n in score.notes if n.part == "bass"}
    phrase = M.CHORALE_PHRASE_BARS * score.beats_per_bar
    assert onsets == {b for b in range(score.num_beats + 1) if b % phrase != phrase - 1}  # cadences last 2 beats


@pytest.mark.parametrize("sound", [s for s in E.BEATLESS_SOUNDS if s != "speech"])
def test_beatless_sounds(sound):
    audio, _ = E.synthesize_beatless(sound, np.random.default_rng(0), 3.0)
    assert audio.shape == (3 * E.SAMPLE_RATE, 2) and audio.dtype == np.float32
    assert np.isfinite(audio).all() and np.abs(audio).max() > 0


def test_version_markers_keep_old_labels_current():
    assert E.is_current_label({"category": "steady_44", "generator_version": E.GENERATOR_VERSION})
    assert not E.is_current_label({"category": "compound", "generator_version": E.GENERATOR_VERSION})
    assert E.is_current_label({"category": "compound", "generator_version": E.GENERATOR_VERSION,
                               "category_version": E.CATEGORY_VERSIONS["compound"]})


SMALL_SOUNDFONT = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")  # what scripts/setup.sh installs (6 MB)


def test_render_one_compound_track_and_index(tmp_path):
    """The builder end to end on one track; with the small GM soundfont setup.sh installs (the
    benchmark itself renders with FluidR3_GM)."""
    if shutil.which("fluidsynth") is None or not SMALL_SOUNDFONT.is_file():
        skip_or_fail("fluidsynth or TimGM6mb.sf2 missing: `sudo apt-get install fluidsynth timgm6mb-soundfont`")
    spec = next(s for s in midi_specs() if s.style == "ballad_68")
    label = E.build_track(spec, tmp_path, shutil.which("fluidsynth"), SMALL_SOUNDFONT)
    assert label["category_version"] == E.CATEGORY_VERSIONS["compound"] and label["meter"] == "6/8"
    assert E.is_current(tmp_path, spec)
    index = E.write_index(tmp_path, E.DEFAULT_SEED)
    assert index["categories"] == list(E.CATEGORIES) and [t["name"] for t in index["tracks"]] == [spec.name]
    assert json.loads((tmp_path / f"{spec.name}.json").read_text())["beats"] == label["beats"]


def test_the_dsp_baseline_still_tracks_a_groove(groove_120):
    """The benchmark's baseline (the tracker the learned one replaced) keeps working."""
    from mir_eval.beat import f_measure

    from benchmarks.dsp_beat_tracker import track_beats_dsp

    beats = track_beats_dsp(groove_120.samples, groove_120.sample_rate, 24)
    assert f_measure(groove_120.beat_times, beats.beat_times) >= 0.95
    assert beats.tempo == pytest.approx(120, rel=0.02)
