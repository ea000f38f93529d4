"""Evaluating a bundle on a data set's validation clips: generate with each clip's own music and with
a partner's (shuffled) music, score both, and write the report."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import TrainError
from ...metrics import BAS_SIGMA_FRAMES, motion_energy
from ...pipeline import AnimateSettings
from .. import dataset as fmt
from ..synthdance.motion import STYLE_CHANNEL, classify_motion
from .appearance import appearance, psnr, ssim
from .beat_scores import beat_measures, pick_partners, track_bas
from .report import finite_json, plot_tracks, summarize, targets, write_markdown
from .tracking import learn_subject, track_subject

VIDEO_ZOOM = 2


@dataclass(frozen=True)
class EvalSettings:
    """What to evaluate and how (training/evaluate.py's options)."""

    data: Path  # data-set folder; its 'val' clips are used
    out: Path = Path("eval_report")
    model: Path | None = None  # MuseDance bundle; None with ground_truth
    ground_truth: bool = False  # score the data's own frames as if generated: validates the evaluator
    clips: int = 20  # the first N validation clips (at least 2: the shuffled-music control needs a partner)
    frames: int = 0  # frames per clip generated and scored; 0 = all
    steps: int = 20
    cfg: float = AnimateSettings.cfg
    prompt_guidance: float = AnimateSettings.prompt_guidance
    context_length: int = AnimateSettings.context_length
    seed: int = 0  # sampling seed and partner choice
    sigma_frames: float = BAS_SIGMA_FRAMES  # BAS tolerance in frames
    plots: int = 4  # clips with a motion-track PNG
    videos: int = 3  # clips with a side-by-side mp4


# -- evaluation -----------------------------------------------------------------------------------

def load_model(path: Path):
    """The bundle at ``path`` in eval mode (a missing or wrong file is a MuseDanceError naming it)."""
    from ...checkpoints.bundle import load_bundle

    return load_bundle(path).eval()


def generate(model, frames0: np.ndarray, arrays, record: dict, caption: str, **settings) -> np.ndarray:
    """Frames uint8 [T, H, W, 3] animated from ``frames0`` and ``caption`` with the music/beats of
    ``arrays``/``record``; ``settings`` are ``AnimateSettings`` fields (``context_length`` capped by the model)."""
    import torch

    from ...pipeline import AnimateSettings, MuseDancePipeline
    from ..data import clip_conditions

    music, beats = clip_conditions(arrays, record, model.config.music_encoder)
    context = min(settings.pop("context_length", AnimateSettings().context_length), model.config.max_context_frames)
    settings = AnimateSettings(width=frames0.shape[1], height=frames0.shape[0], context_length=context, **settings)
    with torch.no_grad():
        result = MuseDancePipeline(model)(frames0, music, beats, caption, "", settings)
    return (result.frames.numpy().clip(0, 1) * 255).round().astype(np.uint8)


class ClipArrays(dict):
    """A loaded clip that also answers ``.files`` (what ``clip_conditions`` expects of an NpzFile)."""

    @property
    def files(self) -> list[str]:
        return list(self)


def evaluate_clip(record: dict, arrays: dict, partner: dict, partner_arrays: dict, gen: np.ndarray,
                  shuf: np.ndarray, settings: EvalSettings) -> tuple[dict, dict]:
    """All numbers of one clip (and the curves for its plot)."""
    fps = float(record["fps"])
    same = gen is arrays["frames"]  # --gt-as-generated: track the ground truth once
    n = min(len(arrays["frames"]), len(partner_arrays["frames"]), len(gen), len(shuf), settings.frames or len(gen))
    truth, gen, shuf = arrays["frames"][:n], gen[:n], shuf[:n]
    beats, pbeats = arrays["beat_times"], partner_arrays["beat_times"]
    feats = arrays.get("beats_true", arrays["beats"])[:n]
    pfeats = partner_arrays.get("beats_true", partner_arrays["beats"])[:n]
    beat = {}
    for key, video, times in (("gt_own", truth, beats), ("gt_partner", truth, pbeats), ("gen_own", gen, beats),
                              ("gen_partner", gen, pbeats), ("shuf_orig", shuf, beats), ("shuf_own", shuf, pbeats)):
        for name, value in beat_measures(video, times, fps, settings.sigma_frames).items():
            beat[f"{key}_{name}"] = value
    later = slice(1, None) if n > 1 else slice(None)  # frame 0 is the reference
    result = {"id": record["id"], "partner": partner["id"], "caption": record["caption"], "bpm": record["bpm"],
              "partner_bpm": partner["bpm"], "frames": n, "beat": beat,
              "appearance": {"psnr": psnr(gen[later], truth[later]), "ssim": ssim(gen[later], truth[later])}}
    curves = {"energy": [motion_energy(v) for v in (truth, gen, shuf)]}
    if "mask" not in arrays or not arrays["mask"][0].any():  # real video without masks: no subject to follow
        return result, curves
    model = learn_subject(truth[0], arrays["mask"][0])
    gt_track, gt_masks = track_subject(truth, model)
    gen_track, gen_masks = track_subject(gen, model) if not same else (gt_track, gt_masks)
    partner_model = (learn_subject(partner_arrays["frames"][0], partner_arrays["mask"][0])
                     if settings.ground_truth and "mask" in partner_arrays and partner_arrays["mask"][0].any() else model)
    shuf_track, _ = track_subject(shuf, partner_model)
    radius = math.sqrt(model.area / math.pi / (truth.shape[1] * truth.shape[2]))  # the reference subject's, frame fraction
    for key, track, times in (("gt_own", gt_track, beats), ("gt_partner", gt_track, pbeats),
                              ("gen_own", gen_track, beats), ("gen_partner", gen_track, pbeats),
                              ("shuf_orig", shuf_track, beats), ("shuf_own", shuf_track, pbeats)):
        beat[f"{key}_track_bas"] = track_bas(track, radius, times, fps)
    result["appearance"] = appearance(gen, truth, gen_masks, arrays["mask"][:n], model)
    curves |= {"truth": gt_track, "gen": gen_track, "shuf": shuf_track}
    if "motion" not in arrays or not record.get("style"):  # real video: no true motion, no style to check
        return result, curves
    bpb, pbpb = int(record["beats_per_bar"]), int(partner["beats_per_bar"])
    true_motion = arrays["motion"][:n]
    result["style"] = {"expected": record["style"],
                       "expected_shuffled": partner["style"] if settings.ground_truth else record["style"],
                       "gt_motion": classify_motion(true_motion, feats, bpb)[0],
                       "gt_tracked": classify_motion(gt_track, feats, bpb)[0],
                       "generated": classify_motion(gen_track, feats, bpb)[0],
                       "shuffled": classify_motion(shuf_track, pfeats, pbpb)[0]}
    corr = {}
    for c, name in enumerate(("x", "y", "angle", "scale")):
        a, b = true_motion[:, c].astype(float), gt_track[:, c].astype(float)
        corr[name] = float(np.corrcoef(a, b)[0, 1]) if a.std() > 1e-6 and b.std() > 1e-6 else float("nan")
    result["tracker_corr"] = corr
    return result, curves


def save_clip_outputs(out: Path, record: dict, arrays: dict, partner_arrays: dict, gen: np.ndarray,
                      shuf: np.ndarray, curves: dict, data: Path, video: bool) -> None:
    """tracks_<id>.png and (when ``video``) <id>.mp4 = GT | generated | shuffled with the clip's music."""
    fps, n = float(record["fps"]), len(curves["energy"][0])
    names = ("x", "y", "angle", "scale")
    rows = []
    if "truth" in curves:  # the subject's track: the style's channel (real video: its vertical position)
        ch = STYLE_CHANNEL.get(record.get("style"), 1)
        rows = [(f"GT {names[ch]}", curves["truth"][:, ch], (30, 30, 30)),
                (f"generated {names[ch]}", curves["gen"][:, ch], (40, 90, 200)),
                (f"shuffled {names[ch]}", curves["shuf"][:, ch], (200, 110, 20))]
    rows += [(f"{lab} energy", e, col) for lab, e, col in zip(("GT", "generated", "shuffled"), curves["energy"],
                                                               ((30, 30, 30), (40, 90, 200), (200, 110, 20)))]
    inside = lambda times: times[times < n / fps]
    plot_tracks(out / f"tracks_{record['id']}.png", fps, rows, inside(arrays["beat_times"]),
                inside(arrays["downbeat_times"]),
                inside(partner_arrays["beat_times"]),
                f"{record['id']} ({record['style']}, {record['bpm']:g} BPM): '{record['caption']}'")
    if not video:
        return
    from ...audio.io import load_audio
    from ...video.writer import write_video

    tiles = np.concatenate([arrays["frames"][:n], gen[:n], shuf[:n]], axis=2)
    tiles = tiles.repeat(VIDEO_ZOOM, axis=1).repeat(VIDEO_ZOOM, axis=2)
    audio = load_audio(data / record["audio"], duration=n / fps) if record.get("audio") else None
    write_video(out / f"{record['id']}.mp4", tiles, fps, audio=audio)


def evaluate(settings: EvalSettings, command: str = "") -> dict:
    """Evaluate ``settings.model`` (or, with ``ground_truth``, the data set's own frames) on the first
    ``settings.clips`` validation clips; writes report.json, report.md, plots and videos to
    ``settings.out`` and returns the report. ``command`` is recorded in it."""
    t0 = time.perf_counter()
    records = fmt.read_manifest(settings.data, "val")[: settings.clips]
    if len(records) < 2:
        raise TrainError(f"'{settings.data}' has {len(records)} validation clip(s); need at least 2 (the shuffled-music "
                         "control needs a partner clip).")
    model = None if settings.ground_truth else load_model(settings.model)
    settings.out.mkdir(parents=True, exist_ok=True)
    loaded = [ClipArrays(fmt.load_clip(settings.data, r)) for r in records]
    partners = pick_partners(records, settings.seed)
    clips, gen_seconds = [], 0.0
    for i, (record, arrays) in enumerate(zip(records, loaded)):
        j, _ = partners[i]
        if model is None:
            gen, shuf = arrays["frames"], loaded[j]["frames"]
        else:
            sampling = dict(num_frames=settings.frames, steps=settings.steps, cfg=settings.cfg,
                            prompt_guidance=settings.prompt_guidance, seed=settings.seed,
                            context_length=settings.context_length)
            g0 = time.perf_counter()  # the shuffled-music video keeps this clip's caption and first frame
            gen = generate(model, arrays["frames"][0], arrays, record, record["caption"], **sampling)
            shuf = generate(model, arrays["frames"][0], loaded[j], records[j], record["caption"], **sampling)
            gen_seconds += time.perf_counter() - g0
        result, curves = evaluate_clip(record, arrays, records[j], loaded[j], gen, shuf, settings)
        result["partner_rule_ok"] = partners[i][1]
        clips.append(result)
        if i < max(settings.plots, settings.videos):
            save_clip_outputs(settings.out, record, arrays, loaded[j], gen, shuf, curves, settings.data, i < settings.videos)
        style = f"; style {result['style']['generated']}" if "style" in result else ""
        print(f"[evaluate] {i + 1}/{len(records)} {record['id']} ({record.get('style') or 'real video'}): "
              f"BAS gt {result['beat']['gt_own_bas']:.2f} gen {result['beat']['gen_own_bas']:.2f} "
              f"control {result['beat']['shuf_orig_bas']:.2f}{style}", flush=True)
    summary = summarize(clips)
    info = {"command": command,
            "model": "ground truth (--gt-as-generated)" if model is None else str(settings.model),
            "data": str(settings.data), "clips": len(clips), "frames": min(c["frames"] for c in clips),
            "size": int(records[0]["width"]), "fps": float(records[0]["fps"]), "sigma_frames": settings.sigma_frames,
            "steps": settings.steps, "cfg": settings.cfg,
            "prompt_guidance": settings.prompt_guidance, "seed": settings.seed, "context_length": settings.context_length,
            "partners_ok": sum(ok for _, ok in partners), "seconds": time.perf_counter() - t0,
            "generation_seconds": gen_seconds}
    report = {"info": info, "summary": summary,
              "targets": [{"target": n, "pass": bool(ok), "value": v} for n, ok, v in targets(summary)],
              "clips": clips}
    (settings.out / "report.json").write_text(json.dumps(finite_json(report), indent=2) + "\n")
    write_markdown(settings.out / "report.md", info, summary)
    print(f"[evaluate] wrote {settings.out / 'report.md'} in {info['seconds']:.0f} s")
    return report
