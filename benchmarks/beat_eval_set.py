"""Build the beat-tracking evaluation set: seeded MIDI pieces rendered with real GM instruments.

Each track is composed in beats (``midi_scores.py``), written as MIDI with ``pretty_midi``,
rendered with the FluidSynth CLI and the FluidR3 General MIDI soundfont, and labelled from the
tempo map of the MIDI file it was rendered from, so the ground truth is exact (FluidSynth itself
adds about 3 ms of sample attack).

Categories (see ``CATEGORY_STYLES``): steady_44, waltz_34, swing, tempo_change, quiet_intro
(an intro on its own stem mixed ``INTRO_LEVEL_DB`` below the groove) and no_beat (ambient pads,
no labelled beats). A 180 s house groove (``speed_3min``) is added for the speed benchmark.

Output folder (default ``bench_data/beats``): ``<name>.wav`` (44.1 kHz stereo, 16-bit),
``<name>.mid``, ``<name>.json`` = {"category", "beats", "downbeats", "beats_per_bar",
"tempo_map", ...} and ``index.json``. Tracks already rendered with the same seed and generator
version are skipped.

    apt-get install -y fluidsynth fluid-soundfont-gm
    .venv/bin/python benchmarks/beat_eval_set.py [--out bench_data/beats] [--quick]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pretty_midi
import soundfile as sf

# sibling module: running this file puts benchmarks/ on sys.path
from midi_scores import CATEGORY_STYLES, STYLES, Score, compose, compose_groove, seconds_at

GENERATOR_VERSION = 1  # bump when the music changes: older renders are then rebuilt
DEFAULT_OUT = Path("bench_data/beats")
DEFAULT_SEED = 20240611
DEFAULT_SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
APT_HINT = "apt-get update && apt-get install -y fluidsynth fluid-soundfont-gm"
SAMPLE_RATE = 44100
FLUIDSYNTH_GAIN = 0.8  # rendered as 32-bit float, so no clipping before normalisation
MIDI_RESOLUTION = 960  # ticks per quarter note
TRACK_SECONDS = (28.0, 41.0)  # music length before whole bars and the tail: tracks of 30-45 s
SPEED_TRACK_SECONDS = 180.0
SPEED_TRACK_NAME = "speed_3min"
TAIL_SECONDS = 2.5  # audio kept after the last labelled beat (or the last note of a beatless piece)
FADE_SECONDS = 0.5
TARGET_RMS_DBFS = -18.0
PEAK_CEILING_DBFS = -1.0
INTRO_LEVEL_DB = -20.0  # quiet_intro: intro RMS relative to the groove RMS
MAX_LABEL_ERROR_S = 1e-3  # MIDI tempo map vs the score's own arithmetic
MIN_RENDER_PEAK = 1e-4  # a quieter render means FluidSynth failed silently


class EvalSetError(RuntimeError):
    """The evaluation set cannot be built (missing tool, failed render, inconsistent labels)."""


@dataclass(frozen=True)
class TrackSpec:
    name: str
    category: str
    style: str
    index: int  # position within its category, 0-based
    seed: int


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="one track per category, for smoke tests")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="base seed (default: %(default)s)")
    parser.add_argument("--soundfont", type=Path, default=DEFAULT_SOUNDFONT, help="GM .sf2 (default: %(default)s)")
    parser.add_argument("--fluidsynth", default="fluidsynth", help="FluidSynth executable (default: %(default)s)")
    parser.add_argument("--no-speed-track", action="store_true", help=f"skip the {SPEED_TRACK_SECONDS:.0f} s track")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    fluidsynth = check_tools(args.fluidsynth, args.soundfont)
    args.out.mkdir(parents=True, exist_ok=True)
    specs = plan_tracks(args.seed, args.quick)
    if not args.no_speed_track:
        specs.append(TrackSpec(SPEED_TRACK_NAME, "speed", "house", 0, track_seed(args.seed, SPEED_TRACK_NAME)))
    started = time.perf_counter()
    built = 0
    for spec in specs:
        if is_current(args.out, spec):
            print(f"skip   {spec.name} (already rendered)")
            continue
        t0 = time.perf_counter()
        label = build_track(spec, args.out, fluidsynth, args.soundfont)
        built += 1
        print(f"built  {spec.name}: {label['duration']:.1f} s, {len(label['beats'])} beats "
              f"({time.perf_counter() - t0:.1f} s)")
    index = write_index(args.out, args.seed)
    print(f"{built} track(s) rendered, {len(specs) - built} skipped in {time.perf_counter() - started:.1f} s; "
          f"index lists {len(index['tracks'])} evaluation tracks -> {args.out / 'index.json'}")
    return 0


def check_tools(fluidsynth: str, soundfont: Path) -> str:
    """Path of the FluidSynth executable; a clear error if it or the soundfont is missing."""
    exe = shutil.which(fluidsynth)
    if exe is None:
        raise SystemExit(f"error: the FluidSynth CLI '{fluidsynth}' was not found on PATH. Install it with:\n"
                         f"    {APT_HINT}")
    if not soundfont.is_file():
        raise SystemExit(f"error: the General MIDI soundfont {soundfont} does not exist. Install it with:\n"
                         f"    {APT_HINT}\nor pass another GM soundfont with --soundfont.")
    return exe


def track_seed(base_seed: int, name: str) -> int:
    """A stable per-track seed (Python's ``hash`` is salted per process, crc32 is not)."""
    return int(np.random.SeedSequence([base_seed, zlib.crc32(name.encode())]).generate_state(1)[0])


def plan_tracks(base_seed: int, quick: bool) -> list[TrackSpec]:
    """Every evaluation track, in a fixed order; ``quick`` keeps the first of each category."""
    specs = []
    for category, styles in CATEGORY_STYLES.items():
        for index, style in enumerate(styles[:1] if quick else styles):
            name = f"{category}_{index + 1:02d}_{style}"
            specs.append(TrackSpec(name, category, style, index, track_seed(base_seed, name)))
    return specs


def is_current(out: Path, spec: TrackSpec) -> bool:
    label_path, wav_path = out / f"{spec.name}.json", out / f"{spec.name}.wav"
    if not (label_path.is_file() and wav_path.is_file()):
        return False
    try:
        label = json.loads(label_path.read_text())
    except json.JSONDecodeError:
        return False
    return label.get("generator_version") == GENERATOR_VERSION and label.get("seed") == spec.seed


def compose_track(spec: TrackSpec) -> Score:
    rng = np.random.default_rng(spec.seed)
    if spec.category == "speed":
        return compose_groove(STYLES[spec.style], rng, SPEED_TRACK_SECONDS)
    return compose(spec.category, spec.style, spec.index, rng, float(rng.uniform(*TRACK_SECONDS)))


def build_track(spec: TrackSpec, out: Path, fluidsynth: str, soundfont: Path) -> dict:
    """Compose, write MIDI, render, mix, label; writes ``<name>.{mid,wav,json}`` and returns the label."""
    score = compose_track(spec)
    stems = sorted({p.stem for p in score.parts.values()}, key=lambda s: s != "main")  # "main" first
    with tempfile.TemporaryDirectory(prefix="beat_eval_") as tmp:
        audio: dict[str, np.ndarray] = {}
        for stem in stems:
            mid_path = out / (f"{spec.name}.mid" if stem == "main" else f"{spec.name}.{stem}.mid")
            to_pretty_midi(score, stem).write(str(mid_path))
            audio[stem] = render(fluidsynth, soundfont, mid_path, Path(tmp) / f"{stem}.wav")
    label = labels_from_midi(out / f"{spec.name}.mid", score)
    last = label["beats"][-1] if label["beats"] else seconds_at(score.tempo_map, score.end_beat)
    end = int(round((last + TAIL_SECONDS) * SAMPLE_RATE))
    if spec.category == "speed":
        end = int(round(SPEED_TRACK_SECONDS * SAMPLE_RATE))
    if "intro" in audio:
        intro_end = seconds_at(score.tempo_map, score.info["intro_bars"] * score.beats_per_bar)
        audio["intro"] *= intro_gain(audio["intro"], audio["main"], intro_end)
    mix = sum_stems(list(audio.values()), end)
    mix = normalize(fade_out(mix))
    if "intro" in audio:
        intro_end = int(round(intro_end * SAMPLE_RATE))
        label["intro_end"] = round(intro_end / SAMPLE_RATE, 6)
        label["intro_level_db"] = round(rms_db(mix[:intro_end]) - rms_db(mix[intro_end:]), 2)
    sf.write(out / f"{spec.name}.wav", mix, SAMPLE_RATE, subtype="PCM_16")
    label.update(name=spec.name, style=spec.style, seed=spec.seed, generator_version=GENERATOR_VERSION,
                 duration=round(len(mix) / SAMPLE_RATE, 6), sample_rate=SAMPLE_RATE, soundfont=soundfont.name,
                 parts=[{"name": p.name, "program": p.program, "is_drum": p.is_drum, "stem": p.stem}
                        for p in score.parts.values()],
                 info=score.info)
    label = {"category": spec.category, **label}
    (out / f"{spec.name}.json").write_text(json.dumps(label, indent=1))
    return label


def to_pretty_midi(score: Score, stem: str) -> pretty_midi.PrettyMIDI:
    """The parts of one stem as MIDI, with the score's tempo map and time signature."""
    pm = pretty_midi.PrettyMIDI(resolution=MIDI_RESOLUTION)
    end_tick = int(np.ceil(score.end_beat * MIDI_RESOLUTION)) + MIDI_RESOLUTION
    set_tempo_map(pm, score.tempo_map, end_tick)
    pm.time_signature_changes.append(pretty_midi.TimeSignature(score.beats_per_bar or 4, 4, 0.0))

    def seconds(beat: float) -> float:
        return pm.tick_to_time(int(round(beat * MIDI_RESOLUTION)))

    for part in score.parts.values():
        if part.stem != stem:
            continue
        inst = pretty_midi.Instrument(program=part.program, is_drum=part.is_drum, name=part.name)
        inst.notes = [pretty_midi.Note(n.velocity, n.pitch, seconds(n.start), seconds(n.start + n.length))
                      for n in score.notes if n.part == part.name]
        inst.control_changes = [pretty_midi.ControlChange(c.number, c.value, seconds(c.beat))
                                for c in score.controls if c.part == part.name]
        pm.instruments.append(inst)
    return pm


def set_tempo_map(pm: pretty_midi.PrettyMIDI, tempo_map: list[tuple[float, float]], end_tick: int) -> None:
    """Install a (beat, bpm) tempo map. pretty_midi has no public setter for tempo changes: it keeps
    them as ``_tick_scales`` = [(tick, seconds per tick)] and ``write`` emits one set_tempo for each
    entry (``PrettyMIDI.adjust_times`` edits the same list)."""
    pm._tick_scales = [(int(round(beat * pm.resolution)), 60.0 / (bpm * pm.resolution)) for beat, bpm in tempo_map]
    pm._update_tick_to_time(end_tick)


def render(fluidsynth: str, soundfont: Path, mid_path: Path, wav_path: Path) -> np.ndarray:
    """Render MIDI to float audio [N, 2] at ``SAMPLE_RATE`` with the FluidSynth CLI (reverb/chorus on)."""
    cmd = [fluidsynth, "-ni", "-q", "-g", str(FLUIDSYNTH_GAIN), "-r", str(SAMPLE_RATE), "-O", "float",
           "-T", "wav", "-F", str(wav_path), str(soundfont), str(mid_path)]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not wav_path.is_file():
        raise EvalSetError(f"FluidSynth failed on {mid_path} (exit {result.returncode}): {result.stderr.strip()}")
    samples, rate = sf.read(wav_path, dtype="float32", always_2d=True)
    if rate != SAMPLE_RATE or np.abs(samples).max(initial=0.0) < MIN_RENDER_PEAK:
        raise EvalSetError(f"FluidSynth rendered {mid_path} silent or at {rate} Hz instead of {SAMPLE_RATE} Hz; "
                           f"stderr: {result.stderr.strip() or '(empty)'}")
    return samples


def labels_from_midi(mid_path: Path, score: Score) -> dict:
    """Beats, downbeats and tempo map read back from the MIDI file that was rendered."""
    pm = pretty_midi.PrettyMIDI(str(mid_path))
    if score.num_beats == 0:
        return {"beats": [], "downbeats": [], "beats_per_bar": None, "tempo_map": []}
    beats = np.array([pm.tick_to_time(k * pm.resolution) for k in range(score.num_beats + 1)])
    expected = np.array([seconds_at(score.tempo_map, k) for k in range(score.num_beats + 1)])
    error = float(np.abs(beats - expected).max())
    if error > MAX_LABEL_ERROR_S:
        raise EvalSetError(f"{mid_path}: MIDI beat times differ from the score by {error * 1e3:.2f} ms "
                           f"(allowed {MAX_LABEL_ERROR_S * 1e3:.1f} ms).")
    times, tempi = pm.get_tempo_changes()
    return {
        "beats": [round(float(t), 6) for t in beats],
        "downbeats": [round(float(t), 6) for t in beats[::score.beats_per_bar]],
        "beats_per_bar": score.beats_per_bar,
        "tempo_map": [[round(float(t), 6), round(float(b), 4)] for t, b in zip(times, tempi, strict=True)],
    }


def rms_db(x: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(np.square(x, dtype=np.float64))) + 1e-12))


def intro_gain(intro: np.ndarray, main: np.ndarray, intro_end_s: float) -> float:
    """Gain that puts the intro stem's RMS ``INTRO_LEVEL_DB`` below the groove's RMS."""
    cut = int(round(intro_end_s * SAMPLE_RATE))
    return float(10 ** ((rms_db(main[cut:]) + INTRO_LEVEL_DB - rms_db(intro[:cut])) / 20))


def sum_stems(stems: list[np.ndarray], length: int) -> np.ndarray:
    """Sum stems of different lengths, padded or cut to ``length`` samples."""
    mix = np.zeros((length, 2), np.float32)
    for stem in stems:
        n = min(length, len(stem))
        mix[:n] += stem[:n]
    return mix


def fade_out(x: np.ndarray) -> np.ndarray:
    n = min(len(x), int(FADE_SECONDS * SAMPLE_RATE))
    x[len(x) - n:] *= np.linspace(1.0, 0.0, n, dtype=np.float32)[:, None]
    return x


def normalize(x: np.ndarray) -> np.ndarray:
    """Scale to ``TARGET_RMS_DBFS``, then down if the peak would pass ``PEAK_CEILING_DBFS``."""
    gain = 10 ** ((TARGET_RMS_DBFS - rms_db(x)) / 20)
    peak = float(np.abs(x).max()) * gain
    gain *= min(1.0, 10 ** (PEAK_CEILING_DBFS / 20) / max(peak, 1e-12))
    return (x * gain).astype(np.float32)


def write_index(out: Path, seed: int) -> dict:
    """``index.json`` listing every current label in ``out`` (so --quick and full runs add up)."""
    tracks, speed = [], None
    for path in sorted(out.glob("*.json")):
        if path.name == "index.json":
            continue
        label = json.loads(path.read_text())
        if label.get("generator_version") != GENERATOR_VERSION or not (out / f"{path.stem}.wav").is_file():
            continue
        entry = {"name": path.stem, "category": label["category"], "style": label["style"],
                 "wav": f"{path.stem}.wav", "json": path.name, "duration": label["duration"]}
        if label["category"] == "speed":
            speed = entry
        else:
            tracks.append(entry)
    order = list(CATEGORY_STYLES)
    tracks.sort(key=lambda e: (order.index(e["category"]) if e["category"] in order else len(order), e["name"]))
    index = {"generator_version": GENERATOR_VERSION, "seed": seed, "sample_rate": SAMPLE_RATE,
             "categories": order, "tracks": tracks, "speed_track": speed}
    (out / "index.json").write_text(json.dumps(index, indent=1))
    return index


if __name__ == "__main__":
    sys.exit(main())
