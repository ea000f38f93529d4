"""How close generated frames look to the truth: PSNR, SSIM, and the tracked subject's colour
(CIELAB Delta E), size and mask IoU against the reference subject's."""

from __future__ import annotations

import numpy as np

from .tracking import SubjectModel, subject_core

SSIM_SIGMA = 1.5  # Wang et al. 2004: Gaussian window, K1 0.01, K2 0.03 (scikit-image's defaults)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR (dB) of two uint8-range arrays over all their values; inf when equal."""
    from skimage.metrics import peak_signal_noise_ratio

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float("inf") if np.array_equal(a, b) else float(peak_signal_noise_ratio(a, b, data_range=255.0))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of two images (or frame stacks) [..., H, W, C] in 0..255, Wang et al. 2004's form."""
    from skimage.metrics import structural_similarity

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    pairs = zip(a.reshape(-1, *a.shape[-3:]), b.reshape(-1, *b.shape[-3:]))
    return float(np.mean([structural_similarity(x, y, data_range=255.0, channel_axis=-1, gaussian_weights=True,
                                                 sigma=SSIM_SIGMA, use_sample_covariance=False) for x, y in pairs]))


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB 0..255 [..., 3] -> CIELAB (D65) [..., 3]."""
    from skimage.color import rgb2lab

    return rgb2lab(np.asarray(rgb, np.float64) / 255.0, illuminant="D65", channel_axis=-1)


def appearance(generated: np.ndarray, truth: np.ndarray, gen_masks: np.ndarray, true_masks: np.ndarray,
               model: SubjectModel) -> dict[str, float]:
    """PSNR/SSIM over frames 1..T-1 (frame 0 is the reference), subject colour, size and IoU."""
    later = slice(1, None) if len(truth) > 1 else slice(None)
    inner = np.stack([subject_core(m) for m in gen_masks])
    pixels = generated[inner].astype(np.float64)
    color = pixels.mean(0) if len(pixels) else np.zeros(3)
    true_area = np.maximum(true_masks.reshape(len(truth), -1).sum(1), 1)
    gen_area = gen_masks.reshape(len(truth), -1).sum(1)
    union = np.maximum((gen_masks | (true_masks > 0)).reshape(len(truth), -1).sum(1), 1)
    return {
        "psnr": psnr(generated[later], truth[later]),
        "ssim": ssim(generated[later], truth[later]),
        "color_delta_e": float(np.linalg.norm(rgb_to_lab(color) - rgb_to_lab(model.reference_color))),
        "color_rgb_dist": float(np.linalg.norm(color - model.reference_color)),
        "size_error": float(np.mean(np.abs(gen_area - true_area) / true_area)),
        "mask_iou": float(np.mean((gen_masks & (true_masks > 0)).reshape(len(truth), -1).sum(1) / union)),
    }
