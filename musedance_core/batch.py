"""Batch animation: one mp4 per row of a CSV (the CLI's ``animate-batch``).

The CSV has a header row. Required columns: ``image, music, prompt, output``; optional ones are
the ``animate`` settings by their command-line names with underscores (``SETTING_COLUMNS``). A
blank cell takes the command-line value; relative paths are relative to the CSV's folder.
Everything that makes the whole file unusable — a missing or unknown column, two rows writing the
same output, a bad device — is an error before anything runs (exit code 2).

Scaling out: under ``accelerate launch`` (or ``torchrun``) process ``r`` of ``N`` (from
``accelerate.PartialState``; one process without a launcher) takes the rows whose index ``i``
(0-based) has ``i % N == r``, on its own device, and loads the model once, at its first row to
make. A process with nothing to make loads nothing.

Resuming: a row whose output exists is skipped. Outputs are written under a hidden temporary
name and renamed at the end (``video.VideoWriter``), so an output that exists is finished; the
temporary file a killed run leaves behind is deleted when its row is made again.

Failures: a row that cannot be made (a missing or unreadable file, a bad value, any error while
making it) is reported as one line naming its row and the reason, and the process goes on. At
the end every process prints its summary; then the processes add up their counts with
``accelerate.utils.reduce`` and all exit with the same code: 0 when no row failed, 1 when any row
failed in any process. (Exiting with each process's own code would not do: the launcher,
torch's elastic agent, stops the other processes as soon as one exits non-zero.) Each process
also writes ``<csv stem>.report-<rank>.csv`` (row, output, status, reason, seconds).
"""

from __future__ import annotations

import csv
import glob
import math
import os
import sys
import time
import traceback
from collections import Counter
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .errors import InputError, MuseDanceError
from .notes import collect_notes

if TYPE_CHECKING:
    from .animate import AnimateOptions

REQUIRED_COLUMNS = ("image", "music", "prompt", "output")
# optional columns: the animate settings by their CLI names (with underscores), and their types
SETTING_COLUMNS: dict[str, type] = {
    "negative_prompt": str, "start": float, "seconds": float, "frames": int, "fps": float, "width": int,
    "height": int, "steps": int, "cfg": float, "prompt_guidance": float, "music_strength": float,
    "beat_strength": float, "seed": int, "scheduler": str, "context_length": int, "context_overlap": int,
}
# columns that are AnimateSettings fields (by their field name where it differs)
_SETTING_FIELDS = {"frames": "num_frames", "width": "width", "height": "height", "steps": "steps", "cfg": "cfg",
                   "prompt_guidance": "prompt_guidance", "music_strength": "music_strength",
                   "beat_strength": "beat_strength", "seed": "seed", "scheduler": "scheduler",
                   "context_length": "context_length", "context_overlap": "context_overlap"}
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov")
REPORT_COLUMNS = ("row", "output", "status", "reason", "seconds")
# how long a process that has finished waits for the others at the end (the launcher's process
# group would otherwise give up after its default 10-30 minutes while another still works)
WAIT_FOR_OTHERS = timedelta(days=7)


class JobsFileError(InputError):
    """The jobs CSV cannot be used as a whole (nothing is run)."""


@dataclass
class Job:
    """One row of the CSV, its values converted; ``error`` says why it cannot run."""

    row: int  # 1-based data row (the header is row 0)
    output_text: str  # the output cell as written
    output: Path | None = None
    image: Path | None = None
    music: Path | None = None
    prompt: str = ""
    negative_prompt: str = ""
    start: float = 0.0
    seconds: float | None = None
    fps: float | None = None
    settings: Any = None  # AnimateSettings
    error: str | None = None


# -- reading the CSV -----------------------------------------------------------------------------

def _column_name(header: str) -> str:
    return header.strip().lower().replace("-", "_").replace(" ", "_")


def _convert(column: str, text: str, kind: type) -> Any:
    if kind is str:
        if column == "scheduler":
            from .schedulers import SCHEDULERS

            if text not in SCHEDULERS:
                raise ValueError(f"column 'scheduler' must be one of {', '.join(SCHEDULERS)}; got '{text}'")
        return text
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"column '{column}' must be a number; got '{text}'") from None
    if not math.isfinite(value):
        raise ValueError(f"column '{column}' must be a finite number; got '{text}'")
    if kind is int:
        if not value.is_integer():
            raise ValueError(f"column '{column}' must be a whole number; got '{text}'")
        return int(value)
    return value


def _path(text: str, folder: Path) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else folder / path


def read_jobs(csv_path: str | Path, defaults: AnimateOptions) -> list[Job]:
    """The rows of ``csv_path`` as jobs; blank cells take the values in ``defaults`` (the
    ``animate-batch`` command's options). A row that cannot run carries its ``error``;
    JobsFileError when the file as a whole cannot be used."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise JobsFileError(f"jobs file not found: '{csv_path}'.")
    folder = csv_path.resolve().parent
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:  # -sig: a spreadsheet's byte-order mark
            rows = list(csv.reader(f))
    except (csv.Error, UnicodeDecodeError, OSError) as exc:
        raise JobsFileError(f"cannot read '{csv_path.name}' as a CSV file ({exc}); save it as UTF-8 CSV.") from exc
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise JobsFileError(f"'{csv_path.name}' has no header row; the first row must name the columns: "
                            f"{', '.join(REQUIRED_COLUMNS)} and any of {', '.join(SETTING_COLUMNS)}.")
    header = [_column_name(h) for h in rows[0]]
    known = set(REQUIRED_COLUMNS) | set(SETTING_COLUMNS)
    unknown = [rows[0][i].strip() for i, name in enumerate(header) if name not in known]
    if unknown:
        raise JobsFileError(f"'{csv_path.name}' has unknown column(s): {', '.join(repr(u) for u in unknown)}. "
                            f"Columns are {', '.join(REQUIRED_COLUMNS)} (required) and "
                            f"{', '.join(SETTING_COLUMNS)} (optional).")
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise JobsFileError(f"'{csv_path.name}' names column(s) {', '.join(repeated)} more than once.")
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    if missing:
        raise JobsFileError(f"'{csv_path.name}' lacks the required column(s) {', '.join(missing)}; the header "
                            f"must name {', '.join(REQUIRED_COLUMNS)} (found: {', '.join(header)}).")

    jobs: list[Job] = []
    for number, cells in enumerate(rows[1:], start=1):
        if not any(cell.strip() for cell in cells):
            continue  # a blank line (spreadsheets add them at the end); its number stays taken
        values = dict(zip(header, (cell.strip() for cell in cells)))
        job = Job(row=number, output_text=values.get("output", ""))
        try:
            if len(cells) > len(header):
                raise ValueError(f"it has {len(cells)} cells but the header names {len(header)} columns")
            for name in ("image", "music", "output"):
                if not values.get(name):
                    raise ValueError(f"its {name} cell is blank")
            job.image, job.music = _path(values["image"], folder), _path(values["music"], folder)
            job.output = _path(values["output"], folder)
            if job.output.suffix.lower() not in VIDEO_SUFFIXES:
                raise ValueError(f"output '{values['output']}' must end in {', '.join(VIDEO_SUFFIXES)}")
            for name, source in (("image", job.image), ("music", job.music)):
                if job.output.exists() and source.exists() and os.path.samefile(job.output, source):
                    raise ValueError(f"output '{values['output']}' is the row's {name} file; writing there would "
                                     "destroy it")
            given = {name: _convert(name, values[name], kind) for name, kind in SETTING_COLUMNS.items()
                     if values.get(name)}
            job.prompt = values.get("prompt") or defaults.prompt
            job.negative_prompt = given.get("negative_prompt", defaults.negative_prompt)
            job.start, job.seconds = given.get("start", defaults.start), given.get("seconds", defaults.seconds)
            job.fps = given.get("fps", defaults.fps)
            job.settings = replace(defaults.settings, **{field: given[name] for name, field in _SETTING_FIELDS.items()
                                                         if name in given})
        except ValueError as exc:
            job.error = f"{exc}."
        jobs.append(job)

    seen: dict[str, int] = {}
    for job in jobs:
        if job.output is None:
            continue
        key = os.path.normcase(str(job.output.resolve()))
        if key in seen:
            raise JobsFileError(f"rows {seen[key]} and {job.row} of '{csv_path.name}' both write "
                                f"'{job.output_text}'; give every row its own output.")
        seen[key] = job.row
    return jobs


# -- running -------------------------------------------------------------------------------------

def _has_accelerator() -> bool:
    accelerator = getattr(torch, "accelerator", None)
    if accelerator is not None and hasattr(accelerator, "is_available"):
        return bool(accelerator.is_available())
    return torch.cuda.is_available()


def distributed_state():
    """accelerate's PartialState: rank, world size and device of this process (one process, rank
    0, without a launcher). On a machine without a GPU the processes a launcher starts talk over
    the CPU (gloo), so ``accelerate launch --multi_gpu`` / ``torchrun`` work there too."""
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    cpu = parse_flag_from_env("ACCELERATE_USE_CPU") or not _has_accelerator()
    state = PartialState(cpu=cpu, timeout=WAIT_FOR_OTHERS)
    launched = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if launched != state.num_processes:
        raise InputError(f"{launched} processes were launched but accelerate joined {state.num_processes} "
                         f"({state.distributed_type}); each would make every row. Run one process, or launch "
                         "on CUDA GPUs or the CPU.")
    if (state.num_processes == 1 and parse_flag_from_env("ACCELERATE_USE_CPU") and os.environ.get("MASTER_ADDR")
            and "LOCAL_RANK" not in os.environ):
        print("note: 'accelerate launch --cpu' starts one process (more need mpirun), so this one makes every row. "
              "For N processes on the CPU: 'accelerate launch --multi_gpu --num_processes N' on a machine with no "
              "visible GPU (CUDA_VISIBLE_DEVICES=), or 'torchrun --nproc_per_node N -m musedance_core "
              "animate-batch ...'.", file=sys.stderr)
    return state


def _sum_over_processes(state, counts: list[int]) -> list[int]:
    from accelerate.utils import reduce

    tensor = torch.tensor(counts, dtype=torch.int64, device=state.device)
    return [int(v) for v in reduce(tensor, reduction="sum").cpu().tolist()]


class _Once:
    """A value made at first use; a failure is kept and raised again (a model that does not load
    is not loaded again for every row)."""

    def __init__(self, make):
        self._make, self._value, self._error = make, None, None

    def get(self):
        if self._error is not None:
            raise self._error
        if self._value is None:
            try:
                self._value = self._make()
            except Exception as exc:
                self._error = exc
                raise
        return self._value


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    if not isinstance(exc, MuseDanceError):
        text = f"{type(exc).__name__}: {text}"
    first, _, rest = text.partition("\n")
    return f"{first} (more on stderr)" if rest.strip() else first


def _remove_stale_partials(output: Path) -> None:
    """The hidden temporary files a killed run's VideoWriter left for this output."""
    for stale in glob.glob(os.path.join(glob.escape(str(output.parent)), f".{glob.escape(output.name)}.*.partial")):
        Path(stale).unlink(missing_ok=True)


class _Report:
    """This process's ``<stem>.report-<rank>.csv``, a line per row, flushed as it goes."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "w", newline="", encoding="utf-8")
        self._writer = csv.writer(self._file)
        self._writer.writerow(REPORT_COLUMNS)
        self._file.flush()

    def add(self, row: int, output: str, status: str, reason: str, seconds: float) -> None:
        self._writer.writerow((row, output, status, reason, f"{seconds:.2f}"))
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def run_batch(jobs_csv: str | Path, options: AnimateOptions, report_dir: str | Path | None = None) -> int:
    """Run the ``animate-batch`` command: every row of ``jobs_csv``, blank cells taken from
    ``options``; each process's report in ``report_dir`` (default: the CSV's folder). The exit code."""
    from .animate import animate_file, load_model, music_encoder_for, weights_device
    from .checkpoints.assemble import ModelSources
    from .devices import pick_device, pick_dtype
    from .images import read_image

    t0 = time.perf_counter()
    # -- everything that makes the whole run impossible, before anything runs -----------------
    try:
        jobs = read_jobs(jobs_csv, options)  # the same file in every process: all stop here, or none
    except JobsFileError as exc:
        if os.environ.get("RANK", "0") == "0":  # said once, not by every process
            print(f"error: {exc}", file=sys.stderr)
        return 2
    state = distributed_state()
    rank, world = state.process_index, state.num_processes
    tag = f"[rank {rank}/{world}]"
    setup_error: MuseDanceError | None = None
    try:
        device = pick_device(options.device) if options.device not in (None, "auto") else state.device
        if device.type == "cpu":
            device = torch.device("cpu")  # accelerate says cpu:0 for its CPU processes
        dtype = pick_dtype(options.precision, device)
    except MuseDanceError as exc:
        setup_error = exc
        print(f"error: {exc}" if world == 1 else f"{tag} error: {exc}", file=sys.stderr)
    # every process learns whether any could not start, so none waits for the others in vain
    if _sum_over_processes(state, [int(setup_error is not None)])[0]:
        return 2

    mine = jobs[rank::world]
    offload = options.settings.offload

    def log_model(message: str) -> None:
        print(f"{tag} {message}", file=sys.stderr)

    def make_model():
        loading = time.perf_counter()
        model, label = load_model(options.sources or ModelSources(), weights_device(device, offload), dtype,
                                  log=log_model)
        print(f"{tag} model: {label} on {device} ({str(dtype).removeprefix('torch.')}"
              f"{', offload: stages' if offload == 'stages' else ''}), loaded in {time.perf_counter() - loading:.1f} s",
              flush=True)
        return model

    model = _Once(make_model)
    # a learned encoder is kept for every row, unless the stages must share the device alone
    encoder = _Once(lambda: music_encoder_for(model.get(), device, options.music_encoder,
                                                  options.audio_encoders))

    report = None
    report_dir = Path(report_dir) if report_dir else Path(jobs_csv).resolve().parent
    try:
        report = _Report(report_dir / f"{Path(jobs_csv).stem}.report-{rank}.csv")
    except OSError as exc:
        print(f"{tag} warning: cannot write the report in '{report_dir}' ({exc}); use --report-dir. "
              "Going on without it.", file=sys.stderr)

    counts: Counter[str] = Counter()
    explained: dict[int, BaseException] = {}
    for job in mine:
        started = time.perf_counter()
        name = job.output_text or "-"
        reason = ""
        if job.error is None and job.output.exists():
            status = "skipped"
            print(f"{tag} row {job.row} skip (exists) {name}", flush=True)
        else:
            try:
                if job.error is not None:
                    raise InputError(job.error)
                with collect_notes(label=f"{tag} row {job.row}"):  # a row's notes name the row
                    image = read_image(job.image)  # a missing file fails before the model loads
                    if not job.music.is_file():
                        raise InputError(f"music file not found: '{job.music}'.")
                    loaded = model.get()
                    music_encoder = None if offload == "stages" else encoder.get()
                    started = time.perf_counter()  # the row's time leaves out loading the model
                    _remove_stale_partials(job.output)
                    result = animate_file(
                        loaded, device, image, job.music, job.output, job.settings, start=job.start,
                        seconds=job.seconds, fps=job.fps, prompt=job.prompt, negative_prompt=job.negative_prompt,
                        music_encoder=options.music_encoder, audio_encoders=options.audio_encoders,
                        encoder=music_encoder,
                        log=lambda m, n=job.row: print(f"{tag} row {n}: {m}", file=sys.stderr),
                        progress=None if world == 1 else False)
            except Exception as exc:  # noqa: BLE001 - a bad row is reported and the batch goes on
                status, reason = "failed", _one_line(exc)
                if id(exc) not in explained:  # a model that did not load fails every row with the same error
                    explained[id(exc)] = exc  # (kept, so its id is not reused)
                    if not isinstance(exc, MuseDanceError):  # not a user's mistake: the traceback helps
                        print(f"{tag} row {job.row}:", file=sys.stderr)
                        traceback.print_exception(exc, file=sys.stderr)
                    elif reason.endswith("(more on stderr)"):
                        print(f"{tag} row {job.row}: {exc}", file=sys.stderr)
                print(f"{tag} row {job.row} failed {name}: {reason}", flush=True)
            else:
                status = "made"
                print(f"{tag} row {job.row} made {name} ({result.num_frames} frames, {result.width}x{result.height}, "
                      f"{result.fps:g} fps) in {time.perf_counter() - started:.1f} s", flush=True)
        counts[status] += 1
        if report is not None:
            report.add(job.row, job.output_text, status, reason, time.perf_counter() - started)
    if report is not None:
        report.close()

    made, skipped, failed = counts["made"], counts["skipped"], counts["failed"]
    print(f"{tag} done: {made} made, {skipped} skipped, {failed} failed of {len(mine)} rows in "
          f"{time.perf_counter() - t0:.1f} s" + (f"; report {report.path}" if report is not None else ""), flush=True)
    total = _sum_over_processes(state, [made, skipped, failed])  # waits for every process to finish
    if world > 1 and state.is_main_process:
        print(f"all {world} processes: {total[0]} made, {total[1]} skipped, {total[2]} failed of {len(jobs)} rows",
              flush=True)
    return 1 if total[2] else 0
