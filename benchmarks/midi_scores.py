"""Seeded General-MIDI scores for the beat-tracking evaluation set.

A ``Score`` is written in beats with a piecewise-constant tempo map, so its beats and downbeats
are known exactly. A beat is the pulse a dancer steps to: a quarter note in simple meters (2/4,
3/4, 4/4) and a DOTTED quarter in compound meters (6/8 has two beats per bar, 12/8 four), where
``Score.beat_unit`` = 1.5 quarter notes and ``steps_per_beat`` = 3 eighths. Styles are short
drum/bass/chord patterns on a grid of ``steps_per_beat`` steps per beat (16ths by default, eighths
in compound meters, 32nds for trap hi-hat rolls; one character per step: ``X`` accent, ``x``
normal, ``o`` soft, ``g`` ghost, ``-`` hold the previous note, ``.`` rest; in bass lines ``x`` is
the chord root, ``o`` its octave, ``3``/``5``/``7`` its third, fifth and seventh). Only composition
lives here: ``beat_eval_set.py`` turns a score into MIDI, audio and labels.

The first six categories (steady_44 ... no_beat) must stay bit-identical, so old benchmark figures
stay comparable: the later categories only add styles, fields with old-behaviour defaults and
code paths that old styles never take (their random draws happen in the same order).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

STEPS_PER_BEAT = 4  # patterns are written in 16th notes unless a style says otherwise
COMPOUND_STEPS = 3  # compound meters: three eighths per dotted-quarter beat
DOTTED_QUARTER = 1.5  # quarter notes per beat in compound meters (MIDI tempo is in quarter notes)
AMBIENT_BPM = 60.0  # beatless scores are laid out at 60 BPM, so one "beat" is one second

# General MIDI percussion keys (channel 10).
KICK, SIDE_STICK, SNARE, CLAP = 36, 37, 38, 39
CLOSED_HAT, PEDAL_HAT, OPEN_HAT = 42, 44, 46
LOW_TOM, MID_TOM, HIGH_TOM = 45, 47, 50
CRASH, RIDE, TAMBOURINE = 49, 51, 54
LOW_FLOOR_TOM, HIGH_FLOOR_TOM = 41, 43  # played as a bodhran in the jig
FILL_TOMS = (HIGH_TOM, HIGH_TOM, MID_TOM, LOW_TOM)  # the phrase-end fill, one hit per 16th

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

PIANO, CHURCH_ORGAN, REED_ORGAN = 0, 19, 20
VIOLIN, VIOLA, CELLO, CONTRABASS, STRINGS, SLOW_STRINGS = 40, 41, 42, 43, 48, 49
CELLO_LOW = 36  # lowest pitch of cello / piano-left-hand bass lines (BASS_LOW is a bass guitar's)

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
    steps_per_beat: int = STEPS_PER_BEAT  # pattern grid steps per beat
    beat_unit: float = 1.0  # quarter notes per beat: 1.0 simple meter, DOTTED_QUARTER compound

    @property
    def end_beat(self) -> float:
        return max(n.start + n.length for n in self.notes)

    @property
    def meter(self) -> str:
        """Time signature as written: ``"6/8"`` for two dotted-quarter beats, ``"3/4"`` for three
        quarter-note beats ("" for beatless scores)."""
        if not self.beats_per_bar:
            return ""
        if self.beat_unit == DOTTED_QUARTER:
            return f"{3 * self.beats_per_bar}/8"
        return f"{self.beats_per_bar}/4"


@dataclass(frozen=True)
class GrooveStyle:
    """Drum, bass and chord patterns of one bar (``beats_per_bar * steps_per_beat`` characters each).
    An empty ``bass_programs`` / ``chord_programs`` leaves that part out (a lone melody)."""

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
    steps_per_beat: int = STEPS_PER_BEAT  # COMPOUND_STEPS makes the beat a dotted quarter
    bass_low: int = BASS_LOW  # lowest pitch of the bass line's octave
    lead_from_bar: int = 2  # the lead enters after this many bars
    melody_cells: tuple[str, ...] = ()  # one-beat rhythm cells of the lead; () = MELODY_CELLS[steps]


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
    # ---- styles of the later categories (drumless ... tempo_shapes); old styles above stay as they are
    # drumless (the chorales are voice-led in compose_chorale, not grooves)
    GrooveStyle("quartet_minuet", 3, (108, 132), (), {}, "x-------5---", (CELLO,), "....x-..x-..",
                (VIOLA, VIOLIN), (VIOLIN,), lead_chance=1.0, bass_low=CELLO_LOW, lead_from_bar=0,
                melody_cells=("x-x-", "x---", "x-x-", "xxx-", "x-xx")),
    GrooveStyle("piano_ballad", 4, (62, 78), (), {}, "x-5-o-5-x-5-o-5-", (PIANO,), "x-------x-------",
                (PIANO,), (PIANO,), lead_chance=1.0, bass_low=CELLO_LOW, lead_from_bar=1,
                melody_cells=("x---", "x-x-", "x---", "x--x", "....", "x-x-")),
    GrooveStyle("slow_movement", 4, (66, 74), (), {}, "x---x---x---x---", (CELLO, CONTRABASS),
                "x-------x-------", (STRINGS, SLOW_STRINGS), (VIOLIN, 68, 71), lead_chance=1.0,
                bass_low=CELLO_LOW, lead_from_bar=1, melody_cells=("x---", "x-x-", "x---", "x--x")),
    GrooveStyle("lone_melody", 4, (84, 108), (), {}, "", (), "", (), (73, VIOLIN, 72), lead_chance=1.0,
                lead_from_bar=0, melody_cells=("x---", "x-x-", "x-xx", "x---", "x--x", "xxx-")),
    # compound meters: one character per eighth, a beat is a dotted quarter (the bpm counts them)
    GrooveStyle("jig_bodhran", 2, (110, 126), (STANDARD_KIT, ROOM_KIT),
                {LOW_FLOOR_TOM: "X..x..", LOW_TOM: ".oo.og"}, "x--5--", (24, 25), "x-xx-x", (25, 24),
                (VIOLIN, 73, 78), lead_chance=1.0, steps_per_beat=COMPOUND_STEPS, bass_low=40,
                lead_from_bar=0, melody_cells=("xxx", "x-x", "xxx", "x-x", "xxx")),
    GrooveStyle("jig_flute", 2, (112, 128), (), {}, "x--5--", (24,), "x-xx-x", (25, 46),
                (73, 78, VIOLIN), lead_chance=1.0, steps_per_beat=COMPOUND_STEPS, bass_low=40,
                lead_from_bar=0, melody_cells=("xxx", "x-x", "xxx", "x-x", "x--")),
    GrooveStyle("presto_68", 2, (100, 116), (), {}, "x--x--", (CELLO,), "x..x..", (STRINGS, VIOLA),
                (VIOLIN,), lead_chance=1.0, steps_per_beat=COMPOUND_STEPS, bass_low=CELLO_LOW,
                lead_from_bar=1, melody_cells=("xxx", "xxx", "x-x", "x--")),
    GrooveStyle("slow_blues_128", 4, (52, 64), (STANDARD_KIT, ROOM_KIT),
                {KICK: "X.....x.....", SNARE: "...X.....X..", RIDE: "xooxooxooxoo"},
                "x--5--o--5--", (33, 34), "xxxxxxxxxxxx", (PIANO, 16), (29, 65, 22),
                steps_per_beat=COMPOUND_STEPS, blues=True, melody_cells=("x--", "x-x", "..x", "...", "xxx")),
    GrooveStyle("ballad_68", 2, (52, 64), (STANDARD_KIT, ROOM_KIT),
                {KICK: "X.....", SNARE: "...X..", CLOSED_HAT: "xooxoo"}, "x--5--", (33, 32),
                "x--x--", (PIANO, 24, 4), (73, 52, 65), lead_chance=0.8, steps_per_beat=COMPOUND_STEPS,
                melody_cells=("x--", "x-x", "x-.", "...")),
    # duple_24: 2/4 oom-pah
    GrooveStyle("polka", 2, (112, 128), (STANDARD_KIT, ROOM_KIT),
                {KICK: "x...x...", SNARE: "..x...x.", CLOSED_HAT: "..o...o."}, "x---5---", (58, 33),
                "..x-..x-", (21, 23, 61), (21, 71, 56), lead_chance=1.0, lead_from_bar=2),
    GrooveStyle("march", 2, (108, 122), (STANDARD_KIT, ROOM_KIT),
                {KICK: "X...x...", SNARE: "x.gxx.go", CRASH: "o...o..."}, "x---5---", (58, 57),
                "x-..x-..", (61, 60, 57), (56, 72, 73), lead_chance=1.0),
    # octave_traps: tempi and patterns where trackers tend to halve, double or shift the beat
    GrooveStyle("hiphop_88", 4, (86, 90), (TR808_KIT, ROOM_KIT),
                {KICK: "X..x......X.....", SNARE: "....X.......X...", CLOSED_HAT: "x...x...x...x..."},
                "x-----.x--x-----", (38, 33), "x-------x-------", (4, 5, 0), (11, 73)),
    GrooveStyle("reggae_onedrop", 4, (74, 78), (STANDARD_KIT, ROOM_KIT),
                {KICK: "........X.......", SIDE_STICK: "........X.......", CLOSED_HAT: "o.g.o.g.o.g.o.g."},
                "......x-x---5-x-", (33, 34, 38), "..x...x...x...x.", (16, 17, 28), (56, 65),
                lead_chance=0.4),
    GrooveStyle("dnb_170", 4, (166, 176), (ELECTRONIC_KIT, STANDARD_KIT),
                {KICK: "X.........X.....", SNARE: "....X..g.g..X...", CLOSED_HAT: "xoxoxoxoxoxoxoxo"},
                "x-------x-5-----", (38, 39), "x---------------", (89, 90, 50), (81,), lead_chance=0.3),
    GrooveStyle("trap_140", 4, (138, 142), (TR808_KIT,),  # 32nd grid: half-time clap on 3, hat rolls
                {KICK: "X.............x.........x.......", CLAP: "................X...............",
                 CLOSED_HAT: "x...o...x...o...x...o...x.o.xxxx"},
                "x-----------------------x-------", (38, 39), "x-------------------------------",
                (89, 88, 11), (), steps_per_beat=8),
    GrooveStyle("polonaise", 3, (88, 96), (), {}, "x---x---x---", (CELLO, 32), "x-xxx-x-x-x-",
                (PIANO, STRINGS, 61), (VIOLIN, 73, 56), lead_chance=1.0, bass_low=CELLO_LOW,
                melody_cells=("x-xx", "x---", "x-x-", "x-xx")),
    GrooveStyle("funk_syncopated", 4, (96, 104), (STANDARD_KIT, ROOM_KIT),
                {KICK: "X.....x...x...x.", SNARE: "....X..g.g..X..g", CLOSED_HAT: "g.X.g.X.g.X.g.X.",
                 OPEN_HAT: "......o.......o."},  # beats: kick 1, snare 2 and 4; every 'and' pushed
                "x.....o...x...5.", (33, 36, 37), "..x...x...x...x.", (61, 7, 27), (65, 56)),
    # tempo_shapes
    GrooveStyle("piano_alberti", 4, (80, 110), (), {}, "x-5-3-5-x-5-3-5-", (PIANO,), "", (), (PIANO,),
                lead_chance=1.0, bass_low=48, lead_from_bar=0),
    GrooveStyle("techno", 4, (127, 129), (ELECTRONIC_KIT, TR808_KIT),
                {KICK: "X...x...x...x...", CLAP: "....x.......x...", CLOSED_HAT: "..o...o...o...o.",
                 RIDE: "g.g.g.g.g.g.g.g."},
                "..x-..x-..x-..x-", (38, 39), "x---------------", (50, 81, 90), (81,), lead_chance=0.3),
)}

CATEGORY_STYLES: dict[str, tuple[str, ...]] = {
    "steady_44": ("house", "hiphop", "pop", "funk", "disco", "dnb"),
    "waltz_34": ("jazz_waltz", "viennese", "folk_waltz", "pop_waltz", "jazz_waltz"),
    "swing": ("jazz_swing", "shuffle_blues", "swing16_hiphop", "jazz_brush", "jazz_swing"),
    "tempo_change": ("pop", "house", "funk", "disco", "pop"),
    "quiet_intro": ("house", "pop", "hiphop", "funk", "disco"),
    "no_beat": ("ambient",) * 5,
    # added later, each with its own version marker in beat_eval_set.CATEGORY_VERSIONS
    "drumless": ("organ_chorale", "strings_chorale", "quartet_minuet", "piano_ballad", "slow_movement",
                 "lone_melody"),
    "compound": ("jig_bodhran", "jig_flute", "presto_68", "slow_blues_128", "ballad_68"),
    "duple_24": ("polka", "march", "polka", "march"),
    "octave_traps": ("hiphop_88", "reggae_onedrop", "dnb_170", "trap_140", "polonaise", "funk_syncopated"),
    "tempo_shapes": ("pop", "polka", "piano_alberti", "techno", "piano_ballad"),
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
# tempo_shapes, one per track in order: a tempo_shape_map shape, or ("rit", start bpm, final bpm,
# -bars, bars) = steady, then a per-beat ramp over the last ``bars`` bars; None = steady tempo
TEMPO_SHAPE_PLANS: tuple[tuple[str, float, float, int, int] | None, ...] = (
    ("rit", 116.0, 70.0, -4, 4),  # pop band slowing to a close
    ("ramp", 96.0, 144.0, 2, 16),  # polka accelerando (2/4 bars)
    ("step", 70.0, 104.0, 6, 0),  # drumless piano, sudden change after bar 6
    None,  # techno with LONG_INTRO
    ("rit", 76.0, 48.0, -3, 3),  # piano ballad, ritardando ending
)
LONG_INTRO = ("pad", 8)  # tempo_shapes techno: eight bars of pads before the kick
CHORALE_STYLES = ("organ_chorale", "strings_chorale")


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
        steps = self.score.steps_per_beat
        for step, char in enumerate(pattern):
            if char in HIT_VELOCITY:
                self.note(part, drum, bar_start + step / steps, 0.25, HIT_VELOCITY[char] * scale)

    def line(self, part: str, pattern: str, bar_start: float, chord: Chord, tonic: int, low: int,
             velocity: float) -> None:
        """Bass line: each symbol a chord tone in the register starting at ``low``."""
        root, steps = register(tonic + chord.root, low), self.score.steps_per_beat
        for step, length, symbol in parse_line(pattern):
            self.note(part, root + chord.tone(symbol), bar_start + step / steps, length / steps, velocity)

    def chords(self, part: str, pattern: str, bar_start: float, chord: Chord, tonic: int, velocity: float) -> None:
        steps = self.score.steps_per_beat
        for step, length, _ in parse_line(pattern):
            for pitch in voicing(chord, tonic):
                self.note(part, pitch, bar_start + step / steps, length / steps, velocity)


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


def ritardando_map(shape: tuple[str, float, float, int, int], beats_per_bar: int, num_bars: int,
                   rng: np.random.Generator) -> list[tuple[float, float]]:
    """Steady tempo, then a per-beat linear ramp over the last ``bars`` bars down to the final bpm
    (the closing hit lands at the final tempo)."""
    _, bpm0, bpm1, _, bars = shape
    jitter = float(rng.uniform(-2.0, 2.0))
    bpm0, bpm1 = bpm0 + jitter, bpm1 + jitter
    n = bars * beats_per_bar
    at = float((num_bars - bars) * beats_per_bar)
    return [(0.0, bpm0)] + [(at + k, bpm0 + (bpm1 - bpm0) * (k + 1) / n) for k in range(n)]


def compose_groove(style: GrooveStyle, rng: np.random.Generator, target_seconds: float, *,
                   tempo_shape: tuple | None = None, intro: tuple[str, int] | None = None) -> Score:
    """A groove of ``style`` lasting at least ``target_seconds`` (bars of drums, bass, chords and
    maybe a lead), optionally after a quiet ``intro`` = (kind, bars) on its own stem. A ``"rit"``
    tempo shape (see ``TEMPO_SHAPE_PLANS``) slows the last bars, so the piece runs a little longer."""
    bpb, steps = style.beats_per_bar, style.steps_per_beat
    ritardando = tempo_shape is not None and tempo_shape[0] == "rit"
    tempo_map = (tempo_shape_map(tempo_shape, bpb, rng) if tempo_shape is not None and not ritardando
                 else [(0.0, float(tempo_shape[1] if ritardando else rng.uniform(*style.bpm)))])
    num_bars = 1
    while seconds_at(tempo_map, num_bars * bpb) < target_seconds:
        num_bars += 1
    if ritardando:
        tempo_map = ritardando_map(tempo_shape, bpb, num_bars, rng)
    tonic, minor = int(rng.integers(0, 12)), bool(rng.random() < 0.5) and not style.blues
    score = Score(style.name, bpb, num_bars * bpb, tempo_map, steps_per_beat=steps,
                  beat_unit=DOTTED_QUARTER if steps == COMPOUND_STEPS else 1.0)
    swing = Swing(style.swing[0], float(rng.uniform(*style.swing[1:]))) if style.swing else None
    b = ScoreBuilder(score, rng, swing)
    progression = _progression(style, minor, rng)
    kit = b.part("drums", int(rng.choice(style.kits)), is_drum=True) if style.kits else None
    bass = b.part("bass", int(rng.choice(style.bass_programs))) if style.bass_programs else None
    keys = b.part("chords", int(rng.choice(style.chord_programs))) if style.chord_programs else None
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
                fill = FILL_TOMS if steps % STEPS_PER_BEAT == 0 else FILL_TOMS[-steps:]  # 16ths, or 8ths in 6/8
                for k, tom in enumerate(fill):
                    b.note(kit, tom, start + bpb - 1 + k / len(fill), 0.25, 90 + 6 * k)
        if bass is None:
            pass
        elif style.walking_bass:
            _walk(b, bass, start, bpb, chord, progression[(bar + 1) % len(progression)], tonic)
        else:
            b.line(bass, style.bass, start, chord, tonic, style.bass_low, 96)
        if keys is not None:
            b.chords(keys, style.chords, start, chord, tonic, 72)
        if lead is not None and g >= style.lead_from_bar:
            pitch = _melody_bar(b, lead, start, bpb, tonic, minor, pitch,
                                style.melody_cells or MELODY_CELLS[steps], steps)
    end = float(num_bars * bpb)  # the closing hit, the last labelled beat
    final = progression[0]
    if kit is not None:
        b.note(kit, CRASH, end, FINAL_HOLD_BEATS, 110)
        b.note(kit, KICK, end, 0.25, 110)
    if bass is not None:
        b.note(bass, register(tonic + final.root, style.bass_low), end, FINAL_HOLD_BEATS, 100)
    if keys is not None:
        for pitch in voicing(final, tonic):
            b.note(keys, pitch, end, FINAL_HOLD_BEATS, 80)
    elif lead is not None:  # no chords to close with: the lead ends on the tonic
        b.note(lead, register(tonic, LEAD_LOW), end, FINAL_HOLD_BEATS, 90)
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


MELODY_CELLS = {  # default one-beat rhythm cells of the lead, per steps_per_beat
    STEPS_PER_BEAT: ("x---", "x-x-", "x-.x", "..x-", "....", "x--x"),
    COMPOUND_STEPS: ("x--", "x-x", "xxx", "..x", "...", "x-."),
}


def _melody_bar(b: ScoreBuilder, part: str, start: float, bpb: int, tonic: int, minor: bool, pitch: int,
                cells: tuple[str, ...] = MELODY_CELLS[STEPS_PER_BEAT], steps: int = STEPS_PER_BEAT) -> int:
    """One bar of a pentatonic random-walk melody, one rhythm cell per beat; returns the last pitch."""
    if any(len(cell) != steps for cell in cells):
        raise ValueError(f"melody cells {cells} must have {steps} steps (one beat) each")
    scale = MINOR_PENTATONIC if minor else MAJOR_PENTATONIC
    allowed = [p for p in range(LEAD_LOW, LEAD_LOW + 20) if (p - tonic) % 12 in scale]
    index = int(np.argmin([abs(p - pitch) for p in allowed]))
    for beat in range(bpb):
        for step, length, _ in parse_line(str(b.rng.choice(cells))):
            index = int(np.clip(index + b.rng.choice((-2, -1, -1, 1, 1, 2)), 0, len(allowed) - 1))
            b.note(part, allowed[index], start + beat + step / steps, length / steps, 88)
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


# chorale harmony: scale degree -> degrees that may follow it (functional progressions)
CHORALE_NEXT = {0: (3, 4, 5, 1), 1: (4, 6), 2: (5, 3), 3: (4, 0, 1), 4: (0, 5), 5: (1, 3), 6: (0,)}
CHORALE_PRE_DOMINANTS = (1, 3)  # ii, IV
CHORALE_PHRASE_BARS = 2  # a phrase is six chords of one beat and a half-note cadence chord
CHORALE_RANGES = {"bass": (40, 55), "tenor": (48, 67), "alto": (55, 74), "soprano": (60, 79)}
CHORALE_BPM = {"organ_chorale": (66.0, 84.0), "strings_chorale": (56.0, 72.0)}
CHORALE_PROGRAMS = {  # (soprano, alto, tenor, bass) programs to choose from
    "organ_chorale": ((CHURCH_ORGAN,) * 4, (REED_ORGAN,) * 4),
    "strings_chorale": ((STRINGS,) * 4, (VIOLIN, VIOLIN, VIOLA, CELLO)),
}
ORGAN_PEDAL = -12  # the organ doubles the bass an octave lower, as a 16' pedal stop
CHORALE_ARTICULATION = {"organ_chorale": 0.9, "strings_chorale": 1.0}  # note length in beats: organs re-strike


def chorale_chord(degree: int, minor: bool) -> Chord:
    """Diatonic triad, with the raised leading tone (harmonic minor) for V and vii in minor keys."""
    if minor and degree == 4:
        return Chord(7, (0, 4, 7))
    if minor and degree == 6:
        return Chord(11, (0, 3, 6))
    return diatonic_chord(degree, minor)


def chorale_degrees(num_bars: int, bpb: int, rng: np.random.Generator) -> list[int]:
    """One scale degree per beat in two-bar phrases: a functional random walk, a pre-dominant and a
    cadence held for two beats (half cadence on V, authentic V-I); the last phrase ends on V so the
    closing I (the extra final beat) resolves it. No chord repeats on the next beat except a held
    cadence, so every beat but the cadence's second one has a new chord."""
    degrees: list[int] = []
    phrase_beats = CHORALE_PHRASE_BARS * bpb
    num_phrases = num_bars // CHORALE_PHRASE_BARS
    for p in range(num_phrases):
        half_cadence = (num_phrases - 1 - p) % 2 == 0
        tail = [1 if rng.random() < 0.5 else 3, 4, 4] if half_cadence else [int(rng.choice(CHORALE_PRE_DOMINANTS)), 4, 0, 0]
        free = phrase_beats - len(tail)
        phrase = [0]
        while len(phrase) < free:
            phrase.append(int(rng.choice(CHORALE_NEXT[phrase[-1]])))
        if phrase[-1] == tail[0]:
            phrase[-1] = 5 if tail[0] != 5 else 0  # vi (or I) before the pre-dominant, never a repeat
        if degrees and degrees[-1] == phrase[0]:
            phrase[0] = 5  # after an authentic cadence on I, open on vi
        degrees += phrase + tail
    return degrees + [0]


def chorale_voicing(chord: Chord, tonic: int, previous: dict[str, int] | None, rng: np.random.Generator,
                    inversion: bool) -> dict[str, int]:
    """Four-part voicing with the least motion from ``previous``: bass on the root (or the third when
    ``inversion``), soprano > alto > tenor above it, adjacent upper voices within an octave, root and
    third always present."""
    pcs = [(tonic + chord.root + i) % 12 for i in chord.intervals]
    bass_pc = pcs[1] if inversion else pcs[0]
    previous = previous or {"bass": 48, "tenor": 57, "alto": 64, "soprano": 71}

    def options(voice: str) -> list[int]:
        low, high = CHORALE_RANGES[voice]
        return [p for p in range(low, high + 1) if p % 12 in pcs]

    bass = min((p for p in options("bass") if p % 12 == bass_pc), key=lambda p: abs(p - previous["bass"]))
    best, best_cost = None, math.inf
    for tenor in options("tenor"):
        for alto in options("alto"):
            for soprano in options("soprano"):
                if not (bass < tenor < alto < soprano and alto - tenor <= 12 and soprano - alto <= 12):
                    continue
                present = {bass % 12, tenor % 12, alto % 12, soprano % 12}
                if pcs[0] not in present or pcs[1] not in present:
                    continue
                moves = [abs(tenor - previous["tenor"]), abs(alto - previous["alto"]), abs(soprano - previous["soprano"])]
                cost = sum(moves) + 2 * max(0, moves[2] - 4) + (3 if pcs[2] not in present else 0)
                cost += 0.5 * float(rng.random())  # break ties differently per piece
                if cost < best_cost:
                    best, best_cost = {"bass": bass, "tenor": tenor, "alto": alto, "soprano": soprano}, cost
    if best is None:
        raise ValueError(f"no four-part voicing of {chord} in key {tonic}")
    return best


def compose_chorale(style: str, rng: np.random.Generator, target_seconds: float) -> Score:
    """Four-part homophonic chorale in 4/4, one chord per beat and a half-note cadence every two bars,
    on organ (re-struck notes, pedal an octave below) or strings (legato): drumless music whose only
    beat cue is the harmonic rhythm."""
    bpb = 4
    tempo_map = [(0.0, float(rng.uniform(*CHORALE_BPM[style])))]
    num_bars = CHORALE_PHRASE_BARS
    while seconds_at(tempo_map, num_bars * bpb) < target_seconds:
        num_bars += CHORALE_PHRASE_BARS
    tonic, minor = int(rng.integers(0, 12)), bool(rng.random() < 0.4)
    score = Score(style, bpb, num_bars * bpb, tempo_map)
    b = ScoreBuilder(score, rng)
    programs = CHORALE_PROGRAMS[style][int(rng.integers(len(CHORALE_PROGRAMS[style])))]
    voices = {voice: b.part(voice, program) for voice, program in zip(("soprano", "alto", "tenor", "bass"), programs,
                                                                      strict=True)}
    organ = style == "organ_chorale"
    degrees = chorale_degrees(num_bars, bpb, rng)
    previous = None
    beat = 0
    while beat < len(degrees):
        held = 2 if beat + 1 < len(degrees) - 1 and degrees[beat + 1] == degrees[beat] else 1
        final = beat == len(degrees) - 1
        inversion = not final and held == 1 and degrees[beat] in (0, 3, 4) and rng.random() < 0.2
        pitches = chorale_voicing(chorale_chord(degrees[beat], minor), tonic, previous, rng, inversion)
        length = FINAL_HOLD_BEATS if final else held - 1 + CHORALE_ARTICULATION[style]
        for voice, pitch in pitches.items():
            b.note(voices[voice], pitch, float(beat), length, 84 if beat % bpb == 0 else 76)
        if organ:
            b.note(voices["bass"], pitches["bass"] + ORGAN_PEDAL, float(beat), length, 80)
        previous = pitches
        beat += held
    score.info.update(tonic=tonic, minor=minor, degrees=degrees)
    return score


def compose(category: str, style: str, index: int, rng: np.random.Generator, target_seconds: float) -> Score:
    """The ``index``-th (0-based) track of ``category`` in ``style``."""
    if category == "no_beat":
        return compose_ambient(rng, target_seconds)
    if style in CHORALE_STYLES:
        return compose_chorale(style, rng, target_seconds)
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r} in category {category!r}; known: {sorted(STYLES)}")
    shape, intro = None, None
    if category == "tempo_change":
        shape = TEMPO_SHAPES[index % len(TEMPO_SHAPES)]
    elif category == "tempo_shapes":
        shape = TEMPO_SHAPE_PLANS[index % len(TEMPO_SHAPE_PLANS)]
        intro = LONG_INTRO if shape is None else None
    elif category == "quiet_intro":
        intro = (INTRO_KINDS[index % len(INTRO_KINDS)], INTRO_BARS[index % len(INTRO_BARS)])
    score = compose_groove(STYLES[style], rng, target_seconds, tempo_shape=shape, intro=intro)
    if shape is not None:
        score.info["tempo_shape"] = shape[0]
    return score
