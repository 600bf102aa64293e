"""Live audio I/O: the engine on a running audio stream.

This layer sits on the engine (and the settings it is built from) and opens audio streams:

* :mod:`realtime.live.processor`: :class:`~realtime.live.processor.LiveProcessor`, the bridge between
  the audio callback (which only moves samples) and the worker thread that runs the
  :class:`~realtime.enhancer.Enhancer`, or the stream's own thread where that is no real-time one;
* :mod:`realtime.live.from_settings`: the stream rate, and the Enhancer with its LiveProcessor, as
  the settings say (for ``quietmic run`` and the desktop service alike);
* :mod:`realtime.live.portaudio_scan`: sounddevice (PortAudio) that re-scans its devices without
  aborting when a JACK server goes;
* :mod:`realtime.live.pulse_stream`: a duplex stream straight on PulseAudio/PipeWire (libpulse-simple).

It knows nothing of the desktop service that supervises it (:mod:`realtime.desktop`). Submodules are
imported on demand: this package imports nothing itself.
"""
