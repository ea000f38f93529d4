"""The learned beat and downbeat tracker's training side (the tracker itself is
``musedance_core/audio/beat_net.py`` + ``beat_decode.py``). Training music comes only from this
project's own generator, never from a public corpus:

- ``styles``: the table of 49 styles (what one edits to widen the training music);
- ``music``: the composer that turns a style into a piece with exact beats;
- ``render``: FluidSynth rendering and augmentation, labels kept exact;
- ``dataset``: pieces written as files (training/make_beat_data.py);
- ``pieces``: pieces as network input, beatless noise and babble, batches;
- ``trainer``: the training loop and the scores (training/train_beat_tracker.py);
- ``tuning``: the decoder's grid search (training/tune_beat_decoder.py).
"""
