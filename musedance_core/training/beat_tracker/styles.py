"""The style table of the procedural beat-tracker music: one row per style, data only.

Why a module of its own: the table (per style its grooves, meters, tempo range, General-MIDI programs
and weight) is what one edits to widen the training music, while ``music`` is the engine that
plays a row (harmony, form, parts, time map, labels). The table imports nothing from the
engine: a row names its builder by a string (``Style.builder``: "band", "chorale" or "beatless",
dispatched by ``music.BUILDERS``), so the dependency runs one way only.

Grids are strings with one character per step and ``|`` between bars (a grid of several bars cycles);
a bar's steps are spread evenly over its beats, so ``"X...X...X...X..."`` is four quarters of 4/4 in
sixteenths and ``"xooxoo"`` a bar of 6/8 in eighths. Drum letters are velocities (``X`` accent, ``x``,
``o``, ``g`` ghost; ``.`` rest); bass letters are chord degrees (``r`` root, ``o`` octave, ``3 5 6 7``,
``a`` chromatic approach to the next chord; the pattern ``"walk"`` is a walking bass); comping grids
only place the hits. A style's ``params`` are read by its builder (``music.build_band``: drums,
bass, comps, pad, melody, form and swing knobs; ``build_beatless``: the kind of texture).
"""

from __future__ import annotations

from dataclasses import dataclass

NO_BEAT = "no_beat"  # the category of the beatless styles (no labels, ``beats_per_bar == 0``)

# General-MIDI drum keys (channel 10), by the names the grids use
DRUM_KEYS: dict[str, int] = {
    "KICK": 36, "RIM": 37, "SNARE": 38, "CLAP": 39, "HH": 42, "FLOOR": 41, "PEDAL": 44, "LTOM": 45, "OPEN": 46,
    "MTOM": 47, "CRASH": 49, "HTOM": 50, "RIDE": 51,
    "TAMB": 54, "COWBELL": 56, "BONGO_H": 60, "CONGA_M": 62, "CONGA_O": 63, "CONGA_L": 64, "TIMB_H": 65,
    "AGOGO": 67, "MARACAS": 70, "GUIRO": 73, "CLAVES": 75,
}

# General-MIDI program families (PADS and STRINGS are also the engine's default pad sounds)
KEYS, GUITARS = (0, 1, 4, 5, 7), (25, 26, 27, 28, 29, 30)
SYNTH_BASS, BASSES = (38, 39, 87), (32, 33, 34, 35, 36)
PADS, STRINGS = (88, 89, 90, 91, 92, 94, 95), (48, 49, 50)

# grids shared by several styles
EIGHTHS, HATS16 = "x.o.x.o.x.o.x.o.", "xoxoxoxoxoxoxoxo"
BACKBEAT = "....X.......X..."
FOUR_FLOOR = "X...X...X...X..."
STACCATO = 0.35  # comping legato: short chops


@dataclass(frozen=True)
class Style:
    """One style: its category, weight in ``compose_piece``, tempo range, meters, builder and knobs."""

    name: str
    category: str
    weight: float
    bpm: tuple[float, float]  # of the labelled beat
    meters: tuple[str, ...]
    builder: str  # a key of ``music.BUILDERS``: "band", "chorale" or "beatless"
    params: dict


def _k(**grids: str) -> dict[int, str]:
    """A drum pattern from named grids: _k(KICK='x...', SNARE='..x.') -> {36: 'x...', 38: '..x.'}."""
    return {DRUM_KEYS[name]: grid for name, grid in grids.items()}


def _band_style(name: str, category: str, weight: float, bpm: tuple[float, float], meters: tuple[str, ...],
                **params) -> Style:
    return Style(name, category, weight, bpm, meters, "band", params)


def _chorale_style(name: str, weight: float, bpm: tuple[float, float], meters: tuple[str, ...], **params) -> Style:
    return Style(name, "drumless", weight, bpm, meters, "chorale", params)


def _comp(patterns: tuple[str, ...], programs: tuple[int, ...], kind: str = "block", register: int = 55,
          legato: float = 0.9, size: int = 4, vel: float = 80, pedal: bool = False) -> dict:
    """A comping part for ``_band_style(comps=...)``; ``kind`` as in ``music.add_comp``."""
    return {"patterns": patterns, "programs": programs, "kind": kind, "register": register, "legato": legato,
            "size": size, "vel": vel, "pedal": pedal}


STYLE_LIST: tuple[Style, ...] = (
    # four on the floor
    _band_style("house", "four_floor", 3, (118, 128), ("4/4",), machine=True, intro_p=0.5, break_p=0.6, drums=(
        _k(KICK=FOUR_FLOOR, CLAP="....x.......x...", OPEN="..x...x...x...x."),
        _k(KICK=FOUR_FLOOR, SNARE="....x.......x...", HH=HATS16),
        _k(KICK=FOUR_FLOOR, CLAP="....x.......x...", HH="..x...x...x...x.", MARACAS="gogogogogogogogo")),
        bass=("..r...r...r...r.", "r..r..r.r..r..r.", ".rr..rr..rr..rr."), bass_programs=SYNTH_BASS + (33,),
        comps=(_comp(("...x..x....x..x.", "..x...x...x...x.", "x..x..x.x..x..x."), KEYS + (81, 90), legato=0.4),),
        pad_p=0.5, melody_p=0.3),
    _band_style("techno", "four_floor", 2, (124, 140), ("4/4",), machine=True, intro_p=0.4, break_p=0.6, drums=(
        _k(KICK=FOUR_FLOOR, HH="..x...x...x...x.", RIDE="o.o.o.o.o.o.o.o."),
        _k(KICK=FOUR_FLOOR, CLAP="....x.......x...", HH="gogogogogogogogo", OPEN="..x...x...x...x.")),
        bass=("..r...r...r...r.", "r.rr.rr.r.rr.rr."), bass_programs=SYNTH_BASS, minor_p=0.8,
        comps=(_comp(("x..x..x..x..x.x.", "..x..x..x..x..x."), (80, 81, 62, 90), legato=0.3, size=3),),
        pad_p=0.6, melody_p=0.1),
    _band_style("disco", "four_floor", 2, (108, 126), ("4/4",), intro_p=0.3, break_p=0.4, drums=(
        _k(KICK=FOUR_FLOOR, SNARE="....x.......x...", OPEN="..x...x...x...x.", HH="x...x...x...x..."),
        _k(KICK=FOUR_FLOOR, CLAP=BACKBEAT, HH=HATS16, TAMB="....x.......x...")),
        bass=("r.o.r.o.r.o.r.o.", "r..o.r.or..o.r.o"), bass_programs=BASSES,
        comps=(_comp(("..x...x...x...x.", "x.xx.x.xx.xx.x.x"), GUITARS[:3] + KEYS, legato=0.4),),
        pad_p=0.6, pad_programs=STRINGS, melody_p=0.5),
    # backbeat
    _band_style("pop", "backbeat", 4, (80, 132), ("4/4",), intro_p=0.45, break_p=0.4, drums=(
        _k(KICK="X.......X.x.....", SNARE=BACKBEAT, HH=EIGHTHS),
        _k(KICK="X..x....X.......", SNARE=BACKBEAT, HH="x.x.x.x.x.x.x.x."),
        _k(KICK=FOUR_FLOOR, SNARE=BACKBEAT, HH="..x...x...x...x.", TAMB="....x.......x...")),
        bass=("r.r.r.r.r.r.r.r.", "r.....r.r.....r.", "r..r..r.r..r..r."), bass_programs=BASSES + (38,),
        comps=(_comp(("x.x.x.x.x.x.x.x.", "x..x..x...x..x..", "x...x...x...x..."), KEYS + GUITARS[:4]),),
        pad_p=0.4, melody_p=0.7, slots=(0.5, 1.0)),
    _band_style("rock", "backbeat", 3, (95, 160), ("4/4",), intro_p=0.3, break_p=0.35, drums=(
        _k(KICK="X.......X.......", SNARE=BACKBEAT, HH="x.x.x.x.x.x.x.x."),
        _k(KICK="X.....x.X.......", SNARE=BACKBEAT, RIDE="x.x.x.x.x.x.x.x."),
        _k(KICK="X.x.....X.x.....", SNARE=BACKBEAT, OPEN="x.x.x.x.x.x.x.x.")),
        bass=("r.r.r.r.r.r.r.r.",), bass_programs=(33, 34),
        comps=(_comp(("x.x.x.x.x.x.x.x.", "x...x...x...x...", "x..x..x.x..x..x."), (29, 30, 18), register=45,
                     size=3),), melody_p=0.5, minor_p=0.4),
    _band_style("punk", "backbeat", 1, (160, 210), ("4/4",), break_p=0.2, drums=(
        _k(KICK="X...x...X...x...", SNARE=BACKBEAT, HH="x.x.x.x.x.x.x.x."),
        _k(KICK=FOUR_FLOOR, SNARE=BACKBEAT, CRASH="o...o...o...o...")),
        bass=("r.r.r.r.r.r.r.r.",), bass_programs=(34,),
        comps=(_comp(("x.x.x.x.x.x.x.x.",), (29, 30), register=45, size=3, legato=0.8),), melody_p=0.4),
    _band_style("metal", "backbeat", 2, (90, 180), ("4/4",), intro_p=0.3, break_p=0.3, minor_p=1.0, drums=(
        _k(KICK="xxxxxxxxxxxxxxxx", SNARE=BACKBEAT, CRASH="x...x...x...x..."),
        _k(KICK="X.xxX.xxX.xxX.xx", SNARE=BACKBEAT, HH="x.x.x.x.x.x.x.x."),
        _k(KICK="xxxxxxxxxxxxxxxx", SNARE="........X.......", RIDE="x...x...x...x...")),
        bass=("rrrrrrrrrrrrrrrr", "r.rrr.rrr.rrr.rr"), bass_programs=(34, 33),
        comps=(_comp(("x.xxx.xxx.xxx.xx", "x...x...x...x..."), (30, 29), register=40, size=2, legato=0.7),),
        melody_p=0.3, melody_programs=(30, 81)),
    _band_style("ballad", "backbeat", 3, (58, 84), ("4/4",), intro_p=0.7, late_drums_p=0.7, break_p=0.3, drums=(
        _k(KICK="X.......x.......", RIM="....x.......x...", HH="o.o.o.o.o.o.o.o."),
        _k(KICK="X.....x.........", SNARE="....x.......x...", HH="o...o...o...o..."),
        _k(KICK="X.......X.......", SNARE="........x.......", RIDE="o.o.o.o.o.o.o.o.")),
        bass=("r.......r.......", "r.........r.5..."), bass_programs=(32, 33, 35),
        comps=(_comp(("x.x.x.x.x.x.x.x.",), (0, 1, 4), kind="arp", register=52, pedal=True),),
        pad_p=0.6, pad_programs=STRINGS + PADS, melody_p=0.8, melody_programs=(0, 73, 40, 65, 53, 71)),
    _band_style("boom_bap", "backbeat", 3, (82, 100), ("4/4",), swing=(0.52, 0.6), swing_unit=0.5, intro_p=0.3,
                break_p=0.4, drums=(
        _k(KICK="X......x..x.....", SNARE="....X.......X...", HH=EIGHTHS),
        _k(KICK="X..x......X..x..", SNARE="....X.......X...", HH="x.x.x.x.x.x.x.xo"),
        _k(KICK="X.x.......x.....|X.x.......x..x..", SNARE="....X.......X...|....X.......X..g", HH="x.x.x.x.x.x.x.x.")),
        bass=("r......r..r.....", "r.........r....."), bass_programs=(33, 32, 38),
        comps=(_comp(("x.......x.......", "x.....x.....x..."), (4, 0, 11, 48, 26), legato=0.8),),
        melody_p=0.3, melody_programs=(4, 11, 73, 56)),
    _band_style("trap", "backbeat", 3, (128, 160), ("4/4",), machine=True, hat_rolls=True, intro_p=0.5, break_p=0.5,
                minor_p=0.9, drums=(
        _k(KICK="X.....x...x..x..", SNARE="........X.......", HH="x.x.x.x.x.x.x.x."),
        _k(KICK="X......x..X.....|X.....x.x.....x.", CLAP="........X.......", HH="x.x.x.x.x.x.x.x.")),
        bass=("r.....r...r..r..", "r.......r.......", "r......r..r....."), bass_programs=(38, 87, 39),
        comps=(_comp(("x.......x.......", "x...............", "x..x..x.x..x..x."), (0, 10, 8, 11, 81, 48, 90),
                     legato=0.9, size=3),), melody_p=0.4, melody_programs=(10, 8, 81, 73)),
    _band_style("funk", "backbeat", 3, (88, 118), ("4/4",), swing=(0.5, 0.56), swing_unit=0.5, break_p=0.4, drums=(
        _k(KICK="X..x..x...x..x..", SNARE="....X..g.g..X..g", HH=HATS16),
        _k(KICK="X.x....x..x.....", SNARE="..g.X.g..g.gX.g.", HH="x.x.x.x.x.x.x...", OPEN="..............x."),
        _k(KICK="X......x.xX.....", SNARE="....X.g.....X.g.", HH="XoxoXoxoXoxoXoxo")),
        bass=("r..r..o...r.r7..", "r.r...o.r..5.r..", "r...o.r.r.....o."), bass_programs=(36, 33, 34),
        comps=(_comp(("..x.x..x..x.x..x", "x.xx..x.x.xx..x.", ".x.x.x.x.x.x.x.x"), (28, 27, 7), legato=STACCATO,
                     size=3, register=60),), pad_p=0.3, pad_programs=(61, 62, 16), melody_p=0.4, seventh_p=0.7),
    _band_style("breakbeat", "backbeat", 2, (118, 140), ("4/4",), machine=True, break_p=0.5, drums=(
        _k(KICK="X.x.......xx....", SNARE="....X..g.g..X..g", HH="x.x.x.x.x.x.x.x."),
        _k(KICK="X.........X.....", SNARE=BACKBEAT, HH=HATS16, OPEN="..............x.")),
        bass=("r.....r...r.....", "r..r......r....."), bass_programs=SYNTH_BASS + (33,),
        comps=(_comp(("x.......x.......", "..x...x...x...x."), (81, 80, 62, 4), legato=0.5, size=3),),
        pad_p=0.5, melody_p=0.3),
    _band_style("drum_n_bass", "backbeat", 2, (160, 178), ("4/4",), machine=True, intro_p=0.5, break_p=0.5, drums=(
        _k(KICK="X.........X.....", SNARE=BACKBEAT, HH="x.x.x.x.x.x.x.x."),
        _k(KICK="X.........x.x...", SNARE="....X..g....X...", HH=HATS16)),
        bass=("r.......r.......", "r.........r....."), bass_programs=(38, 39, 87),
        pad_p=0.8, pad_programs=PADS, melody_p=0.3, minor_p=0.8),
    _band_style("jungle", "backbeat", 1, (158, 176), ("4/4",), machine=True, break_p=0.5, drums=(
        _k(KICK="X.x.......xx....", SNARE="....X..x.x.gX..x", RIDE="x.x.x.x.x.x.x.x."),
        _k(KICK="X.x.......x.....|X.x.....x.x.....", SNARE="....X..g.g.XX..g|.g..X..g.g..X...", HH=HATS16)),
        bass=("r...............", "r.......r......."), bass_programs=(38, 39), pad_p=0.8, pad_programs=PADS,
        minor_p=0.8),
    # latin, afro, caribbean
    _band_style("reggae_one_drop", "latin_afro", 3, (62, 88), ("4/4",), swing=(0.55, 0.67), intro_p=0.3,
                break_p=0.3, drums=(
        _k(KICK="........X.......", RIM="........X.......", HH="x.x.x.x.x.x.x.x."),
        _k(KICK="........X.......", SNARE="........X.......", HH="x.o.x.o.x.o.x.o.", OPEN="..............x.")),
        bass=(".r..r.5.....a...", "....r.r.5...r...", "r.....r.5.6.5...", "..r.r...5.5.r..."), bass_programs=(33, 32, 38),
        comps=(_comp(("....x.......x...",), (27, 28, 26), legato=STACCATO, size=3, register=60),
               _comp(("..x...x...x...x.", "..xx..xx..xx..xx"), (16, 17, 4), legato=0.4, size=3, register=60, vel=60)),
        melody_p=0.4, melody_programs=(56, 65, 16, 53)),
    _band_style("ska", "latin_afro", 1, (120, 175), ("4/4",), break_p=0.3, drums=(
        _k(KICK="X.......X.......", SNARE=BACKBEAT, HH="x.x.x.x.x.x.x.x."),
        _k(KICK=FOUR_FLOOR, SNARE=BACKBEAT, HH="..x...x...x...x.")),
        bass=("walk",), bass_programs=(32, 33),
        comps=(_comp(("..x...x...x...x.",), (27, 28, 16), legato=STACCATO, size=3, register=60),),
        melody_p=0.6, melody_programs=(56, 57, 65, 66)),
    _band_style("afrobeat", "latin_afro", 2, (98, 126), ("4/4",), break_p=0.3, drums=(
        _k(KICK="X.....x...x.....", SNARE="....x..g.g..x..g", OPEN="..x...x...x...x.", MARACAS="gogogogogogogogo",
           COWBELL="x..x..x...x.x..."),
        _k(KICK="X..x....X..x....", SNARE="....X......gX...", HH=HATS16, CLAVES="..x..x....x..x..")),
        bass=("r..r..5.r.....7.", "r.....r.5..r..o."), bass_programs=(33, 32),
        comps=(_comp(("x.xx.x.x.xx.x.x.", ".xx.x.xx.x.xx.x."), (28, 27), kind="arp", legato=STACCATO, register=62),
               _comp(("x...............",), (16, 17, 61), legato=0.9, size=3, vel=60)),
        melody_p=0.5, melody_programs=(56, 61, 65), minor_p=0.6),
    _band_style("bossa_nova", "latin_afro", 2, (108, 145), ("4/4",), intro_p=0.3, break_p=0.2, drums=(
        _k(RIM="x..x..x...x..x..|..x..x...x..x...", KICK="X.....x.X.....x.", HH="gogogogogogogogo"),
        _k(RIM="x..x..x...x..x..|..x..x...x..x...", KICK="X.....x.X.....x.", HH="x.o.x.o.x.o.x.o.")),
        bass=("r.....5.r.....5.",), bass_programs=(32, 33, 35),
        comps=(_comp(("x..x..x...x..x..|..x..x...x..x...", "x.x..x.x..x..x.."), (24, 26, 0, 4), legato=0.7),),
        melody_p=0.7, melody_programs=(73, 65, 0, 24, 53), seventh_p=0.8, slots=(1.0, 2.0)),
    _band_style("samba", "latin_afro", 2, (92, 130), ("2/4",), break_p=0.2, drums=(
        _k(FLOOR="o...X...", KICK="o...X...", MARACAS="XooxXoox", RIM="x.xx.x.x|.xx.x.xx"),
        _k(FLOOR="o...X...", MARACAS="XoooXooo", AGOGO="x.x..x.x|.x.x.x..", TAMB="x.xx.xx.")),
        bass=("r...5...", "r..55..."), bass_programs=(32, 33),
        comps=(_comp(("x.xx.x.x|.xx.x.xx", "x..x..x."), (24, 25, 105), legato=0.5, size=3),),
        melody_p=0.5, melody_programs=(73, 56, 65), slots=(2.0,)),
    _band_style("salsa_clave", "latin_afro", 2, (150, 205), ("4/4",), break_p=0.2, drums=(
        _k(CLAVES="x..x..x.|..x.x...", COWBELL="X.x.X.x.", CONGA_O="......xx", CONGA_M="..x.....",
           TIMB_H="x.xx.xx.|x.x.xx.x"),
        _k(CLAVES="..x.x...|x..x..x.", COWBELL="X.x.X.x.", CONGA_O="......xx", CONGA_M="..x.....",
           GUIRO="x.xxx.xx")),
        bass=("...r..5.",), bass_programs=(32, 33),
        comps=(_comp(("x.xx.x.x|.xx.x.xx", "x.x.xx.x"), (0, 1), kind="arp", register=60, legato=0.6),),
        melody_p=0.6, melody_programs=(56, 61, 57), minor_p=0.5),
    _band_style("cumbia", "latin_afro", 2, (84, 112), ("4/4",), break_p=0.2, drums=(
        _k(GUIRO="x.xxx.xxx.xxx.xx", KICK="X.......X.......", CONGA_O="..x...x...x...x."),
        _k(GUIRO="x.xxx.xxx.xxx.xx", KICK="X...X...X...X...", CONGA_L="......x.......x.", TIMB_H="....x.......x...")),
        bass=("r.......5.......", "r...5...r...5..."), bass_programs=(32, 33),
        comps=(_comp(("..x...x...x...x.",), (21, 16, 24), legato=STACCATO, size=3),),
        melody_p=0.7, melody_programs=(21, 73, 75, 56)),
    # swing
    _band_style("shuffle_blues", "swing", 3, (78, 132), ("4/4",), swing=(0.62, 0.72), harmony="blues", drums=(
        _k(KICK="X...x...", SNARE="..X...X.", HH="xoxoxoxo"),
        _k(KICK="X..xX..x", SNARE="..X...X.", RIDE="xoxoxoxo")),
        bass=("r.3.5.6.|7.6.5.3.", "r.r.5.5.|6.6.5.5."), bass_programs=(32, 33),
        comps=(_comp(("x.x.x.x.", "..x...x.", "xxxxxxxx"), (0, 26, 16, 29), legato=0.5, size=3),),
        melody_p=0.6, melody_programs=(22, 65, 26, 56)),
    _band_style("jazz_swing", "swing", 3, (100, 220), ("4/4",), swing=(0.56, 0.68), seventh_p=0.9, drums=(
        _k(RIDE="x.xxx.xx", PEDAL="..x...x.", KICK="g.g.g.g."),
        _k(RIDE="x.xxx.xx", PEDAL="..x...x.", SNARE="...g....|.....g.g")),
        bass=("walk",), bass_programs=(32,),
        comps=(_comp(("...x..x.|.x....x.", "x.....x.|..x.x...", ".x...x..|x..x...."), (0, 4, 26, 11), legato=0.7,
                     size=4, register=52),), melody_p=0.7, melody_programs=(65, 66, 56, 57, 73, 11)),
    # compound meters: the labelled beat is the dotted quarter
    _band_style("blues_12_8", "compound", 2, (50, 76), ("12/8",), harmony="blues", intro_p=0.3, drums=(
        _k(KICK="X.....x.....", SNARE="...X.....X..", HH="xooxooxooxoo"),
        _k(KICK="X..x..x.....", SNARE="...X.....X..", RIDE="xooxooxooxoo")),
        bass=("r..3..5..6..", "r..5..6..5.."), bass_programs=(32, 33),
        comps=(_comp(("xooxooxooxoo", "x.ox.ox.ox.o"), (0, 16, 26), legato=0.8, size=3, register=58),),
        melody_p=0.7, melody_programs=(26, 65, 22, 29)),
    _band_style("doo_wop", "compound", 2, (54, 86), ("12/8",), intro_p=0.4, drums=(
        _k(KICK="X.....X.....", SNARE="...X.....X..", HH="xooxooxooxoo"),
        _k(KICK="X.....X.....", RIM="...X.....X..", RIDE="xooxooxooxoo")),
        bass=("r..3..5..6..", "r.....5....."), bass_programs=(32, 33),
        comps=(_comp(("xxxxxxxxxxxx",), (0, 1), legato=0.8, size=3, register=64, vel=70),),
        pad_p=0.6, pad_programs=(52, 53), melody_p=0.8, melody_programs=(65, 53, 64, 0)),
    _band_style("jig", "compound", 2, (96, 130), ("6/8",), drum_p=0.4, drums=(
        _k(LTOM="X.xx.x", FLOOR="x....."), _k(LTOM="X.xX.x|X.xxxx")),
        bass=("r..5..",), bass_programs=(32, 24),
        comps=(_comp(("x.xx.x", "x..x.."), (24, 25, 105), kind="strum", legato=0.7),),
        melody_p=1.0, melody_density=3.0, melody_programs=(40, 73, 74, 109, 21, 22), melody_register=76),
    _band_style("tarantella", "compound", 2, (108, 160), ("6/8",), minor_p=0.8, drum_p=0.7, drums=(
        _k(TAMB="Xooxoo", KICK="X..x.."), _k(TAMB="XxxXxx")),
        bass=("r..5..", "r..r.."), bass_programs=(32, 58),
        comps=(_comp((".xx.xx",), (21, 24, 0), legato=0.6, size=3),),
        melody_p=1.0, melody_density=3.0, melody_programs=(40, 73, 21, 105)),
    _band_style("ballad_6_8", "compound", 2, (50, 72), ("6/8",), intro_p=0.6, late_drums_p=0.6, drum_p=0.8, drums=(
        _k(KICK="X.....|X..x..", RIM="...x..", HH="xooxoo"),
        _k(KICK="X.....", SNARE="...x..", RIDE="xooxoo")),
        bass=("r.....", "r..5.."), bass_programs=(32, 33, 35),
        comps=(_comp(("xxxxxx",), (0, 1, 24, 46), kind="arp", register=52, pedal=True),),
        pad_p=0.6, pad_programs=STRINGS + PADS, melody_p=0.8, melody_programs=(0, 40, 73, 53, 65)),
    # triple meters
    _band_style("jazz_waltz", "triple", 2, (120, 185), ("3/4",), swing=(0.56, 0.66), seventh_p=0.9, drums=(
        _k(RIDE="x.xxx.", PEDAL="..x.x.", KICK="g....."),), bass=("r.5.3.", "walk"), bass_programs=(32,),
        comps=(_comp(("..x.x.", ".x..x."), (0, 4, 26), legato=0.6, register=52),),
        melody_p=0.8, melody_programs=(65, 66, 73, 11, 56)),
    _band_style("viennese_waltz", "triple", 2, (150, 200), ("3/4",), drum_p=0.2, drums=(
        _k(RIDE="..o.o.", KICK="o....."),), bass=("r.....",), bass_programs=(45, 58, 43, 32),
        comps=(_comp(("..x.x.",), (48, 60, 0, 61), legato=0.5, size=3, register=60),),
        melody_p=1.0, melody_programs=(40, 73, 48, 68, 60)),
    _band_style("folk_waltz", "triple", 2, (88, 145), ("3/4",), drum_p=0.6, drums=(
        _k(KICK="X.....", SNARE="..o.o."), _k(KICK="X.....", RIM="..o.o.", HH="x.x.x.")),
        bass=("r...5.", "r....."), bass_programs=(32, 58, 33),
        comps=(_comp(("..x.x.",), (21, 24, 25, 0), legato=0.6, size=3),),
        melody_p=1.0, melody_programs=(21, 40, 22, 73, 71)),
    # duple (2/4)
    _band_style("polka", "duple", 2, (100, 140), ("2/4",), drums=(
        _k(KICK="X...x...", SNARE="..x...x."), _k(KICK="X...x...", CRASH="..o...o.")),
        bass=("r...5...",), bass_programs=(58, 32),
        comps=(_comp(("..x...x.",), (21, 61, 0), legato=STACCATO, size=3),),
        melody_p=1.0, melody_programs=(71, 21, 56, 22)),
    _band_style("march", "duple", 2, (100, 126), ("2/4",), drums=(
        _k(KICK="X...x...", SNARE="x.xxx.x.|x.xxx.xx", CRASH="o...o..."),
        _k(KICK="X...X...", SNARE="x.x.xxx.")),
        bass=("r...5...",), bass_programs=(58, 57),
        comps=(_comp(("..x...x.",), (61, 60, 57), legato=STACCATO, size=3),),
        melody_p=1.0, melody_programs=(56, 72, 73, 61)),
    # drumless: a listener still taps along
    _chorale_style("chorale", 5, (56, 100), ("4/4", "3/4")),
    _band_style("quartet_minuet", "drumless", 2, (96, 140), ("3/4",), rubato=True,
                bass=("r.....", "r...r."), bass_programs=(42,), bass_register=40,
                comps=(_comp(("..x.x.",), (41, 40), legato=0.6, size=2, register=55),),
                melody_p=1.0, melody_programs=(40,)),
    _band_style("quartet_allegro", "drumless", 2, (104, 150), ("4/4",), rubato=True,
                bass=("rrrrrrrr", "r.r.r.r."), bass_programs=(42,), bass_register=40,
                comps=(_comp(("xxxxxxxx", "x.x.x.x."), (41, 40), legato=0.7, size=2, register=55, vel=65),),
                melody_p=1.0, melody_programs=(40,)),
    _band_style("quartet_presto", "drumless", 2, (96, 140), ("6/8",), rubato=True,
                bass=("r..5..", "r..r.."), bass_programs=(42,), bass_register=40,
                comps=(_comp((".xx.xx",), (41, 40), legato=0.6, size=2, register=55),),
                melody_p=1.0, melody_density=2.0, melody_programs=(40,)),
    _band_style("piano_ballad", "drumless", 3, (58, 82), ("4/4", "3/4"), rubato=True, intro_p=0.0,
                comps=(_comp(("x.x.x.x.x.x.x.x.", "xxxxxxxx", "xxxxxx"), (0, 1, 4), kind="arp_wide", register=48,
                             pedal=True),),
                melody_p=1.0, melody_programs=(0,), melody_register=74),
    _band_style("stride", "drumless", 2, (90, 180), ("4/4",), swing=(0.5, 0.62),
                bass=("r...5...",), bass_programs=(0,), bass_register=36, bass_octaves=True,
                comps=(_comp(("..x...x.",), (0,), legato=0.5, size=3, register=55),),
                melody_p=1.0, melody_programs=(0,), melody_density=1.5),
    _band_style("nocturne", "drumless", 2, (52, 76), ("4/4", "12/8"), rubato=True,
                comps=(_comp(("xxxxxxxx", "xxxxxxxxxxxx"), (0,), kind="arp_wide", register=48, pedal=True, vel=65),),
                melody_p=1.0, melody_programs=(0,), melody_density=0.6, melody_register=76),
    _band_style("piano_march", "drumless", 1, (96, 126), ("2/4", "4/4"),
                bass=("r...5...",), bass_programs=(0,), bass_register=40, bass_octaves=True,
                comps=(_comp(("..x...x.",), (0,), legato=STACCATO, size=3, register=56),),
                melody_p=1.0, melody_programs=(0,)),
    _band_style("lone_melody", "drumless", 3, (66, 150), ("4/4", "3/4", "6/8", "2/4"), rubato=True,
                melody_p=1.0, melody_density=1.3, melody_programs=(73, 40, 78, 71, 72, 75, 65, 22, 79, 68, 74)),
    _band_style("guitar_strum", "drumless", 2, (76, 144), ("4/4", "3/4", "6/8"),
                bass=("r.......", "r.....", "r....."), bass_programs=(25, 24), bass_register=40,
                comps=(_comp(("x.xx.xxx", "x.x.x.x.", "x.xxxx", "x.xx.x"), (25, 24), kind="strum", legato=0.9),),
                melody_p=0.3, melody_programs=(53, 73, 22)),
    _band_style("harp_arp", "drumless", 2, (60, 112), ("4/4", "3/4", "6/8"), rubato=True,
                bass=("r.......", "r.....", "r....."), bass_programs=(46,), bass_register=36,
                comps=(_comp(("xxxxxxxxxxxxxxxx", "xxxxxxxx", "xxxxxx"), (46,), kind="arp", register=55, size=4),),
                melody_p=0.4, melody_programs=(73, 40, 46)),
    _band_style("polonaise", "drumless", 1, (78, 100), ("3/4",), rubato=True,
                bass=("r...r...r...", "r.......5..."), bass_programs=(42, 0, 58), bass_register=38,
                comps=(_comp(("x.xxx.x.x.x.",), (48, 0, 61, 60), legato=0.6, size=4, register=55),),
                melody_p=1.0, melody_programs=(40, 0, 73, 56)),
    # beatless: pads, drones, bells, free arpeggio washes (about 8 % of the weight)
    *(Style(f"beatless_{kind}", NO_BEAT, w, (0.0, 0.0), ("none",), "beatless", {"kind": kind})
      for kind, w in (("pad", 3.0), ("drone", 2.0), ("bells", 2.0), ("arp_wash", 2.5))),
)
STYLES: dict[str, Style] = {s.name: s for s in STYLE_LIST}
CATEGORIES: tuple[str, ...] = tuple(dict.fromkeys(s.category for s in STYLE_LIST))
