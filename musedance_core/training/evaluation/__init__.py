"""Evaluate a MuseDance bundle on held-out SynthDance clips: beat alignment, motion style, appearance.

Run by ``training/evaluate.py`` (and the stage-1 check by ``training/check_appearance.py``).
Modules: ``run`` (generate and score each clip, the report), ``tracking`` (the subject followed
through frames), ``appearance``, ``beat_scores``, ``report``, ``appearance_check``.

For each validation clip (held-out songs) the model animates the clip's first frame with its caption
twice: with the clip's own music and beats, and with **shuffled music** (another validation clip of a
different song whose tempo differs by more than 10 %; same caption, first frame and seed). Measures
(docs/ARCHITECTURE.md, Measures):

- **BAS** (Bailando): motion beats = local minima of the smoothed frame-difference energy;
  ``--sigma-frames`` frames at the data set's fps; and again with the motion beats of the tracked
  subject's speed (minima placed between frames) at Bailando's own 50 ms. **VS** = beat-phase vector strength. Each for
  ground truth vs its beats, generated vs its beats, and the shuffled-music video vs the ORIGINAL
  clip's beats (the control: if the music drives the motion this is low) and vs its own music's beats.
  Music beats are the exact ``beat_times``.
- **Style accuracy**: the subject is tracked in the frames (colour segmentation learned from the first
  frame and ``mask[0]``; centroid -> x, y; sqrt(area ratio) -> scale; rotation search of the first
  frame's subject patch -> angle), the track is classified with ``classify_motion`` against the exact
  beat features of the music used, and compared with the caption's style. The tracker is validated on
  the ground-truth frames in the same run.
- **Appearance**: PSNR and SSIM (Gaussian window, sigma 1.5) of generated vs ground-truth frames 1..T-1,
  subject colour error (CIELAB Delta E 1976 and RGB distance of the tracked subject's mean colour vs
  the reference subject's), subject size error and mask IoU vs the ground-truth mask.

``--gt-as-generated`` evaluates the ground truth as if it were generated (the shuffled video is then
the partner clip's ground truth), which validates the evaluator without a model.
Writes ``report.md``, ``report.json``, ``tracks_<id>.png`` plots and ``<id>.mp4`` side-by-side videos.
"""
