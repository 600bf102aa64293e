"""File work: enhance audio files with the engine (``quietmic enhance``).

This layer sits on the engine (the modules at the top of :mod:`realtime`) and the settings'
defaults, and nothing else of the runtime: it reads and writes audio files of any format libsndfile
knows (:mod:`realtime.files.audio_io`; PCM and float WAV through its own reader,
:mod:`realtime.files.audio_file`), streams them through one :class:`~realtime.enhancer.Enhancer` per
channel, resampling with soxr the rates the model's framing does not fit
(:mod:`realtime.files.file_mode`, whose :func:`~realtime.files.file_mode.enhance_file` is what the
command runs), runs many files in worker processes (:mod:`realtime.files.batch`) with a progress bar
(:mod:`realtime.files.progress`), and draws what was done (:mod:`realtime.files.plot`). It opens no
audio device.

Submodules are imported on demand: this package imports nothing itself.
"""
