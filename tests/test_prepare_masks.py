"""Subject masks (a tiny random SegFormer saved as a user's folder would be, and the static-camera
fallback measured against the true mask of a generated dance) and shot-cut detection on generated
videos: cuts at the right frame, none for fast dancers, pans or flashes on the beat."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage

from musedance_core.errors import MuseDanceError
from musedance_core.training.prepare.model_folders import (
    ModelFolderError,
    check_model_folder,
)
from musedance_core.training.prepare.shots import (
    MIN_CHANGED,
    MIN_DISTANCE,
    ShotCutDetector,
    changed_blocks,
    detect_cuts,
    frame_signature,
    signature_distance,
)
from musedance_core.training.prepare.subject_masks import (
    MASK_FIX,
    background_mismatch,
    estimate_background,
    is_static_camera,
    load_mask_model,
    static_camera_masks,
    subject_classes,
)

transformers = pytest.importorskip("transformers")

# ADE20K's first labels, as nvidia/segformer-b2-finetuned-ade-512-512 names them (12 is "person").
ADE_LABELS = ["wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed ", "windowpane", "grass",
              "cabinet", "sidewalk", "person", "earth", "door", "table"]
SHIRT, SKIN, PANTS = np.array([170.0, 60, 55]), np.array([225.0, 180, 150]), np.array([40.0, 50, 110])


# -- generated videos -------------------------------------------------------------------------------

def _capsule(yy, xx, p0, p1, r):
    """Pixels within r of the segment p0-p1 (a limb)."""
    (y0, x0), (y1, x1) = p0, p1
    dy, dx = y1 - y0, x1 - x0
    t = np.clip(((yy - y0) * dy + (xx - x0) * dx) / (dy * dy + dx * dx + 1e-9), 0, 1)
    return (yy - y0 - t * dy) ** 2 + (xx - x0 - t * dx) ** 2 <= r * r


def _ellipse(yy, xx, c, ry, rx):
    return ((yy - c[0]) / ry) ** 2 + ((xx - c[1]) / rx) ** 2 <= 1


def _dancer(h, w, cy, cx, ph, scale):
    """[(part mask, colour)] of a figure: legs (pants), torso (shirt), arms and head (skin), posed by phase ph."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    s = scale
    hip, shoulder = (cy + 14 * s, cx), (cy - 14 * s, cx)
    legs = [_capsule(yy, xx, hip, (hip[0] + 30 * s, cx + side * (8 + 10 * np.sin(3 * ph + side)) * s), 5 * s)
            for side in (-1, 1)]
    arms = [_capsule(yy, xx, (shoulder[0], cx + side * 8 * s),
                     (shoulder[0] + 24 * s * np.cos(2 * ph * side + 1), cx + side * (14 + 10 * abs(np.sin(2 * ph + side))) * s),
                     3.5 * s) for side in (-1, 1)]
    torso = _ellipse(yy, xx, (cy, cx), 17 * s, (9 + 2 * np.sin(3 * ph)) * s)
    head = _ellipse(yy, xx, (cy - 26 * s, cx), 7 * s, 6 * s)
    return [(legs[0] | legs[1], PANTS), (torso, SHIRT), (arms[0] | arms[1], SKIN), (head, SKIN)]


def _studio(h, w, rng):
    """A static background: colour gradient, smooth texture, stripes, and two patches coloured like the
    dancer's shirt and trousers (where the fallback cannot tell them apart)."""
    yy, xx = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    bg = np.stack([90 + 80 * xx, 120 + 50 * yy, 140 - 60 * xx * yy], -1)
    texture = ndimage.gaussian_filter(rng.normal(0, 1, (h, w)), 2.0)
    texture /= texture.std()
    bg += 12 * texture[..., None] + 8 * np.sin(2 * np.pi * (9 * xx + 3 * yy))[..., None]
    poster = np.s_[int(.15 * h):int(.45 * h), int(.62 * w):int(.85 * w)]
    bg[poster] = SHIRT + [12, 10, 8] + 6 * texture[poster][..., None]
    bg[int(.8 * h):, int(.05 * w):int(.4 * w)] = PANTS + [10, 12, 8]
    return bg


def static_dance(frames=48, h=128, w=160, noise=5.0, seed=0, pan=0.0):
    """A dancer moving across a static camera's view (4 s at 12 fps by default) -> (frames uint8
    [T, H, W, 3], true masks uint8 [T, H, W], background float [H, W, 3]). ``pan`` px/frame moves the
    camera instead; every 6th frame is 15 % brighter (a light pulse on the beat)."""
    rng = np.random.default_rng(seed)
    wide = _studio(h, w + int(pan * frames) + 1, rng)
    video, masks = np.empty((frames, h, w, 3), np.uint8), np.zeros((frames, h, w), np.uint8)
    for t in range(frames):
        ph = 2 * np.pi * t / frames
        x0 = round(pan * t)
        img = wide[:, x0:x0 + w].copy()
        for part, colour in _dancer(h, w, h * 0.5 + 4 * h / 128 * np.sin(4 * ph), w * (0.5 + 0.3 * np.sin(ph)), ph,
                                    h / 128):
            shade = 1 + 0.1 * (np.arange(h)[:, None] - h / 2) / (30 * h / 128)
            img[part] = colour * np.broadcast_to(shade, (h, w))[part][:, None]
            masks[t] |= part
        if t % 6 == 3:
            img *= 1.15
        video[t] = np.clip(img + rng.normal(0, noise, img.shape), 0, 255).round().astype(np.uint8)
    return video, masks, wide[:, :w]


def _stage(h, w, seed):
    """A random stage for shot tests: a two-colour gradient, texture and a few coloured boxes."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    angle = rng.uniform(0, np.pi)
    t = (np.cos(angle) * xx + np.sin(angle) * yy)[..., None]
    img = rng.uniform(20, 200, 3) * (1 - t) + rng.uniform(20, 200, 3) * t
    texture = ndimage.gaussian_filter(rng.normal(0, 1, (h, w)), 1.5)
    img += 10 * texture[..., None] / texture.std()
    for _ in range(4):
        y0, x0 = rng.integers(0, h - 10), rng.integers(0, w - 10)
        img[y0:y0 + rng.integers(8, h // 2), x0:x0 + rng.integers(8, w // 2)] = rng.uniform(20, 200, 3)
    return np.clip(img, 0, 255)  # what a camera records: no detail hidden below black for a flash to show


def _with_dancer(stage, t, speed):
    """``stage`` with a big dancer swinging across 70 % of the frame ``speed`` times a second (12 fps)."""
    h, w = stage.shape[:2]
    ph = 2 * np.pi * speed * t / 12
    img = stage.copy()
    for part, colour in _dancer(h, w, h * (0.5 + 0.1 * np.sin(2.3 * ph)), w * (0.5 + 0.35 * np.sin(ph)), ph,
                                1.4 * h / 128):
        img[part] = colour
    return img


def shots_video(seed, size=128, speed=1.0, flash=None, lengths=(14, 19, 24, 29, 34)):
    """Shots of different stages, each with a fast dancer -> (frames, first frames of shots 1..)."""
    rng = np.random.default_rng(seed)
    frames, cuts = [], []
    for k, n in enumerate(lengths):
        stage = _stage(size, size, 100 * seed + k)
        if k:
            cuts.append(len(frames))
        for t in range(n):
            img = _with_dancer(stage, t, speed)
            if flash is not None and t % 6 == 3:  # on every beat at 120 BPM
                img = flash(img)
            frames.append(np.clip(img + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8))
    return frames, cuts


def _iou(a, b):
    a, b = a.astype(bool), b.astype(bool)
    return (a & b).sum() / max(1, (a | b).sum())


# -- static-camera fallback -------------------------------------------------------------------------

@pytest.mark.parametrize("seed, h, w", [(0, 128, 160), (1, 256, 256)])
def test_static_camera_masks_overlap_the_true_subject(seed, h, w):
    video, truth, background = static_dance(h=h, w=w, seed=seed)
    assert is_static_camera(video)
    estimated = estimate_background(video)
    assert estimated.dtype == np.float32 and estimated.shape == (h, w, 3)
    assert np.median(np.abs(estimated - np.clip(background, 0, 255))) < 3.0  # the dancer is gone from it
    masks = static_camera_masks(video, estimated)
    assert masks.dtype == np.uint8 and masks.shape == truth.shape and set(np.unique(masks)) <= {0, 1}
    ious = np.array([_iou(m, t) for m, t in zip(masks, truth)])
    # measured: seed 0 at 128 x 160 mean 0.900 (min 0.784), seed 1 at 256 x 256 mean 0.901 (min 0.788)
    assert ious.mean() >= 0.85, f"mean IoU {ious.mean():.3f}, min {ious.min():.3f}"
    assert ious.min() >= 0.7, f"mean IoU {ious.mean():.3f}, min {ious.min():.3f}"
    np.testing.assert_array_equal(static_camera_masks(video), masks)  # default background: the same median


def test_moving_camera_is_not_static():
    static, _, _ = static_dance(seed=2)
    panned, _, _ = static_dance(seed=2, pan=2.0)
    assert background_mismatch(static) < 0.15  # about the dancer's share of the frame
    assert background_mismatch(panned) > 0.5
    assert is_static_camera(static) and not is_static_camera(panned)


def test_fallback_checks_its_inputs():
    video, _, _ = static_dance(frames=4, h=32, w=32)
    with pytest.raises(ValueError, match=r"uint8 \[T, H, W, 3\]"):
        static_camera_masks(video.astype(np.float32))
    with pytest.raises(ValueError, match="background must be"):
        static_camera_masks(video, np.zeros((16, 16, 3), np.float32))


# -- segmentation model folders ---------------------------------------------------------------------

def make_segformer(folder: Path, labels=ADE_LABELS, seed=0) -> Path:
    """A tiny random SegFormer with ADE-style labels, saved with its image processor."""
    id2label = dict(enumerate(labels))
    config = transformers.SegformerConfig(
        num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1], hidden_sizes=[8, 16], patch_sizes=[7, 3],
        strides=[4, 2], num_attention_heads=[1, 2], mlp_ratios=[2, 2], decoder_hidden_size=16,
        id2label=id2label, label2id={v: k for k, v in id2label.items()})
    torch.manual_seed(seed)
    model = transformers.SegformerForSemanticSegmentation(config)
    if len(labels) > 12:
        with torch.no_grad():  # favour "person" a little, so masks hold both values
            model.decode_head.classifier.bias[12] += 0.5
    model.save_pretrained(folder)
    transformers.SegformerImageProcessor(size={"height": 64, "width": 64}).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def segformer(tmp_path_factory) -> Path:
    return make_segformer(tmp_path_factory.mktemp("mask_models") / "segformer-tiny-ade")


def test_segformer_folder_gives_masks_at_frame_size(segformer, no_network):
    model = load_mask_model(segformer)
    assert model.id == "segformer:segformer-tiny-ade"
    assert model.classes == [12] and model.labels == ["person"]
    frames = np.random.default_rng(0).integers(0, 256, (5, 40, 56, 3), dtype=np.uint8)
    masks = model.masks(frames, batch_size=2)
    assert masks.dtype == np.uint8 and masks.shape == (5, 40, 56) and set(np.unique(masks)) <= {0, 1}
    np.testing.assert_array_equal(model.masks(frames, batch_size=8), masks)  # batching changes nothing

    # oracle: the processor, the network, bilinear upsampling, argmax, by hand
    with torch.no_grad():
        inputs = model.processor(images=[frames[3]], return_tensors="pt")
        logits = model.model(**inputs).logits
        up = torch.nn.functional.interpolate(logits, size=(40, 56), mode="bilinear", align_corners=False)
    np.testing.assert_array_equal(masks[3], (up[0].argmax(0) == 12).numpy().astype(np.uint8))


def test_subject_labels_from_names():
    ade = {0: "wall", 12: "person;individual;someone;somebody;mortal;soul", 30: "manhole", 40: "Woman"}
    assert subject_classes(ade) == [12, 40]
    assert subject_classes({0: "road", 11: "person", 12: "rider", 13: "car"}) == [11, 12]  # Cityscapes
    assert subject_classes(ade, ["WALL", "soul"]) == [0, 12]
    with pytest.raises(ModelFolderError, match=r"--mask-labels \['sofa'\] not among"):
        subject_classes(ade, ["wall", "sofa"])


def test_labels_override_when_no_person_label(tmp_path):
    parts = ["Background", "Hat", "Hair", "Upper-clothes", "Face", "Left-arm", "Right-arm"]  # a human-parsing model
    folder = make_segformer(tmp_path / "parsing", labels=parts)
    with pytest.raises(ModelFolderError) as error:
        load_mask_model(folder)
    message = str(error.value)
    assert str(folder) in message and "'Upper-clothes'" in message and "--mask-labels" in message
    model = load_mask_model(folder, labels=["hair", "Upper-clothes", "face"])
    assert model.classes == [2, 3, 4]


def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def _clip_folder(folder: Path, _segformer: Path) -> Path:
    transformers.CLIPConfig().save_pretrained(folder)
    return folder


def _classifier(folder: Path, segformer: Path) -> Path:
    _copy(segformer, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config | {"architectures": ["SegformerForImageClassification"]}))
    return folder


def _without(name: str):
    def make(folder: Path, segformer: Path) -> Path:
        _copy(segformer, folder)
        (folder / name).unlink()
        return folder
    return make


def _truncated(folder: Path, segformer: Path) -> Path:
    _copy(segformer, folder)
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    return folder


def _other_sizes(folder: Path, segformer: Path) -> Path:
    _copy(segformer, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config | {"hidden_sizes": [8, 24]}))
    return folder


def _missing_head(folder: Path, segformer: Path) -> Path:
    from safetensors.torch import load_file, save_file

    _copy(segformer, folder)
    state = load_file(folder / "model.safetensors")
    save_file({k: v for k, v in state.items() if not k.startswith("decode_head.")}, folder / "model.safetensors",
              metadata={"format": "pt"})
    return folder


def _bad_json(name: str):
    def make(folder: Path, segformer: Path) -> Path:
        _copy(segformer, folder)
        (folder / name).write_text("{ not json")
        return folder
    return make


@pytest.mark.parametrize("make, expected", [
    (lambda folder, _: folder, r"folder '.*' not found"),
    (lambda folder, _: (folder.write_text("x"), folder)[1], r"is a file, not a folder"),
    (lambda folder, _: (folder.mkdir(), folder)[1], r"has no config.json"),
    (_bad_json("config.json"), r"cannot read '.*config.json'"),
    (_clip_folder, r"holds a CLIP model \(no architectures listed\), not a semantic-segmentation model"),
    (_classifier, r"holds a SegformerForImageClassification, not a \.\.\.ForSemanticSegmentation model"),
    (_without("model.safetensors"), r"has config.json but no weights; expected model.safetensors"),
    (_without("preprocessor_config.json"), r"has no preprocessor_config.json"),
    (_bad_json("preprocessor_config.json"), r"cannot read '.*preprocessor_config.json'"),
    (_truncated, r"cannot load the weights in '.*' \(.*\): the file is damaged or incomplete"),
    (_other_sizes, r"cannot load the weights in '.*' .*does not fit config.json"),
    (_missing_head, r"lack \d+ tensors its config.json describes \(e.g. decode_head"),
], ids=["missing", "file", "no-config", "bad-config", "clip", "classifier", "no-weights", "no-preprocessor",
        "bad-preprocessor", "truncated", "other-sizes", "missing-tensors"])
def test_bad_mask_model_folders_say_which_and_how_to_fix(make, expected, segformer, tmp_path, no_network):
    folder = make(tmp_path / "mask-model", segformer)
    with pytest.raises(ModelFolderError, match=expected) as error:
        load_mask_model(folder)
    message = str(error.value)
    assert isinstance(error.value, MuseDanceError)
    assert str(folder) in message, message
    assert message.startswith("mask model (--mask-model)") and message.endswith(MASK_FIX), message


def test_hub_names_are_never_downloaded(no_network):
    with pytest.raises(ModelFolderError, match="not found"):
        load_mask_model("nvidia/segformer-b2-finetuned-ade-512-512")


def test_check_model_folder(tmp_path):
    folder = transformers.BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=8).save_pretrained(tmp_path / "bert") or tmp_path / "bert"
    assert check_model_folder(folder, "pose model (--pose-model)", "Give ViTPose.") == folder
    with pytest.raises(ModelFolderError, match=r"^pose model \(--pose-model\): folder '.*nowhere' not found; "
                                               r"expected .*\. Give ViTPose\.$"):
        check_model_folder(tmp_path / "nowhere", "pose model (--pose-model)", "Give ViTPose.")


# -- shot cuts --------------------------------------------------------------------------------------

@pytest.mark.integration
@pytest.mark.parametrize("size", [128, 256])
@pytest.mark.parametrize("lookahead", [0, 1])
def test_hard_cuts_found_at_their_frame_despite_fast_dancers(size, lookahead):
    for seed in range(3):
        frames, cuts = shots_video(seed, size, speed=2.0)  # the dancer crosses 70 % of the frame in 3 frames
        assert detect_cuts(frames, lookahead=lookahead) == cuts, f"seed {seed}"


def test_streamed_answers_match_detect_cuts():
    frames, cuts = shots_video(3, 128)
    detector = ShotCutDetector()
    assert [i for i, f in enumerate(frames) if detector.push(f)] == cuts
    assert detector.shot == len(cuts) and detector.count == len(frames)
    late = ShotCutDetector(lookahead=1)
    answers = [late.push(f) for f in frames]
    assert answers[0] is False and [i - 1 for i, cut in enumerate(answers) if cut] == cuts
    assert late.flush() == [False]
    assert detect_cuts(frames[:1], lookahead=2) == [] and detect_cuts(frames[:3], lookahead=2) == []


def test_no_cut_in_one_long_fast_shot_or_a_pan():
    stage = _stage(128, 128, 7)
    rng = np.random.default_rng(0)
    fast = [np.clip(_with_dancer(stage, t, 2.0) + rng.normal(0, 3, stage.shape), 0, 255).astype(np.uint8)
            for t in range(72)]
    assert detect_cuts(fast) == []
    wide = _stage(128, 128 * 3, 8)  # the camera pans 3.2 px/frame (1.8 frame widths in 6 s), the dancer moves
    pan = [np.clip(_with_dancer(wide[:, int(3.2 * t):int(3.2 * t) + 128], t, 1.0) + rng.normal(0, 3, (128, 128, 3)),
                   0, 255).astype(np.uint8) for t in range(72)]
    after = [np.clip(_with_dancer(_stage(128, 128, 9), t, 1.0), 0, 255).astype(np.uint8) for t in range(12)]
    assert detect_cuts(pan) == []
    assert detect_cuts(pan + after) == [72]


def _gain(img):
    return img * 1.5  # clips the bright parts


def _soft_gain(img):
    return img * 1.3


def _white(img):
    return img * 0.6 + 0.4 * 255


def test_a_flash_alone_hardly_moves_the_histograms_or_the_blocks():
    rng = np.random.default_rng(0)
    for seed in range(10):
        img = _with_dancer(_stage(128, 128, seed), 3, 1.0)
        base = frame_signature(np.clip(img + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8))
        for flash in (_gain, _soft_gain, _white):
            lit = frame_signature(np.clip(flash(img) + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8))
            assert signature_distance(base, lit) < MIN_DISTANCE / 2
            assert changed_blocks(base, lit) < MIN_CHANGED / 2


@pytest.mark.integration
@pytest.mark.parametrize("flash, lookahead", [(_soft_gain, 0), (_white, 0), (_gain, 1), (_white, 1)],
                         ids=["x1.3", "white-40%", "x1.5-lookahead", "white-40%-lookahead"])
def test_flashes_on_the_beat_are_not_cuts(flash, lookahead):
    # measured over seeds 0-7 at 1 and 2 swings a second: no false or missed cut in these cases; x1.5
    # (clipping most of the frame) with lookahead=0 gives 4 and 8 false cuts in ~160 flashes
    for seed in range(4):
        frames, cuts = shots_video(seed, 128 if seed % 2 else 256, speed=1.0, flash=flash)
        assert detect_cuts(frames, lookahead=lookahead) == cuts, f"seed {seed}"


def test_shot_detection_is_fast():
    rng = np.random.default_rng(0)
    frames = [np.clip(_with_dancer(_stage(256, 256, 1), t, 1.0) + rng.normal(0, 3, (256, 256, 3)), 0, 255)
              .astype(np.uint8) for t in range(40)]
    best = np.inf
    for _ in range(5):  # the best of 5 runs: the machine is shared
        detector = ShotCutDetector()
        start = time.perf_counter()
        for frame in frames:
            detector.push(frame)
        best = min(best, (time.perf_counter() - start) / len(frames))
    assert best < 1e-3, f"{best * 1e3:.2f} ms per 256 x 256 frame"


def test_detector_checks_its_inputs():
    with pytest.raises(ValueError, match=r"uint8 \[H, W, 3\]"):
        ShotCutDetector().push(np.zeros((32, 32), np.uint8))
    with pytest.raises(ValueError, match="lookahead >= 0"):
        ShotCutDetector(lookahead=-1)
