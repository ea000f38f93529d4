"""Audio front-end: decoding, beat tracking, music encoders and the beat plot."""
