"""Training reports: the loss plot (PNG, Pillow only) and validation videos with sound."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

PLOT_SIZE = (900, 360)
MARGIN = 50


def plot_losses(csv_path: str | Path, png_path: str | Path, smooth: int = 25) -> Path:
    """Loss per step (grey) and its running mean over ``smooth`` steps (blue), log scale."""
    from PIL import Image, ImageDraw

    rows = list(csv.DictReader(open(csv_path)))
    width, height = PLOT_SIZE
    img = Image.new("RGB", PLOT_SIZE, (250, 250, 248))
    draw = ImageDraw.Draw(img)
    if len(rows) >= 2:
        steps = np.array([float(r["step"]) for r in rows])
        loss = np.log10(np.maximum(np.array([float(r["loss"]) for r in rows]), 1e-8))
        mean = np.convolve(loss, np.ones(smooth) / smooth, mode="valid") if len(loss) >= smooth else loss
        lo, hi = float(loss.min()), float(loss.max()) + 1e-9

        def xy(s: float, v: float) -> tuple[float, float]:
            x = MARGIN + (s - steps[0]) / max(steps[-1] - steps[0], 1) * (width - 2 * MARGIN)
            return x, height - MARGIN - (v - lo) / (hi - lo) * (height - 2 * MARGIN)

        draw.line([xy(s, v) for s, v in zip(steps, loss)], fill=(190, 190, 190))
        draw.line([xy(s, v) for s, v in zip(steps[len(steps) - len(mean):], mean)], fill=(40, 90, 200), width=2)
        draw.text((MARGIN, 10), f"loss (log10), {len(rows)} steps; last mean {10 ** mean[-1]:.4f}", fill=(0, 0, 0))
        draw.text((5, MARGIN - 10), f"{10 ** hi:.3g}", fill=(0, 0, 0))
        draw.text((5, height - MARGIN - 10), f"{10 ** lo:.3g}", fill=(0, 0, 0))
        draw.text((width - MARGIN - 60, height - MARGIN + 10), f"step {int(steps[-1])}", fill=(0, 0, 0))
    png_path = Path(png_path)
    img.save(png_path)
    return png_path


def validation_videos(model, cfg, out_dir: str | Path) -> list[Path]:
    """Animate the first frame of a few validation clips with their own music; mp4s with sound."""
    import torch

    from ..audio.io import load_audio
    from ..pipeline import AnimateSettings, MuseDancePipeline
    from ..video.writer import write_video
    from .data import clip_conditions, read_manifest

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.eval()
    written = []
    from .dataset import read_manifest as all_records

    records = [r for r in all_records(cfg.data) if r.get("split") == "val"] or read_manifest(cfg.data, "train")
    for record in records[: cfg.validation_clips]:
        with np.load(Path(cfg.data) / record["clip"]) as arrays:
            frames = arrays["frames"]
            music, beats = clip_conditions(arrays, record, model.config.music_encoder)
        settings = AnimateSettings(num_frames=0, width=frames.shape[2], height=frames.shape[1],
                                   steps=cfg.validation_steps, context_length=cfg.num_frames, seed=0)
        with torch.no_grad():
            result = MuseDancePipeline(model)(frames[0], music, beats, record.get("caption", ""), "", settings)
        audio = load_audio(Path(cfg.data) / record["audio"]) if record.get("audio") else None
        side_by_side = np.concatenate([frames.astype(np.float32) / 255.0, result.frames.numpy()], axis=2)
        path = write_video(out_dir / f"{record['id']}.mp4", side_by_side, record["fps"], audio=audio)
        written.append(path)
    return written
