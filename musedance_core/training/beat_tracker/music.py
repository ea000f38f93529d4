"""Procedural music with exact beat and downbeat labels, for training a learned beat tracker.

Why: the tracker may be trained on nothing public (no recordings, no MIDI or score collections), so
its training music is composed here, from scratch, by small rules: a style table (grooves written as
drum/bass/comp grids, meters, tempo ranges, General-MIDI programs), a harmony model (keys,
progressions, voicings), a melody random walk and a time map. This module is the engine; the style
table it plays lives in ``styles``. ``render`` turns a ``Piece`` into audio with FluidSynth
and augments it.

Label convention (the beat a dancer steps to): the quarter note in 2/4, 3/4 and 4/4; the dotted
quarter in 6/8 (2 per bar) and 12/8 (4 per bar). Half-time styles (trap, ballads with snare on 3)
are labelled at their notated quarter, not at the half-time pulse. Downbeats are the first beat of
each bar. Pickup notes before the first downbeat label the whole beats they fall on (beat 4 of an
incomplete bar), not as downbeats. The last label is the downbeat of the final chord. Beatless pieces
(``category == 'no_beat'``) have no labels and ``beats_per_bar == 0``.

Everything is in absolute seconds: the composer applies its own time map (tempo drift, accelerando,
sudden change, ritardando, swing, per-part human jitter), so the labels are exact by construction
(they are the time map at whole beats; only the notes are jittered around them). Pure numpy,
deterministic for a ``numpy.random.Generator``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .styles import (
    CATEGORIES,
    DRUM_KEYS,
    NO_BEAT,
    PADS,
    STRINGS,
    STYLE_LIST,
    STYLES,
    Style,
)

CC_EXPRESSION = 11
CC_SUSTAIN = 64
LEAD_S = 0.3  # silence before the first sound
MIN_NOTE_S = 0.03
TAIL_BEATS = 24  # time map extends this far past the last bar (final chords ring)
BPM_LIMITS = (50.0, 220.0)  # labelled beats per minute, after every tempo change
METERS = {"4/4": (4, 2), "3/4": (3, 2), "2/4": (2, 2), "6/8": (2, 3), "12/8": (4, 3)}  # (beats/bar, grid/beat)

# General-MIDI drum keys the engine plays itself (fills, crashes, the final hit)
KICK, SNARE, HH, FLOOR, LTOM, MTOM, CRASH, HTOM = (
    DRUM_KEYS[k] for k in ("KICK", "SNARE", "HH", "FLOOR", "LTOM", "MTOM", "CRASH", "HTOM"))
HIT_VELOCITY = {"X": (108, 127), "x": (82, 102), "o": (58, 76), "g": (24, 42)}  # grid letters -> velocity

MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)
PROGRESSIONS = {
    "major": ((1, 5, 6, 4), (1, 4, 5, 4), (1, 6, 4, 5), (1, 4, 1, 5), (6, 4, 1, 5), (1, 1, 4, 5),
              (2, 5, 1, 6), (1, 3, 4, 5), (4, 1, 5, 6), (1, 5, 4, 4)),
    "minor": ((1, 6, 7, 1), (1, 4, 5, 1), (1, 7, 6, 5), (1, 4, 7, 3), (1, 6, 3, 7), (1, 1, 4, 5), (6, 7, 1, 1)),
    "blues": ((1, 1, 1, 1, 4, 4, 1, 1, 5, 4, 1, 5), (1, 4, 1, 1, 4, 4, 1, 1, 5, 4, 1, 5)),
}
SIMPLE_CELLS = (((0.0,), 4.0), ((0.0, 0.5), 4.0), ((0.5,), 0.7), ((0.0, 0.75), 1.0),
                ((0.0, 0.25, 0.5, 0.75), 0.8), ((0.0, 0.5, 0.75), 1.0), ((), 0.6))
COMPOUND_CELLS = (((0.0,), 3.0), ((0.0, 2 / 3), 3.0), ((0.0, 1 / 3, 2 / 3), 4.0), ((1 / 3, 2 / 3), 0.6),
                  ((0.0, 1 / 3), 1.0), ((), 0.5))
LEADS = (56, 64, 65, 66, 73, 80, 81, 71, 11, 22)  # default melody programs

Note = tuple[int, bool, int, float, float, int]  # program, is_drum, pitch, start_s, end_s, velocity
Control = tuple[int, bool, int, float, int]  # program, is_drum, controller, time_s, value


@dataclass(frozen=True)
class Piece:
    """A composed piece: notes and controller events in absolute seconds, with its labels."""

    notes: list[Note]
    beats: np.ndarray
    downbeats: np.ndarray
    beats_per_bar: int
    category: str
    style: str
    info: dict = field(default_factory=dict)
    controls: list[Control] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return max((n[4] for n in self.notes), default=0.0)


# -- harmony -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Chords:
    """One chord per ``slot`` beats: root pitch classes and chord pitch classes (root first)."""

    slot: float
    roots: tuple[int, ...]
    pcs: tuple[tuple[int, ...], ...]

    def at(self, beat: float) -> tuple[int, tuple[int, ...]]:
        i = int(np.clip(math.floor(beat / self.slot + 1e-6), 0, len(self.roots) - 1))
        return self.roots[i], self.pcs[i]


def chord_pcs(key: int, mode: str, degree: int, seventh: bool = False, dominant: bool = False) -> tuple[int, ...]:
    if dominant:  # blues: every chord a dominant seventh
        root = (key + MAJOR[degree - 1]) % 12
        return tuple((root + i) % 12 for i in (0, 4, 7, 10))
    scale = MAJOR if mode == "major" else MINOR
    pcs = [scale[(degree - 1 + 2 * i) % 7] for i in range(4 if seventh else 3)]
    if mode == "minor" and degree == 5:
        pcs[1] = (pcs[1] + 1) % 12  # leading tone (harmonic minor)
    return tuple((key + p) % 12 for p in pcs)


def make_chords(rng: np.random.Generator, key: int, mode: str, n_slots: int, slot: float,
                kind: str = "pop", seventh_p: float = 0.2) -> Chords:
    if kind == "blues":
        prog = PROGRESSIONS["blues"][rng.integers(len(PROGRESSIONS["blues"]))]
    else:
        options = PROGRESSIONS[mode]
        prog = options[rng.integers(len(options))]
        if rng.random() < 0.4:  # an 8-chord phrase: two progressions
            prog = prog + options[rng.integers(len(options))]
    degrees = [prog[i % len(prog)] for i in range(n_slots)]
    pcs = tuple(chord_pcs(key, mode, d, rng.random() < seventh_p, kind == "blues") for d in degrees)
    return Chords(slot, tuple(p[0] for p in pcs), pcs)


def voice(pcs: tuple[int, ...], lo: int, n: int) -> list[int]:
    """``n`` chord tones stacked upwards from the first chord tone at or above ``lo``."""
    out, p, i = [], lo, 0
    while len(out) < n and p < lo + 48:
        if p % 12 in pcs:
            out.append(p)
            i += 1
        p += 1
    return out


def near(pc: int, target: float) -> int:
    """The pitch with class ``pc`` nearest ``target``."""
    base = round(target) - 6
    return base + (pc - base) % 12


# -- score in beats ----------------------------------------------------------------------------------

@dataclass
class Part:
    program: int
    is_drum: bool
    jitter_s: float
    role: str


@dataclass
class Score:
    """Events in beats (beat 0 = first downbeat); parts are named, several may share a program."""

    bpb: int
    sub: int
    n_bars: int
    parts: dict[str, Part] = field(default_factory=dict)
    events: list[tuple[str, int, float, float, int]] = field(default_factory=list)
    ccs: list[tuple[str, int, float, int]] = field(default_factory=list)

    def part(self, name: str, program: int, is_drum: bool, jitter_s: float, role: str) -> str:
        self.parts[name] = Part(int(program), is_drum, float(jitter_s), role)
        return name

    def note(self, part: str, pitch: int, start: float, dur: float, vel: float) -> None:
        if 0 < pitch < 128:
            self.events.append((part, int(pitch), float(start), float(max(dur, 0.05)), int(np.clip(vel, 1, 127))))


@dataclass(frozen=True)
class Form:
    """Which roles play in which bar: a quiet intro, drum breaks, late drum entry, a held final chord."""

    n_bars: int
    intro: int = 0
    breaks: frozenset = frozenset()
    bass_breaks: frozenset = frozenset()
    drums_from: int = 0

    def plays(self, role: str, bar: int) -> bool:
        if bar < self.intro:
            return role in ("pad", "comp")
        if role in ("drums", "perc"):
            return bar >= self.drums_from and bar not in self.breaks
        if role == "bass":
            return bar not in self.bass_breaks
        return True


def make_form(rng: np.random.Generator, n_bars: int, intro_p: float, break_p: float, late_drums_p: float) -> Form:
    intro = int(rng.choice([2, 4, 4, 8])) if rng.random() < intro_p and n_bars >= 10 else 0
    intro = min(intro, n_bars // 3)
    drums_from = intro + (int(rng.choice([2, 4])) if rng.random() < late_drums_p and n_bars >= 12 else 0)
    breaks, bass_breaks = set(), set()
    if rng.random() < break_p and n_bars - drums_from >= 12:
        length = min(int(rng.choice([2, 4, 4, 8])), max(2, n_bars // 4))
        start = int(rng.integers(drums_from + 4, max(drums_from + 5, n_bars - length - 2)))
        breaks = set(range(start, min(start + length, n_bars - 1)))
        if rng.random() < 0.4:
            bass_breaks = set(breaks)
    return Form(n_bars, intro, frozenset(breaks), frozenset(bass_breaks), drums_from)


def grid_hits(pattern: str, bar: int, bpb: int) -> list[tuple[float, str]]:
    """(beat offset in the bar, letter) for bar ``bar`` of a '|'-separated grid (one string per bar)."""
    bars = pattern.split("|")
    seg = bars[bar % len(bars)]
    spb = len(seg) / bpb
    return [(i / spb, c) for i, c in enumerate(seg) if c not in ". "]


# -- time map ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TimeMap:
    """Beat position -> seconds: per-beat periods (tempo curve) plus swing inside the beat."""

    first: int  # beat index of periods[0]
    starts: np.ndarray
    periods: np.ndarray
    swing: float = 0.5  # where the off-beat of a swing unit falls (0.5 straight, 0.67 triplet shuffle)
    swing_unit: float = 1.0  # beats: 1 swings eighths, 0.5 swings sixteenths

    def __call__(self, pos) -> np.ndarray:
        pos = np.asarray(pos, dtype=np.float64)
        if self.swing != 0.5:
            u = pos / self.swing_unit
            k, f = np.floor(u), u - np.floor(u)
            f = np.where(f < 0.5, f / 0.5 * self.swing, self.swing + (f - 0.5) / 0.5 * (1 - self.swing))
            pos = (k + f) * self.swing_unit
        k = np.floor(pos + 1e-9)
        i = np.clip(k - self.first, 0, len(self.periods) - 1).astype(int)
        return self.starts[i] + (pos - (i + self.first)) * self.periods[i]


def make_time_map(rng: np.random.Generator, bpm: float, first: int, n_beats: int, bpb: int,
                  machine: bool, rubato: bool) -> tuple[TimeMap, dict]:
    """A tempo curve over beats [first, n_beats + TAIL_BEATS): drift, then one of steady/accelerando/
    sudden change, and maybe a closing ritardando. ``machine``: a drum machine (no drift)."""
    idx = np.arange(first, n_beats + TAIL_BEATS)
    x = (idx - first) / max(n_beats - first, 1)
    mult = np.ones(len(idx))  # multiplies the beat period
    info: dict = {"bpm": round(float(bpm), 2)}
    if not machine:
        amp = rng.uniform(0.0, 0.05 if rubato else 0.03)
        waves = sum(np.sin(2 * np.pi * (rng.uniform(0.3, 2.5) * x + rng.random())) for _ in range(2)) / 2
        mult *= 1 + amp * waves
        if rubato:  # phrase ends broaden a little (every 4 bars)
            phrase = ((idx % (4 * bpb)) >= 4 * bpb - 2) & (idx >= 0)
            mult *= np.where(phrase, 1 + rng.uniform(0.0, 0.06), 1.0)
        info["drift"] = round(float(amp), 3)
    change = rng.choice(["steady", "accelerando", "sudden", "steady"] if not machine else ["steady"] * 4 + ["sudden"])
    if change == "accelerando":
        end = rng.uniform(0.85, 0.95) if rng.random() < 0.7 else rng.uniform(1.05, 1.15)
        mult *= 1 + (end - 1) * np.clip(x, 0, 1)
    elif change == "sudden" and n_beats >= 8 * bpb:
        bar = int(rng.integers(n_beats // bpb // 3, 2 * n_beats // bpb // 3 + 1))
        factor = rng.uniform(0.8, 0.92) if rng.random() < 0.5 else rng.uniform(1.08, 1.25)
        mult *= np.where(idx >= bar * bpb, factor, 1.0)
        info["sudden_at_bar"] = bar
    info["tempo_change"] = str(change)
    if rng.random() < (0.2 if machine else 0.45):
        span = int(rng.integers(1, 4)) * bpb
        ramp = np.clip((idx - (n_beats - span)) / span, 0, None)
        mult *= 1 + rng.uniform(0.15, 0.5) * np.minimum(ramp, 1.2)
        info["ritardando_beats"] = span
    periods = np.clip(60.0 / bpm * mult, 60.0 / BPM_LIMITS[1], 60.0 / BPM_LIMITS[0])
    starts = LEAD_S + np.concatenate([[0.0], np.cumsum(periods[:-1])])
    return TimeMap(first, starts, periods), info


# -- parts -------------------------------------------------------------------------------------------

def add_drums(score: Score, rng: np.random.Generator, form: Form, patterns: tuple[dict, ...],
              fills: bool = True, hat_rolls: bool = False, machine: bool = False) -> None:
    bpb, sub = score.bpb, score.sub
    main = patterns[rng.integers(len(patterns))]
    alt = patterns[rng.integers(len(patterns))] if rng.random() < 0.3 else main
    name = score.part("drums", 0, True, 0.0005 if machine else rng.uniform(0.002, 0.01), "drums")
    drop = rng.uniform(0.0, 0.05)
    for bar in range(form.n_bars):
        if not form.plays("drums", bar):
            continue
        pat = alt if (bar // 8) % 2 else main
        fill_from = bpb
        if fills and bar % 8 == 7 and rng.random() < 0.6 and form.plays("drums", bar + 1):
            fill_from = bpb - int(rng.integers(1, min(3, bpb) + 1)) if bpb > 2 else bpb - 1
        for key, grid in pat.items():
            for off, c in grid_hits(grid, bar, bpb):
                if off >= fill_from or (c in "og" and rng.random() < drop):
                    continue
                if hat_rolls and key == HH and off % 1 == 0 and rng.random() < 0.2:
                    n = int(rng.choice([3, 4, 6, 8]))
                    for j in range(n):
                        score.note(name, HH, bar * bpb + off + j / n, 0.1, 50 + 50 * j / n + rng.normal(0, 5))
                    continue
                score.note(name, key, bar * bpb + off, 0.25, rng.uniform(*HIT_VELOCITY[c]))
        if fill_from < bpb:
            toms = [SNARE, HTOM, MTOM, LTOM, FLOOR]
            steps = (bpb - fill_from) * (4 if sub == 2 else 3)
            for j in range(steps):
                score.note(name, toms[min(j * len(toms) // steps, 4)] if rng.random() < 0.7 else SNARE,
                           bar * bpb + fill_from + j / (4 if sub == 2 else 3), 0.2, 70 + 40 * j / steps)
        starts_section = bar == form.drums_from or (bar - 1) in form.breaks or (bar % 8 == 0 and rng.random() < 0.5)
        if starts_section and bar > 0:
            score.note(name, CRASH, bar * bpb, 1.0, rng.uniform(95, 120))


def add_bass(score: Score, rng: np.random.Generator, form: Form, chords: Chords, patterns: tuple[str, ...],
             programs: tuple[int, ...], register: int = 36, legato: float = 0.85, octaves: bool = False) -> None:
    bpb = score.bpb
    pat = patterns[rng.integers(len(patterns))]
    name = score.part("bass", rng.choice(programs), False, rng.uniform(0.003, 0.012), "bass")
    vel = rng.uniform(80, 105)
    for bar in range(form.n_bars):
        if not form.plays("bass", bar):
            continue
        hits = walk_hits(bpb) if pat == "walk" else grid_hits(pat, bar, bpb)
        for j, (off, c) in enumerate(hits):
            pos = bar * bpb + off
            nxt = hits[j + 1][0] if j + 1 < len(hits) else bpb
            root, pcs = chords.at(pos)
            low = near(root, register + 5)
            if c == "a" or (c == "w" and off == bpb - 1):  # chromatic approach to the next chord
                pitch = near(chords.at(bar * bpb + bpb)[0], register + 5) + int(rng.choice([-1, 1]))
            elif c == "w":
                pitch = low if off == 0 else near(pcs[int(rng.integers(len(pcs)))], low + 5)
            else:
                pitch = low + {"r": 0, "o": 12, "5": 7, "3": 3 if (pcs[1] - root) % 12 == 3 else 4,
                               "7": 10, "6": 9}.get(c, 0)
            dur = (nxt - off) * legato
            score.note(name, pitch, pos, dur, vel + rng.normal(0, 6) + (10 if off == 0 else 0))
            if octaves:
                score.note(name, pitch - 12, pos, dur, vel)


def walk_hits(bpb: int) -> list[tuple[float, str]]:
    return [(float(b), "w") for b in range(bpb)]


def add_comp(score: Score, rng: np.random.Generator, form: Form, chords: Chords, patterns: tuple[str, ...],
             programs: tuple[int, ...], kind: str = "block", register: int = 55, size: int = 4,
             legato: float = 0.9, vel: float = 80, role: str = "comp", name: str = "comp",
             pedal: bool = False) -> None:
    """Chords on a grid: ``block`` (all notes at once), ``strum`` (staggered guitar strums),
    ``arp`` (one note per hit, up and down the chord) or ``arp_wide`` (a left-hand broken chord)."""
    bpb = score.bpb
    pat = patterns[rng.integers(len(patterns))]
    name = score.part(name, rng.choice(programs), False, rng.uniform(0.003, 0.015), role)
    spread = rng.uniform(0.008, 0.02)  # s between strum strings
    step = 0
    for bar in range(form.n_bars):
        if not form.plays(role, bar):
            continue
        hits = grid_hits(pat, bar, bpb)
        for j, (off, c) in enumerate(hits):
            pos = bar * bpb + off
            nxt = hits[j + 1][0] if j + 1 < len(hits) else bpb
            root, pcs = chords.at(pos)
            v = rng.uniform(*HIT_VELOCITY.get(c, (70, 90))) * vel / 90 + (6 if off % 1 == 0 else 0)
            dur = (nxt - off) * legato
            if kind in ("arp", "arp_wide"):
                tones = (wide_tones(root, pcs, register) if kind == "arp_wide" else voice(pcs, register, 2 * size))
                cycle = tones + tones[-2:0:-1]
                p = tones[0] if off == 0 else cycle[step % len(cycle)]
                step = 1 if off == 0 else step + 1
                score.note(name, p, pos, max(dur, 1.0 if pedal else dur), v)
            elif kind == "strum":
                tones = voice(pcs, 40 + (root - 4) % 12 if root % 12 != 4 else 40, 6)
                up = off % 1 != 0
                tones = tones[::-1][:4] if up else tones
                for k, p in enumerate(tones):
                    score.note(name, p, pos + k * spread * 2, dur, v * (0.8 if up else 1.0))
            else:
                for p in voice(pcs, register + int(rng.integers(-2, 3)), size):
                    score.note(name, p, pos, dur, v)
        if pedal and rng.random() < 0.95:
            for b in range(0, bpb, max(1, int(chords.slot))):
                score.ccs += [(name, CC_SUSTAIN, bar * bpb + b + 0.05, 0), (name, CC_SUSTAIN, bar * bpb + b + 0.12, 127)]


def wide_tones(root: int, pcs: tuple[int, ...], register: int) -> list[int]:
    r = near(root, register - 12)
    fifth = r + 7
    third = near(pcs[1], r + 15)
    return [r, fifth, r + 12, third, r + 19 if len(pcs) < 4 else near(pcs[3], r + 22)]


def add_pad(score: Score, rng: np.random.Generator, form: Form, chords: Chords, programs: tuple[int, ...],
            register: int = 55, vel: float = 60, bars: int | None = None) -> None:
    """Held chords, one per chord slot, over the first ``bars`` bars (default: all)."""
    name = score.part("pad", rng.choice(programs), False, 0.01, "pad")
    total = (form.n_bars if bars is None else bars) * score.bpb
    t = 0.0
    while t < total:
        _, pcs = chords.at(t)
        for p in voice(pcs, register, 4):
            score.note(name, p, t, chords.slot * 0.98, vel + rng.normal(0, 4))
        t += chords.slot


def add_melody(score: Score, rng: np.random.Generator, form: Form, chords: Chords, key: int, mode: str,
               programs: tuple[int, ...], register: int = 72, density: float = 1.0, pickup: float = 0.0,
               vel: float = 90, name: str = "melody", jitter: tuple[float, float] = (0.005, 0.02)) -> None:
    bpb, sub = score.bpb, score.sub
    scale = MAJOR if mode == "major" else MINOR
    name = score.part(name, rng.choice(programs), False, rng.uniform(*jitter), "melody")
    cells = SIMPLE_CELLS if sub == 2 else COMPOUND_CELLS
    weights = np.array([w * (density if len(c) > 1 else 1.0) for c, w in cells])
    weights /= weights.sum()
    onsets: list[float] = [-pickup + i * (0.5 if sub == 2 else 1 / 3) for i in range(round(pickup * (2 if sub == 2 else 3)))]
    for bar in range(form.intro, form.n_bars):
        if bar % 4 == 3 and rng.random() < 0.7:  # phrase end: a long note
            onsets.append(bar * bpb)
            continue
        for b in range(bpb):
            cell = cells[rng.choice(len(cells), p=weights)][0]
            if bar == form.intro and b == 0 and 0.0 not in cell:  # the tune starts on its first downbeat
                cell = (0.0,) + tuple(cell)
            onsets += [bar * bpb + b + o for o in cell]
    onsets.append(form.n_bars * bpb)
    deg = int(rng.integers(0, 5))
    base = key + 12 * round((register - key) / 12)
    for j, pos in enumerate(onsets[:-1]):
        deg += int(rng.choice([-2, -1, -1, 0, 1, 1, 2, 3, -3]))
        deg = int(np.clip(deg, -4, 11))
        pitch = base + 12 * (deg // 7) + scale[deg % 7]
        if pos % 1 == 0 and rng.random() < 0.7:
            pitch = min((near(pc, pitch) for pc in chords.at(pos)[1]), key=lambda q: abs(q - pitch))
        dur = min(onsets[j + 1] - pos, bpb) * rng.uniform(0.6, 0.98)
        score.note(name, pitch, pos, dur, vel + rng.normal(0, 7) + (8 if pos % 1 == 0 else 0))


# -- builders ----------------------------------------------------------------------------------------

def fits(pattern: str, bpb: int, sub: int) -> bool:
    """Whether a grid has a whole number of steps per beat that suits the meter (triplets for 6/8, 12/8)."""
    if pattern == "walk":
        return sub == 2
    for seg in pattern.split("|"):
        spb = len(seg) / bpb
        if spb != int(spb) or (int(spb) % 3 != 0 if sub == 3 else int(spb) not in (1, 2, 4, 8)):
            return False
    return True


def _pick_meter(rng: np.random.Generator, style: Style) -> tuple[str, int, int]:
    meter = style.meters[rng.integers(len(style.meters))]
    return (meter, *METERS[meter])


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def build_band(rng: np.random.Generator, style: Style, seconds: float) -> Piece:
    """Drums, bass, comping parts, pad and melody from the style's grids, in a simple form."""
    p = style.params
    meter, bpb, sub = _pick_meter(rng, style)
    bpm = _log_uniform(rng, *style.bpm)
    n_bars = max(4, round(seconds * bpm / 60 / bpb) - 1)
    key, mode = int(rng.integers(12)), "minor" if rng.random() < p.get("minor_p", 0.3) else "major"
    slot = bpb * float(rng.choice(p.get("slots", (1.0,)))) if bpb == 4 else float(bpb)
    chords = make_chords(rng, key, mode, int(n_bars * bpb / slot) + 4, slot, p.get("harmony", "pop"),
                         p.get("seventh_p", 0.2))
    has_drums = bool(p.get("drums")) and rng.random() < p.get("drum_p", 1.0)
    form = make_form(rng, n_bars, p.get("intro_p", 0.2), p.get("break_p", 0.0) if has_drums else 0.0,
                     p.get("late_drums_p", 0.0) if has_drums else 0.0)
    score = Score(bpb, sub, n_bars)
    if has_drums:
        add_drums(score, rng, form, p["drums"], hat_rolls=p.get("hat_rolls", False), machine=p.get("machine", False))
    bass = [b for b in p.get("bass", ()) if fits(b, bpb, sub)]
    if bass:
        add_bass(score, rng, form, chords, tuple(bass), p["bass_programs"], p.get("bass_register", 36),
                 octaves=p.get("bass_octaves", False))
    for i, c in enumerate(p.get("comps", ())):
        pats = tuple(g for g in c["patterns"] if fits(g, bpb, sub))
        if pats:
            add_comp(score, rng, form, chords, pats, c["programs"], c["kind"], c["register"], c["size"],
                     c["legato"], c["vel"], name=f"comp{i}", pedal=c["pedal"])
    if rng.random() < p.get("pad_p", 0.0):
        add_pad(score, rng, form, chords, p.get("pad_programs", PADS + STRINGS))
    elif form.intro:  # the intro needs a sound on its downbeats: a pad or piano alone
        add_pad(score, rng, form, chords, PADS + STRINGS + (0, 4), vel=75, bars=form.intro)
    pickup = 0.0
    if rng.random() < p.get("melody_p", 0.0):
        if form.intro == 0 and rng.random() < 0.3:
            pickup = float(rng.choice([0.5, 1.0, 2.0] if sub == 2 else [1 / 3, 2 / 3, 1.0]))
        add_melody(score, rng, form, chords, key, mode, p.get("melody_programs", LEADS), p.get("melody_register", 72),
                   p.get("melody_density", 1.0), pickup)
    _final_chord(score, rng, chords, key, mode, has_drums)
    tmap, tinfo = make_time_map(rng, bpm, -math.ceil(pickup - 1e-9), n_bars * bpb, bpb,
                                p.get("machine", False), p.get("rubato", False))
    swing = p.get("swing")
    if swing and sub == 2:
        ratio = rng.uniform(*swing) - (0.04 * (bpm - 140) / 80 if bpm > 140 else 0.0)  # fast swing is straighter
        tmap = TimeMap(tmap.first, tmap.starts, tmap.periods, float(max(ratio, 0.5)), p.get("swing_unit", 1.0))
        tinfo["swing"] = round(float(tmap.swing), 3)
    controls: list[tuple[str, int, float, int]] = list(score.ccs)
    if form.intro:
        db = rng.uniform(10, 25)
        value = round(127 * 10 ** (-db / 40))  # FluidSynth's CC11 curve is ~40*log10(value/127) dB
        for name, part in score.parts.items():
            if part.role in ("pad", "comp"):
                controls += [(name, CC_EXPRESSION, float(tmap.first) - 0.5, value),
                             (name, CC_EXPRESSION, form.intro * bpb - 0.05, 127)]
        tinfo["intro_db"] = round(-db, 1)
    info = dict(tinfo, meter=meter, key=key, mode=mode, bars=n_bars, intro_bars=form.intro,
                break_bars=sorted(form.breaks), drums=has_drums, drums_from=form.drums_from, pickup=round(pickup, 3),
                programs={n: pt.program for n, pt in score.parts.items()})
    return _to_piece(score, tmap, rng, style, controls, info, first_label=-math.floor(pickup + 1e-9))


def _final_chord(score: Score, rng: np.random.Generator, chords: Chords, key: int, mode: str, drums: bool) -> None:
    """The tonic on the downbeat after the last bar, held for 2-4 beats."""
    end = score.n_bars * score.bpb
    hold = float(rng.uniform(2, 4))
    pcs = chord_pcs(key, mode, 1)
    for name, part in score.parts.items():
        if part.role in ("comp", "pad", "melody"):
            for pitch in voice(pcs, 55 if part.role != "melody" else 67, 3 if part.role != "melody" else 1):
                score.note(name, pitch, end, hold, 80)
        elif part.role == "bass":
            score.note(name, near(key, 41), end, hold, 90)
        elif part.role == "drums" and drums:
            score.note(name, CRASH, end, 1.0, 110)
            score.note(name, KICK, end, 0.25, 110)


def _to_piece(score: Score, tmap: TimeMap, rng: np.random.Generator, style: Style,
              ccs: list[tuple[str, int, float, int]], info: dict, first_label: int = 0) -> Piece:
    notes: list[Note] = []
    if score.events:
        names, pitches, starts, durs, vels = zip(*score.events)
        t0 = tmap(np.array(starts))
        t1 = tmap(np.array(starts) + np.array(durs))
        for name, pitch, a, b, v in zip(names, pitches, t0, t1, vels):
            part = score.parts[name]
            a = max(0.0, a + rng.normal(0, part.jitter_s))
            notes.append((part.program, part.is_drum, pitch, float(a), float(max(b, a + MIN_NOTE_S)), v))
    controls = [(score.parts[n].program, score.parts[n].is_drum, cc, float(max(tmap(pos), 0.0)), int(v))
                for n, cc, pos, v in ccs]
    beats = tmap(np.arange(first_label, score.n_bars * score.bpb + 1, dtype=np.float64))
    # the time map swings only fractional positions; whole beats stay where the tempo curve puts them
    idx = np.arange(first_label, score.n_bars * score.bpb + 1)
    downbeats = beats[(idx >= 0) & (idx % score.bpb == 0)]
    notes.sort(key=lambda n: n[3])
    return Piece(notes, beats, downbeats, score.bpb, style.category, style.name, info, controls)


def build_chorale(rng: np.random.Generator, style: Style, seconds: float) -> Piece:
    """Four-part homophonic chorale: one chord per beat or per half note, simple voice leading,
    a cadence every 2 or 4 bars, one program (organ, strings, choir, brass) or a mixed ensemble."""
    meter, bpb, sub = _pick_meter(rng, style)
    bpm = _log_uniform(rng, *style.bpm)
    n_bars = max(4, round(seconds * bpm / 60 / bpb) - 1)
    key, mode = int(rng.integers(12)), "minor" if rng.random() < 0.35 else "major"
    per = 1 if bpb == 3 or rng.random() < 0.6 else 2  # beats per chord
    phrase = int(rng.choice([2, 4])) * bpb
    moves = {1: (4, 5, 6, 2, 3), 2: (5, 7, 5), 3: (6, 4), 4: (5, 1, 2, 5), 5: (1, 6, 1), 6: (2, 4, 5), 7: (1,)}
    programs = [int(rng.choice([19, 20, 48, 49, 52, 53, 61, 16, 0]))] * 4
    if rng.random() < 0.3:
        programs = [int(rng.choice(g)) for g in ((73, 68, 40), (71, 41, 68), (70, 60, 42), (70, 42, 58))][::-1]
    score = Score(bpb, sub, n_bars)
    ranges = ((40, 60), (48, 67), (55, 74), (60, 81))
    names = [score.part(f"v{i}", programs[i], False, rng.uniform(0.004, 0.015), "comp") for i in range(4)]
    prev = [48, 55, 64, 72]
    deg = 1
    held = [None] * 4  # index into score.events of the note each voice is holding
    for pos in range(0, n_bars * bpb + 1, per):
        at_end = pos == n_bars * bpb
        cadence = pos % phrase
        if at_end or cadence == phrase - per:
            deg = 1 if at_end or rng.random() < 0.7 else 5
        elif cadence == phrase - 2 * per:
            deg = 5
        else:
            deg = int(rng.choice(moves[deg]))
        pcs = chord_pcs(key, mode, deg, rng.random() < 0.15)
        dur = 2.0 if at_end else float(per)
        for v in range(3, -1, -1):
            lo, hi = ranges[v]
            if v == 0:
                target = pcs[0] if rng.random() < 0.8 else pcs[1]
                cand = [near(target, prev[0])]
            else:
                cand = [near(pc, prev[v]) for pc in pcs]
            cand = [c if lo <= c <= hi else c + 12 * np.sign((lo + hi) / 2 - c) for c in cand]
            pitch = int(min(cand, key=lambda c: abs(c - prev[v]) + (6 if v < 3 and c >= prev[v + 1] else 0)))
            vel = 72 + 10 * (pos % bpb == 0) + rng.normal(0, 4)
            if held[v] is not None and score.events[held[v]][1] == pitch and rng.random() < 0.5:
                n, pch, s0, d0, v0 = score.events[held[v]]
                score.events[held[v]] = (n, pch, s0, d0 + dur, v0)  # tie
            else:
                held[v] = len(score.events)
                score.note(names[v], pitch, pos, dur * 0.97, vel)
            if v == 3 and per == 2 and not at_end and rng.random() < 0.25:  # a passing note in the soprano
                score.note(names[v], pitch + int(rng.choice([-2, -1, 1, 2])), pos + 1, 0.95, vel - 5)
                score.events[held[v]] = score.events[held[v]][:3] + (0.97, score.events[held[v]][4])
                held[v] = None
            prev[v] = pitch
    tmap, tinfo = make_time_map(rng, bpm, 0, n_bars * bpb, bpb, False, True)
    info = dict(tinfo, meter=meter, key=key, mode=mode, bars=n_bars, beats_per_chord=per, programs=programs)
    return _to_piece(score, tmap, rng, style, [], info)


# -- beatless ----------------------------------------------------------------------------------------

def _irregular_times(rng: np.random.Generator, seconds: float, mean_gap: float, start: float = LEAD_S) -> np.ndarray:
    """Onset times with log-normal gaps whose mean wanders: nothing periodic for a tracker to lock on."""
    times, t = [], start
    while t < seconds:
        times.append(t)
        t += mean_gap * float(np.exp(rng.normal(0, 0.6))) * float(np.exp(0.5 * math.sin(t / rng.uniform(3, 9))))
    return np.array(times)


def build_beatless(rng: np.random.Generator, style: Style, seconds: float) -> Piece:
    """Pads, drones, sparse bells or free arpeggio washes; no beats."""
    kind = style.params["kind"]
    key, mode = int(rng.integers(12)), "minor" if rng.random() < 0.5 else "major"
    scale = MAJOR if mode == "major" else MINOR
    notes: list[Note] = []
    controls: list[Control] = []
    end = LEAD_S + seconds

    def add(program: int, pitch: int, a: float, b: float, vel: float) -> None:
        notes.append((program, False, int(pitch), float(a), float(min(max(b, a + 0.2), end + 3)), int(np.clip(vel, 1, 127))))

    if kind in ("pad", "drone"):
        program = int(rng.choice((88, 89, 91, 92, 94, 95, 48, 49, 52) if kind == "pad" else (19, 20, 109, 48, 89, 104)))
        changes = _irregular_times(rng, seconds, rng.uniform(3.0, 9.0))
        if kind == "drone":
            for pitch in (near(key, 43), near(key, 43) + 7):
                add(program, pitch, LEAD_S, end, 80)
            changes = changes[rng.random(len(changes)) < 0.6]
        for a, b in zip(changes, list(changes[1:]) + [end]):
            degree = int(rng.integers(1, 8))
            tones = voice(chord_pcs(key, mode, degree, rng.random() < 0.4), int(rng.integers(50, 60)), 4)
            if kind == "drone":
                tones = [near((key + scale[int(rng.integers(7))]) % 12, rng.uniform(62, 78))]
            for p in tones:
                add(program, p, a + rng.uniform(0, 0.3), b + rng.uniform(0.3, 2.0), rng.uniform(45, 80))
        for t in np.arange(LEAD_S, end, rng.uniform(0.7, 2.0)):  # slow swells
            controls.append((program, False, CC_EXPRESSION, float(t), int(90 + 37 * math.sin(t / rng.uniform(2, 6)) ** 2 - 18)))
    else:
        program = int(rng.choice((14, 8, 9, 10, 11, 112, 98, 12) if kind == "bells" else (46, 0, 8, 11, 24, 4)))
        mean_gap = rng.uniform(0.6, 2.5) if kind == "bells" else rng.uniform(0.12, 0.35)
        onsets = _irregular_times(rng, seconds, mean_gap)
        deg = int(rng.integers(7))
        degree = 1
        for t in onsets:
            if kind == "arp_wash" and rng.random() < 0.05:
                degree = int(rng.integers(1, 8))
            deg = int(np.clip(deg + rng.choice([-2, -1, 1, 2, 3, -3]), 0, 20))
            pitch = key + 48 + 12 * (deg // 7) + scale[deg % 7]
            if kind == "arp_wash":
                pcs = chord_pcs(key, mode, degree)
                pitch = min((near(pc, pitch) for pc in pcs), key=lambda q: abs(q - pitch))
            add(program, pitch, t, t + rng.uniform(0.5, 3.0), rng.uniform(35, 100))
        if kind == "arp_wash":
            controls.append((program, False, CC_SUSTAIN, 0.0, 127))
        if rng.random() < 0.5:  # a soft pad underneath
            pad = int(rng.choice(PADS))
            for p in voice(chord_pcs(key, mode, 1), 48, 3):
                add(pad, p, LEAD_S, end, 45)
    notes.sort(key=lambda n: n[3])
    info = {"key": key, "mode": mode, "kind": kind, "meter": "none"}
    return Piece(notes, np.zeros(0), np.zeros(0), 0, NO_BEAT, style.name, info, controls)


BUILDERS: dict[str, Callable[[np.random.Generator, Style, float], Piece]] = {
    "band": build_band, "chorale": build_chorale, "beatless": build_beatless}  # by ``Style.builder``


def _weighted(rng: np.random.Generator, styles: list[Style]) -> Style:
    w = np.array([s.weight for s in styles], dtype=np.float64)
    return styles[rng.choice(len(styles), p=w / w.sum())]


def compose(category_or_style: str, rng: np.random.Generator, seconds: float) -> Piece:
    """A piece of one style (``STYLES``) or of a style drawn by weight from one category (``CATEGORIES``)."""
    if category_or_style in STYLES:
        style = STYLES[category_or_style]
    elif category_or_style in CATEGORIES:
        style = _weighted(rng, [s for s in STYLE_LIST if s.category == category_or_style])
    else:
        raise ValueError(f"unknown style or category {category_or_style!r}; use one of "
                         f"{sorted(CATEGORIES)} or {sorted(STYLES)}")
    if seconds <= 2:
        raise ValueError(f"seconds={seconds} is too short for a piece; use at least a few seconds")
    return BUILDERS[style.builder](rng, style, float(seconds))


def compose_piece(rng: np.random.Generator, seconds: float) -> Piece:
    """A piece whose style is drawn by the weights of ``STYLE_LIST`` (about 8 % beatless)."""
    return compose(_weighted(rng, list(STYLE_LIST)).name, rng, seconds)
