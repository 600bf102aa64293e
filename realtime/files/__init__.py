"""File work: enhance audio files with the engine (``quietmic enhance``).

This layer sits on the engine (the modules at the top of :mod:`realtime`) and nothing else of the
runtime: it reads and writes WAV files (:mod:`realtime.files.audio_file`), streams them through one
:class:`~realtime.enhancer.Enhancer` per channel, resampling rates the model's framing does not fit
(:mod:`realtime.files.file_mode`), and draws what was done (:mod:`realtime.files.plot`). It opens no
audio device.

Submodules are imported on demand: this package imports nothing itself.
"""
