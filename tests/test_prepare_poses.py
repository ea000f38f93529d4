"""Body keypoints from a local ViTPose folder (a tiny random one made here by transformers and saved as
a user's folder would be; nothing is downloaded) and body-part maps from hand-made keypoints."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from musedance_core.errors import InputError
from musedance_core.training.prepare.model_folders import ModelFolderError
from musedance_core.training.prepare.poses import (
    COCO_KEYPOINTS,
    NUM_KEYPOINTS,
    PART_NAMES,
    load_pose_model,
    mask_boxes,
    part_maps,
)

transformers = pytest.importorskip("transformers")

LABEL = {name: i + 1 for i, name in enumerate(PART_NAMES)}


def make_vitpose(folder: Path, seed: int = 0, **backbone) -> Path:
    """A folder like usyd-community/vitpose-base-simple with a 2-layer, 16-wide backbone on 64x48 crops."""
    sizes = dict(image_size=[64, 48], patch_size=[16, 16], hidden_size=16, num_hidden_layers=2,
                 num_attention_heads=2, mlp_ratio=2, out_indices=[2])
    config = transformers.VitPoseConfig(backbone_config=transformers.VitPoseBackboneConfig(**(sizes | backbone)),
                                        num_labels=NUM_KEYPOINTS)
    torch.manual_seed(seed)
    transformers.VitPoseForPoseEstimation(config).save_pretrained(folder)
    transformers.VitPoseImageProcessor(size={"height": 64, "width": 48}).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def vitpose(tmp_path_factory) -> Path:
    return make_vitpose(tmp_path_factory.mktemp("models") / "vitpose-tiny")


def copy_of(folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(folder, tmp_path / folder.name))


# -- the model --------------------------------------------------------------------------------------

def test_tiny_vitpose_gives_17_keypoints_per_frame_in_pixels(vitpose, no_network):
    model = load_pose_model(vitpose)
    frames = np.random.default_rng(0).integers(0, 256, (5, 96, 80, 3), dtype=np.uint8)
    boxes = np.array([[10, 5, 50, 90]] * 5, np.float32)
    kp = model.keypoints(frames, boxes, batch_size=2)
    assert kp.shape == (5, 17, 3) and kp.dtype == np.float32 and np.isfinite(kp).all()
    # a top-down model places keypoints inside its (padded) box
    assert (kp[..., 0] > -40).all() and (kp[..., 0] < 100).all() and (kp[..., 1] > -30).all()
    assert np.allclose(kp, model.keypoints(frames, boxes), atol=1e-3)  # batching changes nothing but rounding
    whole = model.keypoints(frames[:2])  # no boxes: the whole frame
    assert whole.shape == (2, 17, 3) and np.isfinite(whole).all()


def test_vitpose_plus_experts_run_with_the_coco_index(tmp_path, no_network):
    folder = make_vitpose(tmp_path / "vitpose-plus-tiny", num_experts=2, part_features=4)
    model = load_pose_model(folder)
    assert model.experts
    kp = model.keypoints(np.zeros((2, 64, 64, 3), np.uint8))
    assert kp.shape == (2, 17, 3)


def test_keypoint_inputs_are_checked(vitpose):
    model = load_pose_model(vitpose)
    frames = np.zeros((2, 32, 32, 3), np.uint8)
    with pytest.raises(InputError, match=r"boxes must be \[T, 4\] = \(2, 4\)"):
        model.keypoints(frames, np.zeros((3, 4)))
    with pytest.raises(InputError, match=r"boxes\[1\].*empty"):
        model.keypoints(frames, np.array([[0, 0, 10, 10], [5, 5, 5, 20]]))
    with pytest.raises(InputError, match="uint8"):
        model.keypoints(frames.astype(np.float32))


def test_mask_boxes_pad_the_subject_and_fall_back_to_the_frame():
    masks = np.zeros((2, 100, 80), np.uint8)
    masks[0, 20:60, 30:50] = 1
    boxes = mask_boxes(masks)
    assert np.allclose(boxes[0], [28, 16, 52, 64])  # 10% of 20 x 40 on each side
    assert np.allclose(boxes[1], [0, 0, 80, 100])


# -- folder errors ----------------------------------------------------------------------------------

def test_missing_folder_is_named_with_the_fix(tmp_path):
    with pytest.raises(ModelFolderError, match=r"pose model.*not found.*vitpose-base-simple"):
        load_pose_model(tmp_path / "nowhere")


def test_another_model_is_named(tmp_path):
    folder = tmp_path / "bert"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertModel"]}))
    with pytest.raises(ModelFolderError, match=r"'bert' model \(BertModel\), not ViTPose"):
        load_pose_model(folder)


def test_missing_weights(vitpose, tmp_path):
    folder = copy_of(vitpose, tmp_path)
    (folder / "model.safetensors").unlink()
    with pytest.raises(ModelFolderError, match=r"no weights.*model.safetensors"):
        load_pose_model(folder)


def test_corrupt_weights(vitpose, tmp_path):
    folder = copy_of(vitpose, tmp_path)
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 3])
    with pytest.raises(ModelFolderError, match=r"cannot load the model in .*vitpose-tiny.*damaged"):
        load_pose_model(folder)


def test_weights_of_another_size(vitpose, tmp_path):
    folder = copy_of(vitpose, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    backbone = config["backbone_config"]
    backbone.update(num_hidden_layers=3, out_indices=[3], out_features=["stage3"],  # a layer more than the weights
                    stage_names=["stem", "stage1", "stage2", "stage3"])
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFolderError, match=r"do not fit its config.json: \d+ tensors missing"):
        load_pose_model(folder)


def test_missing_preprocessor_config(vitpose, tmp_path):
    folder = copy_of(vitpose, tmp_path)
    (folder / "preprocessor_config.json").unlink()
    with pytest.raises(ModelFolderError, match=r"no preprocessor_config.json"):
        load_pose_model(folder)


# -- part maps --------------------------------------------------------------------------------------

# A stick figure facing the camera, arms out to the sides (its left is the image's right), 256 x 256.
STICK = {"nose": (128, 40), "left_eye": (134, 36), "right_eye": (122, 36), "left_ear": (140, 40),
         "right_ear": (116, 40), "left_shoulder": (150, 70), "right_shoulder": (106, 70),
         "left_elbow": (190, 70), "right_elbow": (66, 70), "left_wrist": (230, 70), "right_wrist": (26, 70),
         "left_hip": (142, 140), "right_hip": (114, 140), "left_knee": (150, 190), "right_knee": (106, 190),
         "left_ankle": (155, 240), "right_ankle": (101, 240)}
# (x, y) -> the part a pixel there belongs to
EXPECTED = {(128, 30): "head", (128, 100): "torso", (170, 72): "left_upper_arm", (215, 68): "left_forearm",
            (86, 70): "right_upper_arm", (40, 72): "right_forearm", (147, 165): "left_thigh",
            (153, 220): "left_shin", (110, 165): "right_thigh", (103, 220): "right_shin"}


def stick_keypoints(frames: int = 1, score: float = 0.9) -> np.ndarray:
    kp = np.array([[*STICK[name], score] for name in COCO_KEYPOINTS], np.float32)
    return np.repeat(kp[None], frames, axis=0)


def stick_mask(size: int = 256) -> np.ndarray:
    """The figure's silhouette: a 9 px wide band around each limb, the torso quadrilateral, a head disc."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    mask = (x - 128) ** 2 + (y - 36) ** 2 <= 18 ** 2
    mask |= (x >= 108) & (x <= 148) & (y >= 68) & (y <= 142)
    for a, b in (("left_shoulder", "left_wrist"), ("right_shoulder", "right_wrist"), ("left_hip", "left_knee"),
                 ("left_knee", "left_ankle"), ("right_hip", "right_knee"), ("right_knee", "right_ankle")):
        (ax, ay), (bx, by) = STICK[a], STICK[b]
        t = np.clip(((x - ax) * (bx - ax) + (y - ay) * (by - ay)) / ((bx - ax) ** 2 + (by - ay) ** 2), 0, 1)
        mask |= (x - ax - t * (bx - ax)) ** 2 + (y - ay - t * (by - ay)) ** 2 <= 9 ** 2
    return mask.astype(np.uint8)


@pytest.mark.parametrize("with_mask", [True, False])
def test_stick_figure_pixels_get_their_parts(with_mask):
    mask = stick_mask()[None] if with_mask else None
    parts = part_maps(stick_keypoints(), mask, (256, 256))
    assert parts.shape == (1, 256, 256) and parts.dtype == np.uint8
    for (x, y), name in EXPECTED.items():
        assert parts[0, y, x] == LABEL[name], f"pixel {(x, y)} should be {name}, got {parts[0, y, x]}"
    assert parts[0, 10, 10] == 0 and parts[0, 200, 220] == 0  # background
    if with_mask:
        assert np.array_equal(parts[0] > 0, mask[0] > 0)  # every subject pixel labelled, nothing else
    else:
        assert set(np.unique(parts)) == set(range(len(PART_NAMES) + 1))
        assert not parts[0, 100:130, 30:60].any()  # below the arm, beside the torso: not body


def test_unconfident_keypoints_leave_their_limb_out():
    kp = stick_keypoints()
    kp[0, COCO_KEYPOINTS.index("left_wrist"), 2] = 0.1
    parts = part_maps(kp, stick_mask()[None], (256, 256))
    assert LABEL["left_forearm"] not in parts
    assert parts[0, 68, 215] == LABEL["left_upper_arm"]  # the forearm's pixels go to the nearest segment left
    kp[0, :, 2] = 0.0
    assert not part_maps(kp, stick_mask()[None], (256, 256)).any()  # no skeleton: no parts
    kp[0, [COCO_KEYPOINTS.index("left_eye"), COCO_KEYPOINTS.index("right_knee")], 2] = 0.9
    assert not part_maps(kp, stick_mask()[None], (256, 256)).any()  # two confident points no limb joins


def test_part_maps_check_shapes():
    with pytest.raises(InputError, match=r"keypoints must be \[T, 17"):
        part_maps(np.zeros((1, 5, 3)), None, (64, 64))
    with pytest.raises(InputError, match=r"masks must be \[T, H, W\] = \(1, 64, 64\)"):
        part_maps(stick_keypoints(), np.zeros((1, 32, 32), np.uint8), (64, 64))


def test_part_maps_of_a_clip_are_fast():
    """48 frames at 256 x 256 (the data set's default clip): measured 0.11 s on one core."""
    kp = stick_keypoints(48) + np.random.default_rng(0).normal(0, 3, (48, 17, 3)).astype(np.float32) * [1, 1, 0]
    mask = np.repeat(np.ones((1, 256, 256), np.uint8), 48, axis=0)  # the worst case: the whole frame
    part_maps(kp[:2], mask[:2], (256, 256))
    for masks in (mask, None):
        t0 = time.perf_counter()
        parts = part_maps(kp, masks, (256, 256))
        assert time.perf_counter() - t0 < 0.5
        assert parts.any(axis=(1, 2)).all()
