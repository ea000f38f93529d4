"""Everything training needs, as a library; the scripts in ``training/`` are its command lines.

Training the MuseDance model:
    config.py        TrainConfig and LossSettings: the one place every training default lives
    dataset.py       the data-set format on disk; data.py: samples and batches for the trainer
    model_setup.py   the model a run starts from
    steps.py         one training step's loss per stage; losses.py: the loss pieces
    optimization.py  optimizer, learning rate, EMA
    sharding.py      data-parallel and sharded launches (accelerate)
    checkpoint.py    atomic checkpoints and the checks that guard a resume
    trainer.py       the training loop (training/train.py)
    export.py        bundles from a run or a checkpoint (training/export_bundle.py)
    report.py        loss plots and validation videos
Data:
    synthdance/      the procedural SynthDance data set (training/synth_dance.py)
    prepare/         a data set from dance videos (training/prepare_dataset.py)
Evaluation:
    evaluation/      held-out evaluation and the stage-1 appearance check
The beat tracker:
    beat_tracker/    its training music, data, training loop and decoder tuning

See docs/ARCHITECTURE.md (Training).
"""
