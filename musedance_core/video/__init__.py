"""Video files, through PyAV (FFmpeg inside the wheel, no system ffmpeg).

- ``writer``: frames + music -> an H.264 + AAC mp4, streamed and written atomically.
- ``reader``: a video's format (``probe_video``) and its frames (``read_video``).
- ``frames``: frame batches (numpy or torch, uint8 or float) checked and made uint8.
- ``frame_rate``: frame rates as exact fractions, and the mp4 clocks that keep durations exact.
"""
