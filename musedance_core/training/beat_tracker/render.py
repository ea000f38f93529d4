"""Render a composed ``music.Piece`` with FluidSynth, then augment it, keeping the labels exact.

Why: a beat tracker trained on clean synthesiser output learns the synthesiser. Each piece is played
through one of several General-MIDI soundfonts (FluidR3_GM is held out for evaluation and refused
here) and then degraded the way real recordings are: level, EQ or telephone band, room reverb, noise
(white, pink, brown, mains hum, crowd babble), compression or clipping, a lossy codec round trip
(mp3, aac, opus) and a random cut of the start, so pieces do not begin on a downbeat.

Labels stay exact: filters are zero-phase, the reverb's direct path is at lag 0, the codec's delay
is measured by cross-correlation with its input and removed (it is reported in the info), and the
start cut shifts the labels by exactly the samples removed.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from .music import Piece

SAMPLE_RATE = 22050
SYNTH_RATE = 44100
DEFAULT_SOUNDFONTS = (
    Path("/usr/share/sounds/sf3/MuseScore_General.sf3"),
    Path("/usr/share/sounds/sf2/TimGM6mb.sf2"),
    Path("/usr/share/sounds/sf2/OPL-3_FM_128M.sf2"),
)
SOUNDFONT_PACKAGES = {"MuseScore_General": "musescore-general-soundfont", "TimGM6mb": "timgm6mb-soundfont",
                      "OPL-3_FM_128M": "opl3-soundfont"}
HELD_OUT_SOUNDFONTS = ("FluidR3_GM",)  # the evaluation set's soundfont: never train on it
MIDI_TAIL_S = 1.5  # rendered past the last note so releases and reverb tails are kept
SILENCE_PEAK = 1e-5
MAX_OFFSET_S = 10.0
MAX_CODEC_LAG = 4096  # samples searched for the codec delay (aac priming is 1024-2112)
CODECS = {  # name: (container, encoder, encoder sample rate, bit rates in kbps)
    "mp3": ("mp3", "libmp3lame", SAMPLE_RATE, (64, 96, 128, 160)),
    "aac": ("adts", "aac", SAMPLE_RATE, (48, 64, 96, 128)),
    "opus": ("ogg", "libopus", 48000, (24, 32, 48, 64, 96)),
}
NOISES = ("white", "pink", "brown", "hum", "babble")


class RenderError(RuntimeError):
    """FluidSynth or a soundfont is missing, or a render failed."""


def check_tools(fluidsynth: str, soundfonts) -> str:
    """The FluidSynth executable's path; raises ``RenderError`` naming the package to install when the
    executable or a soundfont is missing, or when a soundfont is the held-out evaluation one."""
    exe = shutil.which(fluidsynth)
    if exe is None:
        raise RenderError(f"FluidSynth executable {fluidsynth!r} not found; install it with "
                          "`sudo apt-get install fluidsynth` or pass --fluidsynth /path/to/fluidsynth")
    for sf in map(Path, soundfonts):
        real = sf.resolve()
        if any(h in real.name or h in sf.name for h in HELD_OUT_SOUNDFONTS):
            raise RenderError(f"soundfont {sf} ({real.name}) is held out for evaluation; train with others, "
                              f"e.g. {', '.join(str(s) for s in DEFAULT_SOUNDFONTS)}")
        if not real.is_file():
            package = next((p for k, p in SOUNDFONT_PACKAGES.items() if k in sf.name), None)
            hint = f"`sudo apt-get install {package}`" if package else "install it or pass another --soundfonts"
            raise RenderError(f"soundfont {sf} not found; {hint}")
    return exe


def write_midi(piece: Piece, path: Path) -> None:
    """A MIDI file in absolute seconds (pretty_midi's default tempo map; the labels are in seconds)."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(resolution=960, initial_tempo=120.0)
    instruments: dict[tuple[int, bool], pretty_midi.Instrument] = {}

    def inst(program: int, is_drum: bool) -> pretty_midi.Instrument:
        if (program, is_drum) not in instruments:
            instruments[(program, is_drum)] = pretty_midi.Instrument(program=program, is_drum=is_drum)
        return instruments[(program, is_drum)]

    for program, is_drum, pitch, start, end, vel in piece.notes:
        inst(program, is_drum).notes.append(pretty_midi.Note(velocity=int(vel), pitch=int(pitch),
                                                             start=float(start), end=float(end)))
    for program, is_drum, cc, time, value in piece.controls:
        inst(program, is_drum).control_changes.append(pretty_midi.ControlChange(int(cc), int(value), float(time)))
    if len(instruments) > 15:
        raise RenderError(f"piece {piece.style!r} uses {len(instruments)} programs; MIDI has 15 melodic channels")
    last = next(iter(instruments.values()))
    last.control_changes.append(pretty_midi.ControlChange(3, 0, piece.duration + MIDI_TAIL_S))  # CC3: unused, extends the file
    pm.instruments = list(instruments.values())
    pm.write(str(path))


def synthesize(piece: Piece, soundfont: Path, fluidsynth: str, gain: float = 0.4,
               reverb: bool = True, chorus: bool = True) -> np.ndarray:
    """Mono float32 at ``SAMPLE_RATE``; sample 0 is MIDI time 0."""
    import soundfile as sf
    import soxr

    with tempfile.TemporaryDirectory(prefix="beatrender_") as tmp:
        midi, wav = Path(tmp) / "piece.mid", Path(tmp) / "piece.wav"
        write_midi(piece, midi)
        cmd = [fluidsynth, "-ni", "-q", "-g", f"{gain:.3f}", "-r", str(SYNTH_RATE), "-O", "float", "-T", "wav",
               "-R", "1" if reverb else "0", "-C", "1" if chorus else "0", "-F", str(wav), str(soundfont), str(midi)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0 or not wav.is_file():
            raise RenderError(f"`{' '.join(cmd)}` failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
        audio, rate = sf.read(str(wav), dtype="float32", always_2d=True)
    mono = audio.mean(axis=1)
    if rate != SAMPLE_RATE:
        mono = soxr.resample(mono, rate, SAMPLE_RATE, quality="HQ")
    if mono.size == 0 or float(np.max(np.abs(mono))) < SILENCE_PEAK:
        raise RenderError(f"`{' '.join(cmd)}` rendered silence for style {piece.style!r} with {soundfont.name}")
    return mono.astype(np.float32)


# -- augmentation -------------------------------------------------------------------------------------

def draw_augment(rng: np.random.Generator, duration: float) -> dict:
    """A random augmentation plan (JSON-able); ``render_piece`` accepts one to force choices in tests."""
    plan: dict = {"level_dbfs": round(float(rng.uniform(-30.0, -8.0)), 2)}
    max_off = min(MAX_OFFSET_S, 0.25 * duration)
    plan["offset_s"] = round(float(rng.uniform(0.2, max_off)), 4) if rng.random() < 0.65 and max_off > 0.3 else 0.0
    r = rng.random()
    if r < 0.08:
        plan["eq"] = {"type": "band", "low_hz": float(rng.uniform(200, 400)), "high_hz": float(rng.uniform(3000, 4000))}
    elif r < 0.55:
        plan["eq"] = {"type": "shelves", "low_db": float(rng.uniform(-12, 10)), "low_hz": float(rng.uniform(80, 300)),
                      "high_db": float(rng.uniform(-15, 8)), "high_hz": float(rng.uniform(2000, 8000))}
    if rng.random() < 0.5:
        plan["reverb"] = {"rt60": float(rng.uniform(0.2, 2.5)), "wet_db": float(rng.uniform(-18, 0)),
                          "predelay_s": float(rng.uniform(0.005, 0.03))}
    if rng.random() < 0.4:
        plan["noise"] = {"type": str(rng.choice(NOISES)), "snr_db": float(rng.uniform(10, 40))}
    r = rng.random()
    if r < 0.15:
        plan["dynamics"] = {"type": "compress", "threshold_db": float(rng.uniform(-30, -12)),
                            "ratio": float(rng.uniform(2, 8))}
    elif r < 0.25:
        plan["dynamics"] = {"type": "clip", "drive_db": float(rng.uniform(1, 8)), "soft": bool(rng.random() < 0.5)}
    if rng.random() < 0.4:
        name = str(rng.choice(list(CODECS)))
        plan["codec"] = {"name": name, "kbps": int(rng.choice(CODECS[name][3]))}
    return plan


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + 1e-20))


def _shelf_sos(kind: str, freq: float, gain_db: float, sr: int) -> np.ndarray:
    """RBJ-cookbook shelving biquad as one SOS row."""
    a = 10 ** (gain_db / 40)
    w = 2 * np.pi * freq / sr
    cw, alpha = np.cos(w), np.sin(w) / 2 * np.sqrt(2)
    s = 1 if kind == "low" else -1
    b0 = a * ((a + 1) - s * (a - 1) * cw + 2 * np.sqrt(a) * alpha)
    b1 = s * 2 * a * ((a - 1) - s * (a + 1) * cw)
    b2 = a * ((a + 1) - s * (a - 1) * cw - 2 * np.sqrt(a) * alpha)
    a0 = (a + 1) + s * (a - 1) * cw + 2 * np.sqrt(a) * alpha
    a1 = -s * 2 * ((a - 1) + s * (a + 1) * cw)
    a2 = (a + 1) + s * (a - 1) * cw - 2 * np.sqrt(a) * alpha
    return np.array([[b0 / a0, b1 / a0, b2 / a0, 1.0, a1 / a0, a2 / a0]])


def apply_eq(x: np.ndarray, eq: dict, sr: int) -> np.ndarray:
    """Zero-phase (forward-backward) filtering: no delay, so onsets stay put. Gains are halved per pass."""
    from scipy import signal

    if eq["type"] == "band":
        sos = signal.butter(2, [eq["low_hz"], min(eq["high_hz"], 0.45 * sr)], btype="band", fs=sr, output="sos")
    else:
        sos = np.vstack([_shelf_sos("low", eq["low_hz"], eq["low_db"] / 2, sr),
                         _shelf_sos("high", min(eq["high_hz"], 0.45 * sr), eq["high_db"] / 2, sr)])
    return signal.sosfiltfilt(sos, x).astype(np.float32)


def apply_reverb(x: np.ndarray, rv: dict, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Dry signal plus exponentially decaying noise (RT60), low-passed as it decays; direct path at lag 0."""
    from scipy import signal

    n = int(min(1.2 * rv["rt60"], 3.0) * sr)
    t = np.arange(n) / sr
    tail = rng.standard_normal(n) * np.exp(-6.908 * t / rv["rt60"])
    dark = signal.lfilter([0.35], [1, -0.65], tail)  # high frequencies die first
    mix = np.linspace(0, 1, n) ** 0.5
    tail = (1 - mix) * tail + mix * dark
    tail[: int(rv["predelay_s"] * sr)] = 0.0
    wet = signal.fftconvolve(x, tail)[: len(x)]
    wet *= _rms(x) / max(_rms(wet), 1e-12) * 10 ** (rv["wet_db"] / 20)
    return (x + wet).astype(np.float32)


def make_noise(kind: str, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    from scipy import signal

    if kind == "white":
        return rng.standard_normal(n)
    if kind in ("pink", "brown"):
        spec = np.fft.rfft(rng.standard_normal(n))
        f = np.maximum(np.fft.rfftfreq(n, 1 / sr), 20.0)
        return np.fft.irfft(spec / (np.sqrt(f) if kind == "pink" else f), n)
    t = np.arange(n) / sr
    if kind == "hum":
        f0 = float(rng.choice([50.0, 60.0]))
        return sum(rng.uniform(0.2, 1) / k * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.3)) for k in range(1, 8))
    out = np.zeros(n)  # babble: several band-limited "voices" with irregular syllable envelopes
    for _ in range(int(rng.integers(4, 10))):
        lo = rng.uniform(150, 600)
        sos = signal.butter(2, [lo, lo * rng.uniform(3, 8)], btype="band", fs=sr, output="sos")
        env = signal.sosfiltfilt(signal.butter(2, rng.uniform(3, 7), fs=sr, output="sos"),
                                 np.maximum(rng.standard_normal(n), 0))
        out += signal.sosfilt(sos, rng.standard_normal(n)) * np.maximum(env, 0)
    return out


def apply_dynamics(x: np.ndarray, dyn: dict, sr: int) -> np.ndarray:
    from scipy.ndimage import uniform_filter1d

    if dyn["type"] == "clip":
        y = x / max(float(np.max(np.abs(x))), 1e-9) * 10 ** (dyn["drive_db"] / 20)
        return (np.tanh(y) if dyn["soft"] else np.clip(y, -1, 1)).astype(np.float32)
    y = x / max(float(np.max(np.abs(x))), 1e-9)
    env = np.sqrt(uniform_filter1d(y.astype(np.float64) ** 2, int(0.02 * sr)) + 1e-12)  # centred: no lag
    thr = 10 ** (dyn["threshold_db"] / 20)
    gain = np.where(env > thr, (env / thr) ** (1 / dyn["ratio"] - 1), 1.0)
    return (y * gain).astype(np.float32)


def codec_roundtrip(x: np.ndarray, sr: int, name: str, kbps: int) -> tuple[np.ndarray, int]:
    """Encode and decode with PyAV; the decoded signal realigned to the input. Returns (y, delay found)."""
    import av
    import soxr

    container, encoder, rate, _ = CODECS[name]
    src = x if rate == sr else soxr.resample(x, sr, rate, quality="HQ")
    buf = io.BytesIO()
    with av.open(buf, "w", format=container) as out:
        stream = out.add_stream(encoder, rate=rate, layout="mono")
        stream.bit_rate = kbps * 1000
        step = 4096
        for i in range(0, len(src), step):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(src[None, i:i + step], dtype=np.float32),
                                               format="flt", layout="mono")
            frame.sample_rate = rate
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    buf.seek(0)
    chunks = []
    with av.open(buf, "r") as inp:
        for frame in inp.decode(audio=0):
            chunks.append(frame.to_ndarray().reshape(frame.to_ndarray().shape[0], -1).mean(axis=0))
    y = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    if rate != sr:
        y = soxr.resample(y, rate, sr, quality="HQ")
    lag = measure_lag(x, y)
    y = y[lag:] if lag >= 0 else np.concatenate([np.zeros(-lag, np.float32), y])
    y = np.pad(y, (0, max(0, len(x) - len(y))))[: len(x)]
    return y.astype(np.float32), lag


def measure_lag(ref: np.ndarray, y: np.ndarray, max_lag: int = MAX_CODEC_LAG) -> int:
    """The delay (samples) of ``y`` against ``ref``, by FFT cross-correlation over |lag| <= max_lag."""
    n = min(len(ref), len(y))
    if n < 2 * max_lag:
        return 0
    size = 1 << int(np.ceil(np.log2(n + max_lag)))
    c = np.fft.irfft(np.fft.rfft(y[:n], size) * np.conj(np.fft.rfft(ref[:n], size)), size)
    lags = np.concatenate([c[: max_lag + 1], c[-max_lag:]])
    best = int(np.argmax(lags))
    return best if best <= max_lag else best - len(lags)


def augment(x: np.ndarray, sr: int, plan: dict, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Apply ``plan`` (see ``draw_augment``) except the start cut; returns the audio and what was done."""
    done: dict = {}
    if "eq" in plan:
        x = apply_eq(x, plan["eq"], sr)
    if "reverb" in plan:
        x = apply_reverb(x, plan["reverb"], sr, rng)
    if "noise" in plan:
        noise = make_noise(plan["noise"]["type"], len(x), sr, rng)
        noise *= _rms(x) / max(_rms(noise), 1e-12) * 10 ** (-plan["noise"]["snr_db"] / 20)
        x = (x + noise).astype(np.float32)
    if "dynamics" in plan:
        x = apply_dynamics(x, plan["dynamics"], sr)
    x = x * (10 ** (plan["level_dbfs"] / 20) / _rms(x))
    peak = float(np.max(np.abs(x)))
    if peak > 0.99 and plan.get("dynamics", {}).get("type") != "clip":
        x *= 0.99 / peak  # no clipping that the plan did not ask for
    done["level_dbfs"] = round(20 * np.log10(_rms(x)), 2)
    if "codec" in plan:
        x, lag = codec_roundtrip(x, sr, plan["codec"]["name"], plan["codec"]["kbps"])
        done["codec_delay_samples"] = lag
    return np.clip(x, -1.0, 1.0).astype(np.float32), done


def render_piece(piece: Piece, soundfont: Path, fluidsynth: str, rng: np.random.Generator,
                 plan: dict | None = None) -> tuple[np.ndarray, dict]:
    """Mono float32 audio at ``SAMPLE_RATE`` and an info dict with the shifted labels (``beats``,
    ``downbeats``, seconds in the returned audio), ``duration`` and the ``augment`` plan applied."""
    soundfont = Path(soundfont)
    gain = float(rng.uniform(0.2, 0.6))
    fx = {"reverb": bool(rng.random() < 0.6), "chorus": bool(rng.random() < 0.5)}
    audio = synthesize(piece, soundfont, fluidsynth, gain, **fx)
    plan = dict(plan) if plan is not None else draw_augment(rng, len(audio) / SAMPLE_RATE)
    audio, done = augment(audio, SAMPLE_RATE, plan, rng)
    cut = round(plan.get("offset_s", 0.0) * SAMPLE_RATE)
    audio = audio[cut:]
    shift = cut / SAMPLE_RATE
    duration = len(audio) / SAMPLE_RATE
    beats = np.asarray(piece.beats, dtype=np.float64) - shift
    downbeats = np.asarray(piece.downbeats, dtype=np.float64) - shift
    keep = lambda t: t[(t >= 0.0) & (t < duration)]
    info = {"beats": keep(beats), "downbeats": keep(downbeats), "duration": duration, "sample_rate": SAMPLE_RATE,
            "soundfont": soundfont.name, "fluidsynth": {"gain": round(gain, 3), **fx},
            "augment": {**plan, **done, "offset_s": shift}}
    return audio, info
