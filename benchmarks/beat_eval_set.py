"""Build the beat-tracking evaluation set: seeded MIDI pieces rendered with real GM instruments.

Each track is composed in beats (``midi_scores.py``), written as MIDI with ``pretty_midi``,
rendered with the FluidSynth CLI and the FluidR3 General MIDI soundfont, and labelled from the
tempo map of the MIDI file it was rendered from, so the ground truth is exact (FluidSynth itself
adds about 3 ms of sample attack).

Soundfont (``--soundfont``): the whole set is rendered with FluidR3_GM, a soundfont the learned
beat tracker never trains on, so the set also measures generalisation to unheard instrument
samples (a held-out soundfont). Rendering with another soundfont makes a different set: compare
figures only between sets built with the same one (each label records its ``soundfont``).

Categories (see ``CATEGORY_STYLES``): steady_44, waltz_34, swing, tempo_change, quiet_intro
(an intro on its own stem mixed ``INTRO_LEVEL_DB`` below the groove) and no_beat (ambient pads,
no labelled beats); then, added later for music the hand-tuned tracker had never seen,
drumless (chorales, string quartet, piano, slow movement, a lone melody), compound (6/8 and 12/8),
duple_24 (polka, march), octave_traps (tempi and patterns that invite half/double/off-beat
answers), tempo_shapes (ritardando, accelerando, a sudden change, a long quiet intro) and
no_beat_extra (noise, drone, near-silence, speech: synthesised here, not MIDI; the speech track
needs ``espeak-ng`` and is skipped with a note without it). A 180 s house groove
(``speed_3min``) is added for the speed benchmark.

Label conventions: ``beats`` are the beats a dancer steps to, which in compound meters (6/8,
12/8) are DOTTED quarters (two per 6/8 bar, four per 12/8 bar), not the eighths or quarter notes
of the MIDI file; ``meter`` is the written time signature and ``beats_per_bar`` counts those
beats, and ``tempo_map`` bpm counts them too (a 6/8 jig at 120 has a MIDI tempo of 180 quarter
notes per minute). Beatless tracks have ``beats`` = [] and ``beats_per_bar`` = null.

Output folder (default ``bench_data/beats``): ``<name>.wav`` (44.1 kHz stereo, 16-bit),
``<name>.mid`` (MIDI tracks only), ``<name>.json`` = {"category", "beats", "downbeats",
"beats_per_bar", "meter", "tempo_map", ...} and ``index.json`` (all categories). Tracks already
rendered with the same seed and version are skipped: the original six categories and the speed
track carry ``GENERATOR_VERSION``, later categories also their own ``CATEGORY_VERSIONS`` entry,
so changing a new category never rebuilds (or changes) the old tracks.

    apt-get install -y fluidsynth fluid-soundfont-gm espeak-ng
    .venv/bin/python -m benchmarks.beat_eval_set [--out bench_data/beats] [--quick] [--categories drumless,compound]
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

from benchmarks.midi_scores import CATEGORY_STYLES, STYLES, Score, compose, compose_groove, seconds_at

GENERATOR_VERSION = 1  # bump when the music of the original categories changes: older renders are then rebuilt
# Categories added after GENERATOR_VERSION 1 carry their own version (bump one to rebuild only it).
CATEGORY_VERSIONS = {"drumless": 1, "compound": 1, "duple_24": 1, "octave_traps": 1, "tempo_shapes": 1,
                     "no_beat_extra": 1}
# Beatless sounds synthesised here (not MIDI): one track each, in this order.
BEATLESS_SOUNDS = ("white_noise", "pink_noise", "drone", "faint_hum", "speech")
CATEGORIES: dict[str, tuple[str, ...]] = {**CATEGORY_STYLES, "no_beat_extra": BEATLESS_SOUNDS}
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
# no_beat_extra synthesis
NOISE_FADE_IN_SECONDS = 1.0
DRONE_HZ = (55.0, 110.0)  # fundamental range of the drone
DRONE_HARMONICS = 12
HUM_RMS_DBFS = -60.0  # the near-silence track keeps this level instead of TARGET_RMS_DBFS
HUM_NOISE_DB = -12.0  # its hiss relative to the hum
MAINS_HZ = (50.0, 60.0)
ESPEAK = "espeak-ng"
SPEECH_VOICES = ("en", "en-us", "en-gb-x-rp", "de", "fr")
SPEECH_WORDS_PER_MINUTE = (140, 185)
SPEECH_PAUSE_SECONDS = (0.25, 1.2)  # random pauses between sentences, so there is no sentence pulse
SPEECH_SENTENCES = (
    "The weather service expects light rain along the coast tomorrow afternoon.",
    "Please remember to bring the signed forms to the front desk before Friday.",
    "A small boat drifted slowly past the harbour lights while the town was asleep.",
    "Our next train to the airport leaves from platform seven in about twelve minutes.",
    "She opened the old wooden box and found a bundle of letters tied with string.",
    "The committee will publish its final report after the summer recess.",
    "Mix the flour and the butter, then add the milk a little at a time.",
    "Several volunteers counted the birds that nested on the island this spring.",
    "If the printer jams again, switch it off and open the rear panel.",
    "The museum is closed on Mondays, except during the school holidays.",
    "He had never seen so many stars before moving to the mountains.",
    "Turn left at the bakery and follow the river until you reach the bridge.",
)


class SkipTrack(Exception):
    """This track cannot be built on this machine (an optional tool is missing); the reason says why."""


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
    parser.add_argument("--categories", default=None,
                        help=f"comma-separated subset of {', '.join(CATEGORIES)} (default: all); the speed "
                             f"track is then built only if 'speed' is listed")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    categories = parse_categories(args.categories)
    fluidsynth = check_tools(args.fluidsynth, args.soundfont)
    args.out.mkdir(parents=True, exist_ok=True)
    specs = plan_tracks(args.seed, args.quick, categories)
    if not args.no_speed_track and (categories is None or "speed" in categories):
        specs.append(TrackSpec(SPEED_TRACK_NAME, "speed", "house", 0, track_seed(args.seed, SPEED_TRACK_NAME)))
    started = time.perf_counter()
    built = 0
    for spec in specs:
        if is_current(args.out, spec):
            print(f"skip   {spec.name} (already rendered)")
            continue
        t0 = time.perf_counter()
        try:
            label = build_track(spec, args.out, fluidsynth, args.soundfont)
        except SkipTrack as exc:
            print(f"note   {spec.name} not built: {exc}")
            continue
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


def parse_categories(text: str | None) -> set[str] | None:
    """``--categories`` as a set (None = all); unknown names are a clear error."""
    if text is None:
        return None
    wanted = {c.strip() for c in text.split(",") if c.strip()}
    unknown = sorted(wanted - set(CATEGORIES) - {"speed"})
    if unknown or not wanted:
        raise SystemExit(f"error: --categories names unknown categories {unknown}; known: "
                         f"{', '.join(CATEGORIES)}, speed")
    return wanted


def plan_tracks(base_seed: int, quick: bool, categories: set[str] | None = None) -> list[TrackSpec]:
    """Every evaluation track (of ``categories``, default all), in a fixed order; ``quick`` keeps
    the first of each category. A track's seed depends only on its name, so subsets and the full
    set render identical tracks."""
    specs = []
    for category, styles in CATEGORIES.items():
        if categories is not None and category not in categories:
            continue
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
    return is_current_label(label) and label.get("seed") == spec.seed


def is_current_label(label: dict) -> bool:
    """Made by this generator version (and, for later categories, this category version)."""
    return (label.get("generator_version") == GENERATOR_VERSION
            and label.get("category_version") == CATEGORY_VERSIONS.get(label.get("category")))


def compose_track(spec: TrackSpec) -> Score:
    rng = np.random.default_rng(spec.seed)
    if spec.category == "speed":
        return compose_groove(STYLES[spec.style], rng, SPEED_TRACK_SECONDS)
    return compose(spec.category, spec.style, spec.index, rng, float(rng.uniform(*TRACK_SECONDS)))


def build_track(spec: TrackSpec, out: Path, fluidsynth: str, soundfont: Path) -> dict:
    """Compose, write MIDI, render, mix, label; writes ``<name>.{mid,wav,json}`` and returns the label.
    Beatless ``BEATLESS_SOUNDS`` are synthesised instead (``<name>.{wav,json}``, no MIDI)."""
    if spec.style in BEATLESS_SOUNDS:
        return build_beatless_track(spec, out)
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
    return write_label(out, spec, label)


def write_label(out: Path, spec: TrackSpec, label: dict) -> dict:
    """``<name>.json`` with the category first and, for later categories, their version marker."""
    label = {"category": spec.category, **label}
    if spec.category in CATEGORY_VERSIONS:
        label["category_version"] = CATEGORY_VERSIONS[spec.category]
    (out / f"{spec.name}.json").write_text(json.dumps(label, indent=1))
    return label


# ---------------------------------------------------------------- beatless sounds (no_beat_extra)


def build_beatless_track(spec: TrackSpec, out: Path) -> dict:
    """Synthesise one of ``BEATLESS_SOUNDS`` (no MIDI, no soundfont); labels have no beats."""
    rng = np.random.default_rng(spec.seed)
    seconds = float(rng.uniform(*TRACK_SECONDS)) + TAIL_SECONDS
    audio, info = synthesize_beatless(spec.style, rng, seconds)
    if spec.style == "faint_hum":  # near-silence: keep it near-silent instead of normalising it
        audio = (audio * 10 ** ((HUM_RMS_DBFS - rms_db(audio)) / 20)).astype(np.float32)
    else:
        audio = normalize(audio)
    sf.write(out / f"{spec.name}.wav", audio, SAMPLE_RATE, subtype="PCM_16")
    label = {"beats": [], "downbeats": [], "beats_per_bar": None, "meter": "", "tempo_map": [],
             "name": spec.name, "style": spec.style, "seed": spec.seed, "generator_version": GENERATOR_VERSION,
             "duration": round(len(audio) / SAMPLE_RATE, 6), "sample_rate": SAMPLE_RATE, "soundfont": None,
             "parts": [], "info": {**info, "rms_dbfs": round(rms_db(audio), 2)}}
    return write_label(out, spec, label)


def synthesize_beatless(sound: str, rng: np.random.Generator, seconds: float) -> tuple[np.ndarray, dict]:
    """Stereo float audio [N, 2] of ``sound`` (before level setting) and facts about it for the label.
    Every level change is slow and aperiodic, so nothing in these sounds implies a pulse."""
    n = round(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    if sound == "white_noise":
        audio, info = rng.normal(0.0, 0.3, size=(n, 2)), {}
    elif sound == "pink_noise":
        audio, info = np.stack([pink_noise(rng, n), pink_noise(rng, n)], axis=1), {}
    elif sound == "drone":
        audio, info = drone(rng, t)
    elif sound == "faint_hum":
        mains = float(rng.choice(MAINS_HZ))
        hum = sum(a * np.sin(2 * np.pi * k * mains * t + rng.uniform(0, 2 * np.pi))
                  for k, a in ((1, 1.0), (2, 0.5), (3, 0.3), (5, 0.1)))
        hiss = pink_noise(rng, n) * np.sqrt(np.mean(hum ** 2)) * 10 ** (HUM_NOISE_DB / 20)
        audio, info = np.stack([hum + hiss, hum + np.roll(hiss, SAMPLE_RATE // 7)], axis=1), {"mains_hz": mains}
    elif sound == "speech":
        audio, info = speech(rng, n)
    else:
        raise ValueError(f"unknown beatless sound {sound!r}; known: {BEATLESS_SOUNDS}")
    audio = audio.astype(np.float32)
    fade = min(n, int(NOISE_FADE_IN_SECONDS * SAMPLE_RATE))
    audio[:fade] *= np.linspace(0.0, 1.0, fade, dtype=np.float32)[:, None]
    return fade_out(audio), info


def pink_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """1/f noise by shaping white noise in the frequency domain (unit-free, zero mean)."""
    spectrum = np.fft.rfft(rng.normal(size=n))
    freqs = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
    spectrum[1:] /= np.sqrt(freqs[1:])
    spectrum[0] = 0.0
    x = np.fft.irfft(spectrum, n)
    return x / (np.std(x) + 1e-12) * 0.3


def slow_wobble(rng: np.random.Generator, t: np.ndarray, depth: float) -> np.ndarray:
    """1 + a sum of three slow sines with incommensurate periods (7-23 s): movement without a pulse."""
    periods, phases = rng.uniform(7.0, 23.0, size=3), rng.uniform(0, 2 * np.pi, size=3)
    return 1.0 + depth * np.mean([np.sin(2 * np.pi * t / p + ph) for p, ph in zip(periods, phases, strict=True)],
                                 axis=0)


def drone(rng: np.random.Generator, t: np.ndarray) -> tuple[np.ndarray, dict]:
    """A sustained harmonic drone on a root and its fifth (tanpura/organ-like) with slow, aperiodic
    changes of brightness and level."""
    root = float(rng.uniform(*DRONE_HZ))
    channels = []
    for side in range(2):
        x = np.zeros_like(t)
        for f0, gain in ((root, 1.0), (root * 1.5, 0.6), (root * 2.0, 0.4)):
            detune = 1.0 + 0.002 * side
            for k in range(1, DRONE_HARMONICS + 1):
                brightness = slow_wobble(rng, t, 0.5) / k ** 1.3
                x += gain * brightness * np.sin(2 * np.pi * f0 * detune * k * t + rng.uniform(0, 2 * np.pi))
        channels.append(x * slow_wobble(rng, t, 0.2))
    return np.stack(channels, axis=1), {"root_hz": round(root, 2)}


def speech(rng: np.random.Generator, n: int) -> tuple[np.ndarray, dict]:
    """Sentences spoken by ``espeak-ng`` with random voices, rates and pauses (raises ``SkipTrack``
    when espeak-ng is not installed)."""
    import soxr

    exe = shutil.which(ESPEAK)
    if exe is None:
        raise SkipTrack(f"{ESPEAK} not found (apt-get install -y espeak-ng)")
    pieces, used, total = [], [], 0
    order = rng.permutation(len(SPEECH_SENTENCES))
    with tempfile.TemporaryDirectory(prefix="beat_eval_speech_") as tmp:
        for k in range(len(order) * 3):
            if total >= n:
                break
            text = SPEECH_SENTENCES[order[k % len(order)]]
            voice = str(rng.choice(SPEECH_VOICES))
            wpm = int(rng.integers(*SPEECH_WORDS_PER_MINUTE))
            wav = Path(tmp) / f"{k}.wav"
            result = subprocess.run([exe, "-v", voice, "-s", str(wpm), "-w", str(wav), text],
                                    capture_output=True, text=True, check=False)
            if result.returncode != 0 or not wav.is_file():
                raise EvalSetError(f"{ESPEAK} failed (exit {result.returncode}): {result.stderr.strip()}")
            samples, rate = sf.read(wav, dtype="float32")
            samples = soxr.resample(samples, rate, SAMPLE_RATE) if rate != SAMPLE_RATE else samples
            pause = np.zeros(int(rng.uniform(*SPEECH_PAUSE_SECONDS) * SAMPLE_RATE), np.float32)
            pieces += [samples, pause]
            used.append({"voice": voice, "wpm": wpm, "text": text})
            total += len(samples) + len(pause)
    mono = np.concatenate(pieces)[:n]
    mono = np.pad(mono, (0, n - len(mono)))
    return np.stack([mono, mono], axis=1), {"sentences": used}


def to_pretty_midi(score: Score, stem: str) -> pretty_midi.PrettyMIDI:
    """The parts of one stem as MIDI, with the score's tempo map and time signature."""
    pm = pretty_midi.PrettyMIDI(resolution=MIDI_RESOLUTION)
    ticks = ticks_per_beat(score)
    end_tick = int(np.ceil(score.end_beat * ticks)) + ticks
    set_tempo_map(pm, score.tempo_map, end_tick, ticks)
    numerator, denominator = (int(x) for x in score.meter.split("/")) if score.meter else (4, 4)
    pm.time_signature_changes.append(pretty_midi.TimeSignature(numerator, denominator, 0.0))

    def seconds(beat: float) -> float:
        return pm.tick_to_time(int(round(beat * ticks)))

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


def ticks_per_beat(score: Score) -> int:
    """MIDI ticks of one labelled beat: a quarter note, or a dotted quarter in compound meters."""
    return round(MIDI_RESOLUTION * score.beat_unit)


def set_tempo_map(pm: pretty_midi.PrettyMIDI, tempo_map: list[tuple[float, float]], end_tick: int,
                  ticks: int = MIDI_RESOLUTION) -> None:
    """Install a (beat, bpm) tempo map, with ``ticks`` MIDI ticks per beat. pretty_midi has no public
    setter for tempo changes: it keeps them as ``_tick_scales`` = [(tick, seconds per tick)] and
    ``write`` emits one set_tempo (in quarter notes) for each entry (``PrettyMIDI.adjust_times``
    edits the same list)."""
    pm._tick_scales = [(int(round(beat * ticks)), 60.0 / (bpm * ticks)) for beat, bpm in tempo_map]
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
        return {"beats": [], "downbeats": [], "beats_per_bar": None, "meter": "", "tempo_map": []}
    if pm.resolution != MIDI_RESOLUTION:
        raise EvalSetError(f"{mid_path}: resolution {pm.resolution}, expected {MIDI_RESOLUTION}")
    ticks = ticks_per_beat(score)
    beats = np.array([pm.tick_to_time(k * ticks) for k in range(score.num_beats + 1)])
    expected = np.array([seconds_at(score.tempo_map, k) for k in range(score.num_beats + 1)])
    error = float(np.abs(beats - expected).max())
    if error > MAX_LABEL_ERROR_S:
        raise EvalSetError(f"{mid_path}: MIDI beat times differ from the score by {error * 1e3:.2f} ms "
                           f"(allowed {MAX_LABEL_ERROR_S * 1e3:.1f} ms).")
    times, tempi = pm.get_tempo_changes()  # MIDI tempo is in quarter notes per minute
    return {
        "beats": [round(float(t), 6) for t in beats],
        "downbeats": [round(float(t), 6) for t in beats[::score.beats_per_bar]],
        "beats_per_bar": score.beats_per_bar,
        "meter": score.meter,
        "tempo_map": [[round(float(t), 6), round(float(b) / score.beat_unit, 4)]
                      for t, b in zip(times, tempi, strict=True)],
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
        if not is_current_label(label) or not (out / f"{path.stem}.wav").is_file():
            continue
        entry = {"name": path.stem, "category": label["category"], "style": label["style"],
                 "wav": f"{path.stem}.wav", "json": path.name, "duration": label["duration"]}
        if label["category"] == "speed":
            speed = entry
        else:
            tracks.append(entry)
    order = list(CATEGORIES)
    tracks.sort(key=lambda e: (order.index(e["category"]) if e["category"] in order else len(order), e["name"]))
    index = {"generator_version": GENERATOR_VERSION, "category_versions": CATEGORY_VERSIONS, "seed": seed,
             "sample_rate": SAMPLE_RATE, "categories": order, "tracks": tracks, "speed_track": speed}
    (out / "index.json").write_text(json.dumps(index, indent=1))
    return index


if __name__ == "__main__":
    sys.exit(main())
