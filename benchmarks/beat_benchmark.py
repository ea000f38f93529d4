"""Beat-tracking benchmark: accuracy per category on the MIDI evaluation set, and speed on one core.

Accuracy: ``mir_eval.beat.f_measure`` (±70 ms) and ``mir_eval.beat.continuity`` (CMLt, AMLt),
called directly on the full beat lists. ``mir_eval.beat.evaluate`` would first drop beats before
5 s (``trim_beats``); we do not, so quiet intros and the first bars count. Downbeat F-measure
(±70 ms) for trackers that return downbeats. ``no_beat`` tracks have no labelled beats: they
report the fraction of tracks where a tracker returns no beat, and the mean number returned.

Speed: beats (+ music features for MuseDance) on the 180 s track, single-threaded (BLAS/OpenMP/
numba limited to one thread and the process pinned to one CPU), after one warm-up run, as seconds
and × real time (audio duration / processing time).

    .venv/bin/python -m benchmarks.beat_eval_set
    .venv/bin/python -m benchmarks.beat_benchmark [--quick] [--markdown out.md] [--json out.json]
"""

from __future__ import annotations

import os

# One thread everywhere, set before numpy/numba/torch are imported (they read these at import).
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
for _name in THREAD_ENV_VARS:
    os.environ[_name] = "1"

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import librosa  # noqa: E402
import mir_eval  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.report_utils import command_line, git_revision, publish  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]

DEFAULT_DATA = Path("bench_data/beats")
ANALYSIS_SR = 22050
FPS = 24.0
F_WINDOW_S = 0.07  # mir_eval's default F-measure tolerance
TEMPO_TOLERANCE = 0.08  # estimated/true tempo within 8 % counts as that octave
TEMPO_FACTORS = {"1x": 1.0, "2x": 2.0, "0.5x": 0.5, "1.5x": 1.5, "0.67x": 2 / 3, "3x": 3.0, "0.33x": 1 / 3}
# The categories the hand-tuned DSP tracker was tuned on (generator v1): its figures there are
# tuning figures; every other category of the set is new to it. The learned tracker never trained
# on this generator or on its soundfont (FluidR3_GM), so the whole set is held out for it.
DSP_TUNING_CATEGORIES = ("steady_44", "waltz_34", "swing", "tempo_change", "quiet_intro")
DEFAULT_REPEATS = 3
SET_DESCRIPTIONS = {
    "eval_set": "benchmarks/beat_eval_set.py: FluidR3 GM renders of seeded MIDI, beats exact from the MIDI tempo "
                "map; neither this generator nor this soundfont is in the learned tracker's training data",
    "make_beat_data": "training/make_beat_data.py, the learned tracker's own generator, with a seed it never "
                      "trained on (its soundfonts, augmentations), beats exact from the composer's time map",
}


@dataclass(frozen=True)
class TrackerResult:
    beats: np.ndarray  # [NB] seconds
    downbeats: np.ndarray | None = None  # [ND] seconds, None if the tracker has no downbeats


Tracker = Callable[[Path], TrackerResult]


class BenchmarkError(RuntimeError):
    """The benchmark cannot run (missing evaluation set)."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="evaluation set folder (default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="one track per category and one timing repeat")
    parser.add_argument("--trackers", default=None, help="comma-separated subset of the trackers (default: all)")
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS, help="timed runs per speed task (median)")
    parser.add_argument("--no-speed", action="store_true", help="skip the speed benchmark")
    parser.add_argument("--per-track", action="store_true", help="also print a table with every track")
    parser.add_argument("--markdown", type=Path, default=None, help="write the Markdown report here")
    parser.add_argument("--json", type=Path, default=None, help="write all per-track numbers here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    pinned = pin_to_one_cpu()
    index = load_index(args.data)
    tracks = select_tracks(index, args.quick)
    trackers, skipped = available_trackers()
    if args.trackers:
        wanted = [t.strip() for t in args.trackers.split(",") if t.strip()]
        unknown = sorted(set(wanted) - set(trackers) - set(skipped))
        if unknown:
            raise SystemExit(f"error: --trackers names unknown tracker(s) {unknown}; known: "
                             f"{sorted(set(trackers) | set(skipped))}")
        trackers = {k: v for k, v in trackers.items() if k in wanted}
        skipped = {k: v for k, v in skipped.items() if k in wanted}
    started = time.perf_counter()
    per_track = {name: evaluate_tracker(name, tracker, tracks, args.data) for name, tracker in trackers.items()}
    accuracy_s = time.perf_counter() - started
    speed: list[dict] = []
    if not args.no_speed:
        speed = run_speed(index, args.data, 1 if args.quick else args.repeats, set(trackers))
    report = {
        "command": command_line(),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine_info(pinned),
        "set": {"path": str(args.data), "generator_version": index.get("generator_version"),
                "seed": index.get("seed"), "tracks": len(tracks), "layout": index.get("layout", "eval_set")},
        "skipped_trackers": skipped,
        "summary": {name: summarize(rows, index.get("layout", "eval_set") == "eval_set")
                    for name, rows in per_track.items()},
        "per_track": per_track,
        "speed": speed,
        "accuracy_seconds": round(accuracy_s, 1),
    }
    publish(render_markdown(report, args.per_track), report, args.markdown, args.json)
    return 0


# ---------------------------------------------------------------- trackers


def librosa_default(path: Path) -> TrackerResult:
    """``librosa.beat.beat_track`` with default settings on ``librosa.load(path, sr=22050)``."""
    y, sr = librosa.load(path, sr=ANALYSIS_SR)
    _, beats = librosa.beat.beat_track(y=y, sr=sr, units="time")
    return TrackerResult(np.asarray(beats, np.float64))


def make_musedance_tracker(dsp: bool = False) -> Tracker:
    """MuseDance's learned ``track_beats``, or (``dsp``) the hand-tuned tracker it replaced."""
    from musedance_core.audio.io import load_audio

    if dsp:
        from benchmarks.dsp_beat_tracker import track_beats_dsp as track
    else:
        from musedance_core.audio.beats import track_beats as track

    def musedance(path: Path) -> TrackerResult:
        audio = load_audio(path, sample_rate=ANALYSIS_SR, mono=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "no beat found" notes: the scores say it
            result = track(audio.samples[0], audio.sample_rate, fps=FPS)
        return TrackerResult(np.asarray(result.beat_times, np.float64), np.asarray(result.downbeat_times, np.float64))

    return musedance


TRACKER_FACTORIES: dict[str, Callable[[], Tracker]] = {
    "librosa": lambda: librosa_default,
    "musedance": make_musedance_tracker,
    "musedance-dsp": lambda: make_musedance_tracker(dsp=True),
}


def available_trackers() -> tuple[dict[str, Tracker], dict[str, str]]:
    """Trackers that import, and a note for each one that does not."""
    trackers, skipped = {}, {}
    for name, factory in TRACKER_FACTORIES.items():
        try:
            trackers[name] = factory()
        except ImportError as exc:
            skipped[name] = f"{type(exc).__name__}: {exc}"
    return trackers, skipped


# ---------------------------------------------------------------- accuracy


def load_index(data: Path) -> dict:
    """The set's index: the evaluation set's (``beat_eval_set.py``), or a folder of the beat tracker's
    training generator (``training/make_beat_data.py``, e.g. rendered with a held-out seed)."""
    path = data / "index.json"
    if not path.is_file():
        raise SystemExit(f"error: {path} not found. Build the evaluation set first:\n"
                         f"    .venv/bin/python -m benchmarks.beat_eval_set --out {data}")
    index = json.loads(path.read_text())
    if "tracks" not in index and "pieces" in index:  # the training generator's layout
        tracks = [{"name": p["name"], "category": p["category"], "wav": f"{p['name']}.flac",
                   "json": f"{p['name']}.json", "duration": p["duration"]} for p in index["pieces"]]
        tracks.sort(key=lambda e: (e["category"], e["name"]))
        index = {"generator_version": index.get("generator_version"), "seed": index.get("seed"),
                 "tracks": tracks, "speed_track": None, "layout": "make_beat_data"}
    return index


def select_tracks(index: dict, quick: bool) -> list[dict]:
    """Tracks from the index, grouped by category (``quick``: the first of each category)."""
    tracks, seen = [], set()
    for entry in index["tracks"]:
        if quick and entry["category"] in seen:
            continue
        seen.add(entry["category"])
        tracks.append(entry)
    return tracks


def evaluate_tracker(name: str, tracker: Tracker, tracks: list[dict], data: Path) -> list[dict]:
    rows = []
    for entry in tracks:
        label = json.loads((data / entry["json"]).read_text())
        t0 = time.perf_counter()
        result = tracker(data / entry["wav"])
        seconds = time.perf_counter() - t0
        row = {"track": entry["name"], "category": entry["category"], "seconds": round(seconds, 3),
               **score_track(label, result)}
        print(f"[{name}] {entry['name']}: " + ", ".join(f"{k}={v}" for k, v in row.items()
                                                         if k in ("f_measure", "cmlt", "amlt", "num_beats")),
              file=sys.stderr)
        rows.append(row)
    return rows


def score_track(label: dict, result: TrackerResult) -> dict:
    """mir_eval scores on untrimmed beats, plus tempo-octave and timing-offset diagnostics."""
    ref = np.asarray(label["beats"], np.float64)
    est = np.sort(np.asarray(result.beats, np.float64))
    row: dict = {"num_beats": int(len(est)), "num_ref_beats": int(len(ref))}
    if len(ref) == 0:
        return row
    with warnings.catch_warnings():  # mir_eval warns on empty beat lists, which we report as zeros
        warnings.simplefilter("ignore")
        row["f_measure"] = round(float(mir_eval.beat.f_measure(ref, est, f_measure_threshold=F_WINDOW_S)), 4)
        _, cmlt, _, amlt = mir_eval.beat.continuity(ref, est)
        row["cmlt"], row["amlt"] = round(float(cmlt), 4), round(float(amlt), 4)
        if result.downbeats is not None:
            ref_down = np.asarray(label["downbeats"], np.float64)
            est_down = np.sort(np.asarray(result.downbeats, np.float64))
            row["downbeat_f"] = round(float(mir_eval.beat.f_measure(ref_down, est_down, F_WINDOW_S)), 4)
    row["tempo_factor"] = tempo_factor(ref, est)
    row["offset_ms"] = median_offset_ms(ref, est)
    return row


def tempo_factor(ref: np.ndarray, est: np.ndarray) -> str:
    """Estimated / true tempo from the median beat intervals, as the nearest of ``TEMPO_FACTORS``."""
    if len(est) < 2:
        return "none"
    ratio = float(np.median(np.diff(ref)) / np.median(np.diff(est)))
    for name, factor in TEMPO_FACTORS.items():
        if abs(ratio / factor - 1.0) <= TEMPO_TOLERANCE:
            return name
    return "other"


def median_offset_ms(ref: np.ndarray, est: np.ndarray) -> float | None:
    """Median of (estimated - nearest true beat) over estimates within the F-measure window."""
    if len(est) == 0 or len(ref) < 2:
        return None
    after = np.clip(np.searchsorted(ref, est), 1, len(ref) - 1)
    nearest = np.where(est - ref[after - 1] < ref[after] - est, ref[after - 1], ref[after])
    diff = est - nearest
    diff = diff[np.abs(diff) <= F_WINDOW_S]
    return round(float(np.median(diff)) * 1e3, 1) if len(diff) else None


def is_beatless(group: list[dict]) -> bool:
    return all(r["num_ref_beats"] == 0 for r in group)


def summarize(rows: list[dict], split_tuning: bool = True) -> dict:
    """Means per category, over the DSP tracker's tuning categories, over the others, and over all
    tracks with beats; beatless categories: the share of tracks with no beat returned, and the mean
    number of beats returned."""
    summary: dict = {}
    categories = list(dict.fromkeys(r["category"] for r in rows))
    groups = {c: [r for r in rows if r["category"] == c] for c in categories}
    beat_rows = [r for r in rows if r["num_ref_beats"] > 0]
    tuning = [r for r in beat_rows if r["category"] in DSP_TUNING_CATEGORIES]
    if split_tuning and tuning and len(tuning) < len(beat_rows):
        groups["all DSP-tuning categories"] = tuning
        groups["all other categories"] = [r for r in beat_rows if r["category"] not in DSP_TUNING_CATEGORIES]
    if beat_rows:
        groups["all (with beats)"] = beat_rows
    for name, group in groups.items():
        if is_beatless(group):
            summary[name] = {"tracks": len(group), "beatless": True,
                             "no_beats_fraction": round(float(np.mean([r["num_beats"] == 0 for r in group])), 3),
                             "mean_beats_returned": round(float(np.mean([r["num_beats"] for r in group])), 1)}
            continue
        entry = {"tracks": len(group)}
        for key in ("f_measure", "cmlt", "amlt", "downbeat_f"):
            values = [r[key] for r in group if key in r]
            if values:
                entry[key] = round(float(np.mean(values)), 3)
        offsets = [r["offset_ms"] for r in group if r.get("offset_ms") is not None]
        entry["offset_ms"] = round(float(np.median(offsets)), 1) if offsets else None
        entry["tempo_1x"] = round(float(np.mean([r["tempo_factor"] == "1x" for r in group])), 3)
        entry["no_beat_verdicts"] = int(sum(r["num_beats"] == 0 for r in group))
        summary[name] = entry
    return summary


# ---------------------------------------------------------------- speed


def run_speed(index: dict, data: Path, repeats: int, trackers: set[str]) -> list[dict]:
    """Time each task on the speed track: one warm-up run, then the median of ``repeats`` runs."""
    entry = index.get("speed_track")
    if entry is None:
        print("speed: no speed track in the index; build the set without --no-speed-track", file=sys.stderr)
        return []
    path = data / entry["wav"]
    results = []
    for name, (prepare, task) in speed_tasks(path, trackers).items():
        state = prepare()
        duration = state["duration"]
        task(state)  # warm-up (numba JIT, caches)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            task(state)
            times.append(time.perf_counter() - t0)
        seconds = statistics.median(times)
        results.append({"task": name, "audio_seconds": round(duration, 2), "seconds": round(seconds, 3),
                        "x_realtime": round(duration / seconds, 1), "repeats": repeats,
                        "all_seconds": [round(t, 3) for t in times]})
        print(f"speed: {name}: {seconds:.3f} s ({duration / seconds:.1f}x real time)", file=sys.stderr)
    return results


SpeedTask = tuple[Callable[[], dict], Callable[[dict], object]]


def speed_tasks(path: Path, trackers: set[str]) -> dict[str, SpeedTask]:
    """name -> (prepare() -> state, task(state)); the audio is decoded in ``prepare`` (not timed),
    except for the decode tasks themselves."""
    tasks: dict[str, SpeedTask] = {}

    def librosa_state() -> dict:
        y, sr = librosa.load(path, sr=ANALYSIS_SR)
        return {"y": y, "sr": sr, "duration": len(y) / sr}

    if "librosa" in trackers:
        tasks["librosa.load (decode + resample to 22.05 kHz)"] = (
            librosa_state, lambda s: librosa.load(path, sr=ANALYSIS_SR))
        tasks["librosa.beat.beat_track (default)"] = (
            librosa_state, lambda s: librosa.beat.beat_track(y=s["y"], sr=s["sr"], units="time"))
    if "musedance" not in trackers:
        return tasks
    from musedance_core.audio.beats import track_beats
    from musedance_core.audio.io import load_audio

    def ours_state() -> dict:
        audio = load_audio(path, sample_rate=ANALYSIS_SR, mono=True)
        return {"y": audio.samples[0], "sr": audio.sample_rate, "duration": audio.samples.shape[-1] / audio.sample_rate}

    tasks["musedance load_audio (decode + resample)"] = (
        ours_state, lambda s: load_audio(path, sample_rate=ANALYSIS_SR, mono=True))
    tasks["musedance track_beats"] = (ours_state, lambda s: track_beats(s["y"], s["sr"], fps=FPS))
    try:
        from musedance_core.audio.encoders import SpectralEncoder
    except ImportError as exc:
        print(f"speed: SpectralEncoder unavailable ({exc}); timing beats only", file=sys.stderr)
        return tasks
    encoder = SpectralEncoder()
    tasks["musedance SpectralEncoder.encode"] = (ours_state, lambda s: encoder.encode(s["y"], s["sr"], fps=FPS))
    tasks["musedance beats + features"] = (
        ours_state, lambda s: (track_beats(s["y"], s["sr"], fps=FPS), encoder.encode(s["y"], s["sr"], fps=FPS)))
    try:
        from musedance_core.audio.analysis import analyze
    except ImportError:
        return tasks

    def shared(s: dict) -> object:
        analysis = analyze(s["y"], s["sr"])
        return (track_beats(s["y"], s["sr"], fps=FPS, analysis=analysis),
                encoder.encode(s["y"], s["sr"], fps=FPS, analysis=analysis))

    tasks["musedance beats + features, shared analyze()"] = (ours_state, shared)
    return tasks


def pin_to_one_cpu() -> int | None:
    """Pin this process to its first allowed CPU (Linux); returns that CPU or None."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


# ---------------------------------------------------------------- report


def machine_info(pinned: int | None) -> dict:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {"python": platform.python_version(), "numpy": np.__version__, "librosa": librosa.__version__,
                "mir_eval": mir_eval.__version__}
    for module in ("scipy", "numba"):
        try:
            versions[module] = __import__(module).__version__
        except ImportError:
            continue
    return {"cpu": cpu, "logical_cpus": os.cpu_count(), "pinned_cpu": pinned,
            "threads": {name: os.environ[name] for name in THREAD_ENV_VARS}, "versions": versions,
            "git": git_revision()}


def _fmt(value: object, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def render_markdown(report: dict, per_track: bool) -> str:
    m = report["machine"]
    v = m["versions"]
    lines = [
        "### Beat tracking",
        "",
        f"Command: `{report['command']}`  ",
        f"Date: {report['date']}; git: {m['git'] or 'no commit'}  ",
        f"Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs, process pinned to CPU {m['pinned_cpu']}, "
        f"1 thread (OMP/OPENBLAS/MKL/NUMBA_NUM_THREADS=1); Python {v['python']}, numpy {v['numpy']}, "
        f"librosa {v['librosa']}, mir_eval {v['mir_eval']}"
        + (f", numba {v['numba']}" if "numba" in v else "") + "  ",
        f"Set: `{report['set']['path']}` ({report['set']['tracks']} tracks, generator v"
        f"{report['set']['generator_version']}, seed {report['set']['seed']}; " + SET_DESCRIPTIONS[
            report["set"].get("layout", "eval_set")] + ").",
        "",
        "Scores: `mir_eval.beat.f_measure` (±70 ms) and `mir_eval.beat.continuity` (CMLt, AMLt) called directly "
        "on the **untrimmed** beat lists (no `trim_beats`: the first 5 s count), averaged over tracks. "
        "Offset = median (estimate − true beat) of matched beats; tempo 1x = share of tracks whose median beat "
        "interval is within 8 % of the truth.",
        "",
        "| category | tracks | tracker | F | CMLt | AMLt | downbeat F | offset ms | tempo 1x | no-beat verdicts |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    summaries = report["summary"]
    categories = list(dict.fromkeys(c for s in summaries.values() for c, v in s.items() if not v.get("beatless")))
    for category in categories:
        for tracker, summary in summaries.items():
            s = summary.get(category)
            if s is None:
                continue
            name = f"**{category}**" if category.startswith("all") else category
            lines.append(f"| {name} | {s['tracks']} | {tracker} | {_fmt(s.get('f_measure'))} | {_fmt(s.get('cmlt'))} "
                         f"| {_fmt(s.get('amlt'))} | {_fmt(s.get('downbeat_f'))} | {_fmt(s.get('offset_ms'), 1)} "
                         f"| {_fmt(s.get('tempo_1x'), 2)} | {s.get('no_beat_verdicts', 0)} |")
    beatless = [(c, t, v) for t, s in summaries.items() for c, v in s.items() if v.get("beatless")]
    if beatless:
        lines += ["", "Beatless tracks (the right answer is no beat):", "",
                  "| category | tracker | tracks | returned no beats | mean beats returned |",
                  "|---|---|---:|---:|---:|"]
        for category, tracker, s in sorted(beatless, key=lambda x: x[0]):
            lines.append(f"| {category} | {tracker} | {s['tracks']} | {s['no_beats_fraction']:.0%} "
                         f"| {s['mean_beats_returned']:.1f} |")
    for tracker, note in report["skipped_trackers"].items():
        lines += ["", f"Tracker `{tracker}` skipped: {note}"]
    if report["speed"]:
        first = report["speed"][0]
        lines += ["", f"Speed on a {first['audio_seconds']:.0f} s track, one core, after one warm-up run "
                  f"(median of {first['repeats']}; × real time = audio seconds / processing seconds):", "",
                  "| task | seconds | × real time |", "|---|---:|---:|"]
        for row in report["speed"]:
            lines.append(f"| {row['task']} | {row['seconds']:.3f} | {row['x_realtime']:.0f}× |")
    if per_track:
        lines += ["", "| track | tracker | F | CMLt | AMLt | downbeat F | tempo | offset ms | beats (true) |",
                  "|---|---|---:|---:|---:|---:|---|---:|---:|"]
        for tracker, rows in report["per_track"].items():
            for r in rows:
                lines.append(f"| {r['track']} | {tracker} | {_fmt(r.get('f_measure'))} | {_fmt(r.get('cmlt'))} "
                             f"| {_fmt(r.get('amlt'))} | {_fmt(r.get('downbeat_f'))} | {r.get('tempo_factor', '–')} "
                             f"| {_fmt(r.get('offset_ms'), 1)} | {r['num_beats']} ({r['num_ref_beats']}) |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
