"""Learned music encoders from local Hugging Face folders: MERT-v1, HuBERT, wav2vec2 and CLAP.

Four steps, one module each:

- ``folders``: what a model folder holds (family, sample rate, weight files), read from its JSON
  files without loading anything; ``find_backbones`` scans a models folder.
- ``network``: the transformers network the folder's config describes, and its weights loaded
  into it name by name (MERT-v1 runs as transformers' HubertModel).
- ``encoder``: ``load_backbone`` and ``BackboneEncoder``, which turns audio into feature rows
  per video frame, window by window.
- ``selection``: which encoder a name, a folder or a trained model's encoder id means, and the
  list the ComfyUI node and the CLI offer.
"""
