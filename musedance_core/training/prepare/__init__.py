"""A training data set from a folder of dance videos with sound (training/prepare_dataset.py is
its command line; its docstring lists what a run does).

Modules: ``config`` (the settings), ``sources`` (videos, keys, splits, sidecar captions and mask
files), ``frames`` (frames at the data set's fps and size), ``shots`` (shot cuts), ``selection``
(which clips: inside shots, on the downbeats, with a visible subject), ``subject_masks``
(segmentation model and the static-camera fallback), ``poses`` (body-part maps), ``captions``
(vision-language captions) and ``template_captions`` (captions without a model),
``model_folders`` (checks of local model folders), ``clips`` (one video to clips), ``run`` (the
whole folder, resumable).
"""
