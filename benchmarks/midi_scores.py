"""Seeded General-MIDI scores for the beat-tracking evaluation set.

A ``Score`` is written in beats (quarter notes) with a piecewise-constant tempo map, so its beats
and downbeats are known exactly. Styles are short drum/bass/chord patterns on a 16th-note grid
(one character per 16th: ``X`` accent, ``x`` normal, ``o`` soft, ``g`` ghost, ``-`` hold the
previous note, ``.`` rest; in bass lines ``x`` is the chord root, ``o`` its octave, ``3``/``5``/``7``
its third, fifth and seventh). Only composition lives here: ``beat_eval_set.py`` turns a score
into MIDI, audio and labels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

STEPS_PER_BEAT = 4  # patterns are written in 16th notes
AMBIENT_BPM = 60.0  # beatless scores are laid out at 60 BPM, so one "beat" is one second

# General MIDI percussion keys (channel 10).
KICK, SIDE_STICK, SNARE, CLAP = 36, 37, 38, 39
CLOSED_HAT, PEDAL_HAT, OPEN_HAT = 42, 44, 46
LOW_TOM, MID_TOM, HIGH_TOM = 45, 47, 50
CRASH, RIDE, TAMBOURINE = 49, 51, 54

# General MIDI kits (bank 128 presets of FluidR3_GM).
STANDARD_KIT, ROOM_KIT, POWER_KIT, ELECTRONIC_KIT, TR808_KIT, JAZZ_KIT, BRUSH_KIT = 0, 8, 16, 24, 25, 32, 40

HIT_VELOCITY = {"X": 118, "x": 98, "o": 74, "g": 44}
MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10)
MAJOR_PENTATONIC = (0, 2, 4, 7, 9)
MINOR_PENTATONIC = (0, 3, 5, 7, 10)
MAJOR_PROGRESSIONS = ((0, 4, 5, 3), (0, 5, 3, 4), (5, 3, 0, 4), (0, 3, 4, 3), (1, 4, 0, 5))
MINOR_PROGRESSIONS = ((0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 6), (0, 5, 3, 4))
BLUES_ROOTS = (0, 0, 0, 0, 5, 5, 0, 0, 7, 5, 0, 7)  # 12-bar blues, semitones above the tonic

BASS_LOW, CHORD_LOW, LEAD_LOW = 28, 55, 67  # lowest MIDI pitch of each register
VELOCITY_JITTER = 6
TIMING_JITTER_BEATS = 0.006  # std of the humanising shift of pitched notes (drums stay exact)
PHRASE_BARS = 8  # crash on the first bar and a tom fill on the last bar of each phrase
FINAL_HOLD_BEATS = 3.0
STEP_RAMP_HOLD_BARS = 4  # the closing hit on the last labelled beat rings this long

PADS = (48, 49, 50, 52, 88, 89, 90, 91, 92, 94, 95)
AMBIENT_BELLS = (8, 10, 11, 46)
INTRO_KEYS = (0, 4, 24, 46, 8)  # piano, electric piano, nylon guitar, harp, celesta
INTRO_PADS = (88, 89, 94, 48)


@dataclass(frozen=True)
class Part:
    """One MIDI instrument: a GM program, or a drum kit (bank 128 preset) when ``is_drum``."""

    name: str
    program: int
    is_drum: bool = False
    stem: str = "main"  # parts of one stem are rendered together (quiet intros mix two stems)


@dataclass(frozen=True)
class Note:
    part: str
    pitch: int
    start: float  # beats from the start
    length: float  # beats
    velocity: int


@dataclass(frozen=True)
class Control:
    part: str
    number: int  # MIDI controller, e.g. 11 = expression
    beat: float
    value: int


@dataclass
class Score:
    """A piece in beats. Labelled beats are the integer beats ``0..num_beats`` (inclusive, the last
    one is the closing hit); ``num_beats = 0`` with ``beats_per_bar = 0`` means "no beat"."""

    style: str
    beats_per_bar: int
    num_beats: int
    tempo_map: list[tuple[float, float]]  # (beat, bpm): the tempo from that beat on
    parts: dict[str, Part] = field(default_factory=dict)
    notes: list[Note] = field(default_factory=list)
    controls: list[Control] = field(default_factory=list)
    info: dict = field(default_factory=dict)

    @property
    def end_beat(self) -> float:
        return max(n.start + n.length for n in self.notes)


@dataclass(frozen=True)
class GrooveStyle:
    """Drum, bass and chord patterns of one bar (``beats_per_bar * 4`` characters each)."""

    name: str
    beats_per_bar: int
    bpm: tuple[float, float]
    kits: tuple[int, ...]  # empty: no drums
    drums: dict[int, str]
    bass: str
    bass_programs: tuple[int, ...]
    chords: str
    chord_programs: tuple[int, ...]
    lead_programs: tuple[int, ...] = ()
    lead_chance: float = 0.5
    swing: tuple[float, float, float] | None = None  # (grid in beats, min ratio, max ratio)
    walking_bass: bool = False
    blues: bool = False
    jazz_harmony: bool = False  # ii-V-I-VI with sevenths
    breakdown_chance: float = 0.0  # chance of two bars without kick in the middle


STYLES: dict[str, GrooveStyle] = {s.name: s for s in (
    # 4/4 dance grooves
    GrooveStyle("house", 4, (120, 128), (ELECTRONIC_KIT, TR808_KIT, STANDARD_KIT),
                {KICK: "X...x...x...x...", CLAP: "....x.......x...", CLOSED_HAT: "o...o...o...o...",
                 OPEN_HAT: "..o...o...o...o."},
                "..x-..x-..x-..x-", (38, 39, 33), "...x-...x-......", (4, 16, 90, 5), (80, 81, 11),
                breakdown_chance=0.5),
    GrooveStyle("disco", 4, (112, 124), (STANDARD_KIT, ROOM_KIT),
                {KICK: "X...x...x...x...", SNARE: "....x.......x...", CLOSED_HAT: "o...o...o...o...",
                 OPEN_HAT: "..o...o...o...o."},
                "x-o-x-o-x-o-x-o-", (33, 34, 38), "x---------------", (48, 49, 50), (56, 73, 81)),
    GrooveStyle("hiphop", 4, (86, 98), (TR808_KIT, ROOM_KIT, STANDARD_KIT),
                {KICK: "X......x..x.....", SNARE: "....X.......X...", CLOSED_HAT: "o.o.o.o.o.o.o.o."},
                "x-----x---x-----", (38, 39, 33), "x-------x-------", (4, 5, 0), (11, 73, 80)),
    GrooveStyle("pop", 4, (100, 120), (STANDARD_KIT, POWER_KIT, ROOM_KIT),
                {KICK: "X.......x.x.....", SNARE: "....X.......X...", CLOSED_HAT: "o.g.o.g.o.g.o.g."},
                "x-x-x-x-x-x-x-x-", (33, 34, 38), "x---x---x---x---", (0, 1, 25, 24), (73, 81, 65),
                breakdown_chance=0.3),
    GrooveStyle("funk", 4, (98, 112), (STANDARD_KIT, ROOM_KIT),
                {KICK: "X..x......x...x.", SNARE: "....X..g.g..X..g", CLOSED_HAT: "ogogogogogogogog"},
                "x--o..x.5.x-.o.x", (33, 36, 37), "..x...x..x....x.", (7, 4, 27), (65, 56, 61)),
    GrooveStyle("dnb", 4, (165, 175), (ELECTRONIC_KIT, STANDARD_KIT, POWER_KIT),
                {KICK: "X.........x.....", SNARE: "....X.......X...", CLOSED_HAT: "o.o.o.o.o.o.o.o.",
                 RIDE: "..o...o...o...o."},
                "x---------x-----", (38, 39), "x---------------", (89, 88, 94), (81, 80)),
    # 3/4
    GrooveStyle("jazz_waltz", 3, (120, 170), (JAZZ_KIT, BRUSH_KIT),
                {KICK: "g...........", RIDE: "x...x.o.x.o.", PEDAL_HAT: "....x...x..."},
                "x-------5---", (32, 33), "....x-..x-..", (0, 4, 11, 26), (65, 66, 56)),
    GrooveStyle("viennese", 3, (150, 185), (),
                {}, "x---........", (32, 43, 58), "....x-..x-..", (45, 0, 21), (40, 73, 68), lead_chance=1.0),
    GrooveStyle("folk_waltz", 3, (90, 130), (STANDARD_KIT, ROOM_KIT),
                {KICK: "x...........", SNARE: "....o...o...", CLOSED_HAT: "o.g.o.g.o.g."},
                "x-------5---", (32, 33), "....x-..x-..", (21, 24, 25), (22, 73, 40), lead_chance=0.7),
    GrooveStyle("pop_waltz", 3, (84, 110), (STANDARD_KIT, POWER_KIT),
                {KICK: "X.......x...", SNARE: "....X.......", CLOSED_HAT: "o.o.o.o.o.o."},
                "x---x---x---", (33, 34), "x-----------", (0, 48, 1), (73, 81)),
    # swing: offbeat 8ths (or 16ths) are delayed towards 2/3 of the beat (or half-beat)
    GrooveStyle("jazz_swing", 4, (120, 170), (JAZZ_KIT, BRUSH_KIT),
                {KICK: "g...g...g...g...", RIDE: "x...x.o.x...x.o.", PEDAL_HAT: "....x.......x..."},
                "x---x---x---x---", (32, 33), "x.....x.........", (0, 4, 26, 11), (65, 66, 56),
                swing=(0.5, 0.62, 0.68), walking_bass=True, jazz_harmony=True),
    GrooveStyle("jazz_brush", 4, (100, 140), (BRUSH_KIT,),
                {SNARE: "o...o...o...o...", RIDE: "x...x.o.x...x.o.", PEDAL_HAT: "....x.......x..."},
                "x-------5-------", (32, 33), "..x.......x.....", (0, 26, 11), (66, 71), swing=(0.5, 0.62, 0.67),
                jazz_harmony=True),
    GrooveStyle("shuffle_blues", 4, (90, 130), (STANDARD_KIT, ROOM_KIT),
                {KICK: "X.......x.......", SNARE: "....X.......X...", CLOSED_HAT: "x.o.x.o.x.o.x.o."},
                "x-x-3-3-5-5-3-3-", (33, 34), "x-..x-..x-..x-..", (16, 17, 29, 27), (65, 22, 56),
                swing=(0.5, 0.64, 0.7), blues=True),
    GrooveStyle("swing16_hiphop", 4, (84, 98), (TR808_KIT, ROOM_KIT, STANDARD_KIT),
                {KICK: "X......x..x.....", SNARE: "....X.......X...", CLOSED_HAT: "xgogxgogxgogxgog"},
                "x-----x---x-----", (38, 33), "x-------x-------", (4, 5), (11, 73), swing=(0.25, 0.58, 0.65)),
)}

CATEGORY_STYLES: dict[str, tuple[str, ...]] = {
    "steady_44": ("house", "hiphop", "pop", "funk", "disco", "dnb"),
    "waltz_34": ("jazz_waltz", "viennese", "folk_waltz", "pop_waltz", "jazz_waltz"),
    "swing": ("jazz_swing", "shuffle_blues", "swing16_hiphop", "jazz_brush", "jazz_swing"),
    "tempo_change": ("pop", "house", "funk", "disco", "pop"),
    "quiet_intro": ("house", "pop", "hiphop", "funk", "disco"),
    "no_beat": ("ambient",) * 5,
}
# tempo_change shapes, one per track in order: (kind, start bpm, end bpm, bar of the change, ramp bars)
TEMPO_SHAPES = (
    ("step", 100.0, 128.0, 8, 0),
    ("ramp", 100.0, 128.0, 6, 8),
    ("step", 140.0, 110.0, 10, 0),
    ("ramp", 126.0, 96.0, 6, 6),
    ("step_ramp", 92.0, 118.0, 4, 6),
)
INTRO_KINDS = ("piano", "pad", "piano", "pad_piano", "piano")
INTRO_BARS = (4, 4, 2, 4, 6)


@dataclass(frozen=True)
class Chord:
    root: int  # semitones above the tonic
    intervals: tuple[int, ...]  # from the chord root, ascending

    def tone(self, symbol: str) -> int:
        """Semitones above the chord root for a bass-line symbol."""
        if symbol == "o":
            return 12
        index = {"x": 0, "3": 1, "5": 2, "7": 3}[symbol]
        return self.intervals[index] if index < len(self.intervals) else 10


def diatonic_chord(degree: int, minor: bool, size: int = 3) -> Chord:
    """Triad (or seventh chord) on a scale degree, stacked in thirds."""
    scale = MINOR_SCALE if minor else MAJOR_SCALE
    tones = [scale[(degree + 2 * k) % 7] + 12 * ((degree + 2 * k) // 7) for k in range(size)]
    return Chord(tones[0], tuple(t - tones[0] for t in tones))


class Swing:
    """Piecewise-linear time warp that delays the offbeat of each ``2 * grid`` cell to ``ratio``."""

    def __init__(self, grid: float, ratio: float):
        self.cell, self.ratio = 2.0 * grid, ratio

    def __call__(self, beat: float) -> float:
        k = math.floor(beat / self.cell + 1e-9)
        frac = (beat - k * self.cell) / self.cell  # 0..1 within the cell
        warped = frac * 2 * self.ratio if frac <= 0.5 else self.ratio + (frac - 0.5) * 2 * (1 - self.ratio)
        return k * self.cell + warped * self.cell


class ScoreBuilder:
    """Collects notes with light humanising (velocity always, timing for pitched parts only)."""

    def __init__(self, score: Score, rng: np.random.Generator, swing: Swing | None = None):
        self.score, self.rng, self.swing = score, rng, swing

    def part(self, name: str, program: int, is_drum: bool = False, stem: str = "main") -> str:
        self.score.parts[name] = Part(name, int(program), is_drum, stem)
        return name

    def note(self, part: str, pitch: int, start: float, length: float, velocity: float) -> None:
        end = start + length
        if self.swing is not None:
            start, end = self.swing(start), self.swing(end)
        if not self.score.parts[part].is_drum:
            start += float(np.clip(self.rng.normal(0, TIMING_JITTER_BEATS), -0.015, 0.015))
            start = max(start, 0.0)
        velocity = int(np.clip(velocity + self.rng.integers(-VELOCITY_JITTER, VELOCITY_JITTER + 1), 1, 127))
        self.score.notes.append(Note(part, int(pitch), start, max(end - start, 0.05), velocity))

    def hits(self, part: str, drum: int, pattern: str, bar_start: float, scale: float = 1.0) -> None:
        for step, char in enumerate(pattern):
            if char in HIT_VELOCITY:
                self.note(part, drum, bar_start + step / STEPS_PER_BEAT, 0.25, HIT_VELOCITY[char] * scale)

    def line(self, part: str, pattern: str, bar_start: float, chord: Chord, tonic: int, low: int,
             velocity: float) -> None:
        """Bass line: each symbol a chord tone in the register starting at ``low``."""
        root = register(tonic + chord.root, low)
        for step, length, symbol in parse_line(pattern):
            self.note(part, root + chord.tone(symbol), bar_start + step / STEPS_PER_BEAT,
                      length / STEPS_PER_BEAT, velocity)

    def chords(self, part: str, pattern: str, bar_start: float, chord: Chord, tonic: int, velocity: float) -> None:
        for step, length, _ in parse_line(pattern):
            for pitch in voicing(chord, tonic):
                self.note(part, pitch, bar_start + step / STEPS_PER_BEAT, length / STEPS_PER_BEAT, velocity)


def parse_line(pattern: str) -> list[tuple[int, int, str]]:
    """``"x-..5-"`` -> [(step, length in steps, symbol)]: ``-`` extends the previous note."""
    events: list[list] = []
    for step, char in enumerate(pattern):
        if char == "-" and events and events[-1][0] + events[-1][1] == step:
            events[-1][1] += 1
        elif char not in ".-":
            events.append([step, 1, char])
    return [tuple(e) for e in events]


def register(pitch_class: int, low: int) -> int:
    """The MIDI pitch of ``pitch_class`` in the octave starting at ``low``."""
    return low + (pitch_class - low) % 12


def voicing(chord: Chord, tonic: int, low: int = CHORD_LOW) -> list[int]:
    """Close-position voicing of the chord tones inside one octave from ``low``."""
    return sorted({register(tonic + chord.root + i, low) for i in chord.intervals})


def seconds_at(tempo_map: list[tuple[float, float]], beat: float) -> float:
    """Time in seconds of ``beat`` under a piecewise-constant tempo map."""
    seconds = 0.0
    for (b0, bpm), (b1, _) in zip(tempo_map, [*tempo_map[1:], (math.inf, 0.0)], strict=True):
        if beat <= b0:
            break
        seconds += (min(beat, b1) - b0) * 60.0 / bpm
    return seconds


def tempo_shape_map(shape: tuple[str, float, float, int, int], beats_per_bar: int,
                    rng: np.random.Generator) -> list[tuple[float, float]]:
    """Tempo map of a step, a per-beat linear ramp, or a step followed by a ramp back."""
    kind, bpm0, bpm1, at_bar, ramp_bars = shape
    jitter = float(rng.uniform(-2.0, 2.0))
    bpm0, bpm1 = bpm0 + jitter, bpm1 + jitter
    at = float(at_bar * beats_per_bar)
    if kind == "step":
        return [(0.0, bpm0), (at, bpm1)]
    n = ramp_bars * beats_per_bar
    if kind == "ramp":
        return [(0.0, bpm0)] + [(at + k, bpm0 + (bpm1 - bpm0) * (k + 1) / n) for k in range(n)]
    back = bpm1 - 0.7 * (bpm1 - bpm0)  # step, hold four bars, then ramp most of the way back
    after = at + STEP_RAMP_HOLD_BARS * beats_per_bar
    return [(0.0, bpm0), (at, bpm1)] + [(after + k, bpm1 + (back - bpm1) * (k + 1) / n) for k in range(n)]


def compose_groove(style: GrooveStyle, rng: np.random.Generator, target_seconds: float, *,
                   tempo_shape: tuple | None = None, intro: tuple[str, int] | None = None) -> Score:
    """A groove of ``style`` lasting at least ``target_seconds`` (bars of drums, bass, chords and
    maybe a lead), optionally after a quiet ``intro`` = (kind, bars) on its own stem."""
    bpb = style.beats_per_bar
    tempo_map = (tempo_shape_map(tempo_shape, bpb, rng) if tempo_shape is not None
                 else [(0.0, float(rng.uniform(*style.bpm)))])
    num_bars = 1
    while seconds_at(tempo_map, num_bars * bpb) < target_seconds:
        num_bars += 1
    tonic, minor = int(rng.integers(0, 12)), bool(rng.random() < 0.5) and not style.blues
    score = Score(style.name, bpb, num_bars * bpb, tempo_map)
    swing = Swing(style.swing[0], float(rng.uniform(*style.swing[1:]))) if style.swing else None
    b = ScoreBuilder(score, rng, swing)
    progression = _progression(style, minor, rng)
    kit = b.part("drums", int(rng.choice(style.kits)), is_drum=True) if style.kits else None
    bass = b.part("bass", int(rng.choice(style.bass_programs)))
    keys = b.part("chords", int(rng.choice(style.chord_programs)))
    lead = (b.part("lead", int(rng.choice(style.lead_programs)))
            if style.lead_programs and rng.random() < style.lead_chance else None)
    intro_bars = intro[1] if intro else 0
    if intro:
        _add_intro(b, intro[0], intro_bars, progression, tonic, bpb)
    groove_bars = num_bars - intro_bars
    breakdown = (style.breakdown_chance > rng.random()) and groove_bars >= 14
    pitch = LEAD_LOW + 5
    for g in range(groove_bars):
        bar = intro_bars + g
        start = float(bar * bpb)
        chord = progression[bar % len(progression)]
        if kit is not None:
            for drum, pattern in style.drums.items():
                if not (breakdown and drum == KICK and g in (8, 9)):
                    b.hits(kit, drum, pattern, start)
            if g % PHRASE_BARS == 0:
                b.note(kit, CRASH, start, 1.0, 100)
            if g % PHRASE_BARS == PHRASE_BARS - 1 and g < groove_bars - 1:
                for k, tom in enumerate((HIGH_TOM, HIGH_TOM, MID_TOM, LOW_TOM)):
                    b.note(kit, tom, start + bpb - 1 + k / STEPS_PER_BEAT, 0.25, 90 + 6 * k)
        if style.walking_bass:
            _walk(b, bass, start, bpb, chord, progression[(bar + 1) % len(progression)], tonic)
        else:
            b.line(bass, style.bass, start, chord, tonic, BASS_LOW, 96)
        b.chords(keys, style.chords, start, chord, tonic, 72)
        if lead is not None and g >= 2:
            pitch = _melody_bar(b, lead, start, bpb, tonic, minor, pitch)
    end = float(num_bars * bpb)  # the closing hit, the last labelled beat
    final = progression[0]
    if kit is not None:
        b.note(kit, CRASH, end, FINAL_HOLD_BEATS, 110)
        b.note(kit, KICK, end, 0.25, 110)
    b.note(bass, register(tonic + final.root, BASS_LOW), end, FINAL_HOLD_BEATS, 100)
    for pitch in voicing(final, tonic):
        b.note(keys, pitch, end, FINAL_HOLD_BEATS, 80)
    score.info.update(tonic=tonic, minor=minor, swing_ratio=swing.ratio if swing else None,
                      breakdown_bars=[intro_bars + 8, intro_bars + 9] if breakdown else [],
                      intro_bars=intro_bars, intro_kind=intro[0] if intro else None)
    return score


def _progression(style: GrooveStyle, minor: bool, rng: np.random.Generator) -> list[Chord]:
    if style.blues:
        return [Chord(root, (0, 4, 7, 10)) for root in BLUES_ROOTS]
    if style.jazz_harmony:
        return [diatonic_chord(d, minor, 4) for d in (1, 4, 0, 5)]
    options = MINOR_PROGRESSIONS if minor else MAJOR_PROGRESSIONS
    return [diatonic_chord(d, minor) for d in options[int(rng.integers(len(options)))]]


def _walk(b: ScoreBuilder, part: str, start: float, bpb: int, chord: Chord, following: Chord, tonic: int) -> None:
    """Walking bass: root, two chord tones, then a chromatic approach to the next root."""
    root, target = register(tonic + chord.root, BASS_LOW), register(tonic + following.root, BASS_LOW)
    tones = [root, root + chord.tone("3"), root + chord.tone("5")]
    for beat in range(bpb):
        pitch = tones[beat] if beat < bpb - 1 else target + int(b.rng.choice((-1, 1)))
        b.note(part, pitch, start + beat, 0.9, 92)


def _melody_bar(b: ScoreBuilder, part: str, start: float, bpb: int, tonic: int, minor: bool, pitch: int) -> int:
    """One bar of a pentatonic random-walk melody; returns the last pitch."""
    scale = MINOR_PENTATONIC if minor else MAJOR_PENTATONIC
    allowed = [p for p in range(LEAD_LOW, LEAD_LOW + 20) if (p - tonic) % 12 in scale]
    cells = ("x---", "x-x-", "x-.x", "..x-", "....", "x--x")
    index = int(np.argmin([abs(p - pitch) for p in allowed]))
    for beat in range(bpb):
        for step, length, _ in parse_line(str(b.rng.choice(cells))):
            index = int(np.clip(index + b.rng.choice((-2, -1, -1, 1, 1, 2)), 0, len(allowed) - 1))
            b.note(part, allowed[index], start + beat + step / STEPS_PER_BEAT, length / STEPS_PER_BEAT, 88)
    return allowed[index]


def _add_intro(b: ScoreBuilder, kind: str, bars: int, progression: list[Chord], tonic: int, bpb: int) -> None:
    """Sparse intro on the ``intro`` stem: soft piano on every beat and/or a sustained pad."""
    rng = b.rng
    if kind in ("piano", "pad_piano"):
        piano = b.part("intro_keys", int(rng.choice(INTRO_KEYS)), stem="intro")
        for bar in range(bars):
            tones = voicing(progression[bar % len(progression)], tonic)
            for beat in range(bpb):
                b.note(piano, tones[beat % len(tones)] + (12 if beat else 0), bar * bpb + beat, 0.9, 70)
    if kind in ("pad", "pad_piano"):
        pad = b.part("intro_pad", int(rng.choice(INTRO_PADS)), stem="intro")
        for bar in range(bars):
            for pitch in voicing(progression[bar % len(progression)], tonic):
                b.note(pad, pitch, bar * bpb, bpb, 70)


def compose_ambient(rng: np.random.Generator, target_seconds: float) -> Score:
    """Beatless ambient piece: layered pads/strings with rubato chord changes every 4-9 s, slow
    expression swells and (sometimes) sparse bells at irregular times. No drums, no labelled beats."""
    score = Score("ambient", 0, 0, [(0.0, AMBIENT_BPM)])
    b = ScoreBuilder(score, rng)
    tonic, minor = int(rng.integers(0, 12)), bool(rng.random() < 0.5)
    programs = rng.choice(PADS, size=int(rng.integers(2, 4)), replace=False)  # two or three layers
    layers = [b.part(f"pad{i}", int(program)) for i, program in enumerate(programs)]
    t, degree = 0.0, 0
    while t < target_seconds - 3.0:
        length = float(rng.uniform(4.0, 9.0))
        chord = diatonic_chord(degree, minor, 4)
        for i, part in enumerate(layers):
            pitches = voicing(chord, tonic, CHORD_LOW - 7 + 5 * i)
            if i == 0:
                pitches.append(register(tonic + chord.root, BASS_LOW + 12))
            for pitch in pitches:
                onset = t + float(rng.uniform(0.0, 1.2))
                b.note(part, pitch, onset, t + length + float(rng.uniform(0.5, 2.0)) - onset, int(rng.integers(55, 85)))
        t += length
        degree = int((degree + rng.choice((1, 2, 3, 4, 5, 6))) % 7)
    for part in layers:  # slow swells on CC11 (expression)
        periods, phases = rng.uniform(7.0, 17.0, size=2), rng.uniform(0, 2 * np.pi, size=2)
        for beat in np.arange(0.0, t + 2.0, 0.25):
            swell = np.mean(np.sin(2 * np.pi * beat / periods + phases))
            score.controls.append(Control(part, 11, float(beat), int(90 + 30 * swell)))
    bells = rng.random() < 0.4
    if bells:
        bell = b.part("bells", int(rng.choice(AMBIENT_BELLS)))
        scale = MINOR_PENTATONIC if minor else MAJOR_PENTATONIC
        allowed = [p for p in range(LEAD_LOW + 5, LEAD_LOW + 29) if (p - tonic) % 12 in scale]
        time = float(rng.uniform(1.0, 4.0))
        while time < t - 1.0:
            b.note(bell, int(rng.choice(allowed)), time, 2.0, int(rng.integers(35, 60)))
            time += 0.7 + float(rng.exponential(2.5))
    score.info.update(tonic=tonic, minor=minor, bells=bells)
    return score


def compose(category: str, style: str, index: int, rng: np.random.Generator, target_seconds: float) -> Score:
    """The ``index``-th (0-based) track of ``category`` in ``style``."""
    if category == "no_beat":
        return compose_ambient(rng, target_seconds)
    shape = TEMPO_SHAPES[index % len(TEMPO_SHAPES)] if category == "tempo_change" else None
    intro = ((INTRO_KINDS[index % len(INTRO_KINDS)], INTRO_BARS[index % len(INTRO_BARS)])
             if category == "quiet_intro" else None)
    score = compose_groove(STYLES[style], rng, target_seconds, tempo_shape=shape, intro=intro)
    if shape is not None:
        score.info["tempo_shape"] = shape[0]
    return score
