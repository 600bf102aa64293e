"""The desktop service: quietmic as a background process with a virtual microphone.

This layer sits on live audio I/O (:mod:`realtime.live`) and below the command line:

* :mod:`realtime.desktop.service`: the service itself (``quietmic serve``): streams the microphone into
  the virtual microphone, supervises and reopens the stream, answers control requests;
* :mod:`realtime.desktop.virtual_mic`: the "quietmic" microphone on PulseAudio/PipeWire or JACK;
* :mod:`realtime.desktop.speakers`: the "quietmic speakers" output, denoised on its way to the real one;
* :mod:`realtime.desktop.stream_state`: the state, glitch totals and stall check each of those streams reports;
* :mod:`realtime.desktop.control`: the control socket (one JSON request, one JSON answer);
* :mod:`realtime.desktop.background`: the client side: ``quietmic start|stop|status|set`` start, stop
  and ask the service;
* :mod:`realtime.desktop.autostart`: the systemd user unit that starts it with the session;
* :mod:`realtime.desktop.paths`: where it keeps its pid file, socket and log.

Submodules are imported on demand: this package imports nothing itself.
"""
