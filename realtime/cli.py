"""The ``quietmic`` command line: run, enhance, info, devices."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Sequence

from realtime import __version__
from realtime.config import DEFAULT_CONFIG_YAML, Settings, default_config_path, load_settings
from realtime.default_model import BUNDLED_MODELS, resolve_model_path
from realtime.errors import QuietmicError

log = logging.getLogger("quietmic")

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130
EXIT_NOT_RUNNING = 3
"""``quietmic status`` when nothing runs (as ``systemctl status`` for a stopped unit)."""
MODEL_HELP = f"model file (.tflite) or a bundled model ({', '.join(BUNDLED_MODELS)}); default: default"


NO_LIMIT = "none"
"""``--atten-lim-db none``: no attenuation limit (``null`` in the config file, also accepted here)."""
NO_LIMIT_WORDS = (NO_LIMIT, "null")


def _atten_option(text: str) -> float | str:
    """``--atten-lim-db``'s value: a number of dB, or :data:`NO_LIMIT` (checked further by the settings)."""
    if text.strip().lower() in NO_LIMIT_WORDS:
        return NO_LIMIT
    try:
        return float(text)  # NaN and infinity are refused by the settings' check, in its words
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of dB, or 'none' for no limit (got {text!r})") from None


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help=f"config file (default: {default_config_path()} if it exists)")
    parser.add_argument("--model", metavar="FILE", help=MODEL_HELP)
    parser.add_argument("--atten-lim-db", type=_atten_option, metavar="DB",
                        help="most attenuation in dB (0 = pass-through, none = no limit)")
    parser.add_argument("--block-size", type=int, metavar="N", help="samples per block (default: the model's hop)")


SERVICE_FLAGS = {
    "config": "--config", "model": "--model", "atten_lim_db": "--atten-lim-db", "block_size": "--block-size",
    "input_device": "--input-device", "output_device": "--output-device", "input_channel": "--input-channel",
    "sample_rate": "--sample-rate", "backend": "--backend",
}
"""Options of ``serve`` that ``start`` passes on (plus the switches, :data:`SERVICE_SWITCHES`)."""
SERVICE_SWITCHES = {"bypass": "--bypass", "speakers": "--speakers", "echo_cancel": "--echo-cancel"}
"""Switches of ``serve`` that ``start`` passes on."""
SETTABLE = ("atten_lim_db", "bypass", "input_device", "output_device", "input_channel", "model", "block_size",
            "sample_rate", "speakers", "echo_cancel")


def _add_service_options(parser: argparse.ArgumentParser) -> None:
    _add_common(parser)
    parser.add_argument("--input-device", metavar="X",
                        help="microphone: PulseAudio/PipeWire source name part, else device index or name part")
    parser.add_argument("--output-device", metavar="Y", help="output device when there is no virtual microphone")
    parser.add_argument("--input-channel", type=int, metavar="N", help="input channel carrying the mic (0 = first)")
    parser.add_argument("--sample-rate", type=int, metavar="HZ", help="stream rate (default: 48000 on PulseAudio)")
    parser.add_argument("--bypass", action="store_true", default=None, help="pass audio through without denoising")
    parser.add_argument("--speakers", action="store_true", default=None,
                        help="also denoise what programs play into the 'quietmic speakers' output (PulseAudio/PipeWire)")
    parser.add_argument("--echo-cancel", action="store_true", default=None,
                        help="remove what the speakers play from the microphone, for speakers instead of headphones "
                             "(PulseAudio/PipeWire; needs pip install 'quietmic[echo]')")
    parser.add_argument("--backend", choices=("auto", "pulse", "pipewire", "jack", "none"), default="auto",
                        help="virtual microphone: PulseAudio/PipeWire through the PulseAudio protocol (pulse), PipeWire "
                        "through its JACK API (pipewire: lower latency), JACK ports, or none (default: auto: "
                        "pipewire where pipewire-jack is installed)")


def _service_options(args: argparse.Namespace) -> list[str]:
    """``args``'s service options as command-line flags again (for the detached process)."""
    options: list[str] = []
    for key, flag in SERVICE_FLAGS.items():
        value = getattr(args, key, None)
        if value is not None and not (key == "backend" and value == "auto"):
            if key == "model":  # a bundled model's name or a path relative to here: the file itself
                value = resolve_model_path(value).resolve()
            elif key == "config":
                value = Path(value).resolve()
            options += [flag, str(value)]
    options += [flag for key, flag in SERVICE_SWITCHES.items() if getattr(args, key, None)]
    return options


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``quietmic`` command."""
    parser = argparse.ArgumentParser(
        prog="quietmic", description="Real-time neural noise suppression for your microphone."
    )
    parser.add_argument("--version", action="version", version=f"quietmic {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="denoise the microphone live and play it (headphones!) on an output device")
    _add_common(run)
    run.add_argument("--input-device", metavar="X", help="input device index or name part (see 'quietmic devices')")
    run.add_argument("--output-device", metavar="Y", help="output device index or name part")
    run.add_argument("--input-channel", type=int, metavar="N", help="input channel carrying the mic (0 = first)")
    run.add_argument("--sample-rate", type=int, metavar="HZ", help="device rate (default: the input device's)")
    run.add_argument("--bypass", action="store_true", default=None, help="pass audio through without denoising")
    run.add_argument("--duration", type=float, metavar="S", help="stop after this many seconds")
    run.add_argument(
        "--summary-json",
        metavar="FILE",
        help="write the run's counters and timings as JSON at exit and on SIGUSR1 (kill -USR1 PID)",
    )

    commands.add_parser("devices", help="list audio devices")

    serve = commands.add_parser("serve", help="the background service in the foreground (what systemd runs)")
    _add_service_options(serve)
    start = commands.add_parser("start", help="start denoising in the background, with the 'quietmic' virtual mic")
    _add_service_options(start)
    commands.add_parser("stop", help="stop the background process (and remove the virtual microphone)")
    restart = commands.add_parser("restart", help="stop and start the background process")
    _add_service_options(restart)
    status = commands.add_parser("status", help="state, input, model, latency, CPU use, xruns, uptime")
    status.add_argument("--json", action="store_true", help="print JSON")
    set_ = commands.add_parser(
        "set", help="change a setting of the running process (no restart) and save it in the config file")
    set_.add_argument("key", choices=SETTABLE, help="the setting")
    set_.add_argument("value", help="its value (YAML: 20, true, null, a device name or model path)")
    set_.add_argument("--temporary", action="store_true",
                      help="change the running process only: the config file keeps its value (lost on restart)")
    set_.add_argument("--config", metavar="FILE",
                      help="config file to save to when quietmic is not running (default: the user's)")
    autostart = commands.add_parser("autostart", help="start quietmic with your desktop session (systemd user unit)")
    autostart.add_argument("action", choices=("enable", "disable"))

    enhance = commands.add_parser(
        "enhance", help="denoise audio files (WAV, FLAC, Ogg, Opus, MP3, AIFF...)",
        description="Denoise an audio file into another (IN OUT), or many into a directory (IN... -o DIR). "
        "Any format libsndfile reads, any rate; the output's extension names its format.",
    )
    enhance.add_argument(
        "paths", nargs="+", metavar="PATH",
        help="IN OUT: the input ('-': standard input) and the output, written atomically, never over the input "
        "('-': WAV on standard output); with -o: input files and directories",
    )
    enhance.add_argument("-o", "--output-dir", metavar="DIR",
                         help="enhance every input into DIR (made if missing), each under its own name")
    enhance.add_argument("--format", metavar="EXT", help="with -o: write this format (wav, flac, ...), not each input's own")
    enhance.add_argument("-j", "--jobs", type=int, metavar="N",
                         help="with -o: files enhanced at once, in worker processes (default: one per core)")
    enhance.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                         help="show a progress bar on standard error (default: when it is a terminal)")
    _add_common(enhance)
    enhance.add_argument("--plot", metavar="FILE.png",
                         help="also draw input, output and removed spectrograms, the gain mask and figures")
    enhance.add_argument("--reference", metavar="CLEAN", help="with --plot: the clean speech, for SI-SDR figures")

    info = commands.add_parser("info", help="show a model's metadata")
    info.add_argument("--config", metavar="FILE", help="config file")
    info.add_argument("--model", metavar="FILE", help=MODEL_HELP)
    info.add_argument("--json", action="store_true", help="print JSON")

    config = commands.add_parser("config", help="print the documented default config file")
    config.add_argument("--path", action="store_true", help="print where the config file is looked for")
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    settings, source = load_settings(getattr(args, "config", None))
    if not args.verbose:
        logging.getLogger().setLevel(settings.log_level.upper())
    if source is not None:
        log.debug("settings from %s", source)
    overrides: dict[str, Any] = {
        key: getattr(args, key, None)
        for key in (
            "model",
            "input_device",
            "output_device",
            "input_channel",
            "sample_rate",
            "block_size",
            "atten_lim_db",
            "bypass",
            "speakers",
            "echo_cancel",
        )
    }
    no_limit = overrides["atten_lim_db"] == NO_LIMIT
    if no_limit:
        overrides["atten_lim_db"] = None
    settings = settings.updated(**overrides)
    return dataclasses.replace(settings, atten_lim_db=None) if no_limit else settings


def _setup_logging(verbose: bool, level: str = "info") -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def cmd_devices(_args: argparse.Namespace) -> int:
    from realtime.live.portaudio_scan import sounddevice

    sd = sounddevice()

    apis = sd.query_hostapis()
    devices = sd.query_devices()
    if not len(devices):
        print("no audio devices found: start an audio server (PipeWire, PulseAudio or JACK)", file=sys.stderr)
        return EXIT_ERROR
    default_in, default_out = sd.default.device
    print(f"{'':2}{'#':>3}  {'name':40} {'host API':28} {'in':>3} {'out':>4} {'rate':>7}")
    for device in devices:
        mark = (">" if device["index"] == default_in else " ") + ("<" if device["index"] == default_out else " ")
        api = apis[device["hostapi"]]["name"]
        print(
            f"{mark}{device['index']:>3}  {device['name'][:40]:40} {api[:28]:28} "
            f"{device['max_input_channels']:>3} {device['max_output_channels']:>4} "
            f"{device['default_samplerate']:>7.0f}"
        )
    print("> default input, < default output")
    _print_pulse_sources()
    return 0


def _print_pulse_sources() -> None:
    """The PulseAudio/PipeWire microphones by the names ``--input-device`` and ``set input_device`` take."""
    from realtime.desktop import virtual_mic

    if not virtual_mic.pulse_available():
        return
    default = virtual_mic.default_source()
    names = [n for n in virtual_mic.sources() if n != virtual_mic.SOURCE_NAME and not virtual_mic.is_monitor(n)]
    print(f"\nmicrophones on {virtual_mic.pulse_server_name()} (what 'quietmic start --input-device' and "
          "'quietmic set input_device' take; a part of a name is enough):")
    for name in names:
        print(f"{'>' if name == default else ' '} {name}")
    if not names:
        print("  none")


def cmd_run(args: argparse.Namespace) -> int:
    from realtime.live.from_settings import build_processor, device_rate
    from realtime.live.portaudio_scan import name_jack_client, sounddevice
    from realtime.model import load_checked_model

    name_jack_client("quietmic")  # before PortAudio initialises: JACK lists "quietmic", not "python3.C.<pid>"
    sounddevice()  # a JACK server that goes away while quietmic runs must not abort its exit
    settings = _settings(args)
    model = load_checked_model(resolve_model_path(settings.model))
    rate = settings.sample_rate if settings.sample_rate is not None else device_rate(settings.input_device)
    processor = build_processor(model, settings, rate)
    stop = threading.Event()

    def request_stop(signum: int, _frame: Any) -> None:
        log.info("stopping (%s)", signal.Signals(signum).name)
        stop.set()

    def write_summary(*_ignored: Any) -> None:
        path = Path(args.summary_json)
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps(processor.summary(), indent=2) + "\n")
        os.replace(partial, path)

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    if args.summary_json:
        previous[signal.SIGUSR1] = signal.signal(signal.SIGUSR1, write_summary)
    timer = threading.Timer(args.duration, stop.set) if args.duration else None
    try:
        processor.start()
        print(
            f"quietmic: denoising with {model.metadata.name} at {rate} Hz, blocks of {processor.block_size}; "
            f"latency {1000 * processor.stated_latency / rate:.1f} ms; Ctrl-C stops",
            file=sys.stderr,
        )
        print("quietmic: this plays your microphone on the output device: use headphones, or speakers "
              "will feed back into the microphone. For calls, 'quietmic start' makes a virtual microphone "
              "instead.", file=sys.stderr)
        if timer:
            timer.start()
        processor.wait(stop)
    finally:
        if timer:
            timer.cancel()
        try:
            processor.stop()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            summary = processor.summary()
            log.info("summary: %s", json.dumps(summary))
            if args.summary_json:
                write_summary()
            print(
                f"quietmic: ran {summary['seconds']:.1f} s: {summary['input_overflows']} input overflows, "
                f"{summary['output_underflows']} output underflows, {summary['late_blocks']} late blocks, "
                f"{summary['model_failures']} model failures, {summary['processing_failures']} failed blocks, "
                f"{summary['invalid_input_samples']} invalid input samples; "
                f"block processing p50 {summary['block_time_ms_p50']} ms, p99 {summary['block_time_ms_p99']} ms "
                f"(block period {summary['block_period_ms']} ms)",
                file=sys.stderr,
            )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from realtime.desktop import paths
    from realtime.desktop.control import ControlServer
    from realtime.desktop.pidfile import PID_FD_ENV, PidFile
    from realtime.desktop.service import CARRY_ENV, RestartRequired, Service

    stop_signals = {signal.SIGINT, signal.SIGTERM}
    settings = _settings(args)
    carried = json.loads(os.environ.pop(CARRY_ENV, "null"))
    inherited_fd = os.environ.pop(PID_FD_ENV, None)
    pid_file = PidFile(paths.pid_file(), None if inherited_fd is None else int(inherited_fd))
    restart, backend = None, "jack"
    try:
        config_path = Path(args.config).expanduser() if getattr(args, "config", None) else default_config_path()
        service = Service(settings, backend=args.backend, carried=carried, config_path=config_path)

        def request_stop(signum: int, _frame: Any) -> None:
            log.info("stopping (%s)", signal.Signals(signum).name)
            service.request_stop()

        for sig in stop_signals:
            signal.signal(sig, request_stop)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)  # blocked across a restart (below): delivered now
        server = ControlServer(paths.socket_path(), service.handle)
        log.info("quietmic %s serving (pid %d); control socket %s", __version__, os.getpid(), server.path)
        try:
            service.run()
        except RestartRequired as exc:
            # A stop asked for meanwhile wins; one that comes during the exec waits, blocked, for the new image.
            signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
            if not service.stopping:
                restart, backend = service.carry_over(), exc.backend
                log.warning("PortAudio cannot go on (%s): restarting this process to reconnect", exc)
        finally:
            server.close()
        if restart is not None:
            sys.stdout.flush()
            sys.stderr.flush()
            os.environ[CARRY_ENV] = json.dumps(restart)
            os.environ[PID_FD_ENV] = str(pid_file.keep_across_exec())  # the lock stays held throughout
            argv = [sys.executable, "-m", "realtime", "serve", *_service_options(args)]
            if "--backend" not in argv:
                argv += ["--backend", backend]
            os.execv(sys.executable, argv)
    finally:
        pid_file.release()
    log.info("stopped")
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    from realtime.desktop import background

    settings = _settings(args)  # a bad config or option is reported here, not in the log
    if settings.echo_cancel:
        from realtime import echo

        echo.require()  # its package missing: say what to install, before anything starts
    status = background.start(_service_options(args))
    print(f"quietmic started (pid {status['pid']}): {status['state']}"
          + (f", {status['virtual_microphone']}" if status.get("virtual_microphone") else "")
          + "; 'quietmic status' shows more, 'quietmic stop' stops it")
    speakers = status.get("speakers", {})
    if speakers.get("state") == "unavailable":
        print(f"quietmic: warning: {speakers['detail']}", file=sys.stderr)
    return 0


def cmd_stop(_args: argparse.Namespace) -> int:
    from realtime.desktop import background

    stale = background.stale_virtual_mic()
    pid = background.stop()
    if pid is not None:
        print(f"quietmic stopped (pid {pid})")
    elif stale:
        print("quietmic was not running; removed the virtual microphone that a killed quietmic had left")
    else:
        print("quietmic was not running")
    return 0


def cmd_restart(args: argparse.Namespace) -> int:
    cmd_stop(args)
    return cmd_start(args)


def cmd_status(args: argparse.Namespace) -> int:
    from realtime.desktop import background

    status = background.status()
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        print(format_status(status))
    from realtime.desktop import autostart

    problem = autostart.broken()
    if problem:
        print(f"quietmic: warning: {problem}", file=sys.stderr)
    return 0 if status["state"] != "stopped" else EXIT_NOT_RUNNING


def format_status(status: dict[str, Any]) -> str:
    """``quietmic status`` as lines of ``key  value``."""
    if "uptime_seconds" not in status:
        lines = [f"state          {status['state']}"]
        lines += [f"{key:<14} {status[key]}" for key in ("pid", "detail", "log") if key in status]
        return "\n".join(lines)
    model = status["model"]
    rows = [
        ("state", status["state"] + (f" ({status['detail']})" if status.get("detail") else "")),
        ("pid", status["pid"]),
        ("uptime", f"{status['uptime_seconds']:.0f} s"),
        ("virtual mic", status.get("virtual_microphone") or (
            "not yet (it is made when an audio server answers)" if status["state"] == "waiting for the audio server"
            else "none (--backend none: playing to the output device)")),
        ("input", status.get("input") or "the default microphone"),
        ("model", f"{model['name']} ({model['quantization']}) {model['path']}"),
        ("rate / block", "- (no stream open now)" if status.get("sample_rate") is None else
         f"{status['sample_rate']} Hz / {status['block_size']} samples"),
        ("latency", "-" if status["latency_ms"] is None else f"{status['latency_ms']:.1f} ms"),
        ("denoising", "bypassed" if status["bypass"] else
         f"on, attenuation limit {'none' if status['atten_lim_db'] is None else str(status['atten_lim_db']) + ' dB'}"),
        ("cpu", f"{status['cpu_percent']:.1f} % now, {status['cpu_percent_average']:.1f} % average"),
        ("xruns", f"{status['xruns']} " + json.dumps(status["counters"])),
        ("reconnects", f"{status['reconnects']} (input lost {status['lost_streams']} times)"),
        ("faults", _faults_text(status)),
        ("echo cancel", _echo_text(status.get("echo_cancel"))),
        *_speaker_rows(status.get("speakers")),
    ]
    return "\n".join(f"{key:<14} {value}" for key, value in rows)


def _echo_text(echo: dict[str, Any] | None) -> str:
    """The status row of echo cancellation (``quietmic start --echo-cancel``)."""
    if not echo or not echo["enabled"]:
        return "off ('quietmic set echo_cancel on' removes what your speakers play from the microphone)"
    if echo.get("reference") is None:
        return f"on, not running ({echo['detail']})"
    return f"on, the far end is {echo['reference']} (adds {echo['delay_ms']:.1f} ms)"


def _speaker_rows(speakers: dict[str, Any] | None) -> list[tuple[str, str]]:
    """The status rows of the speaker side (``quietmic start --speakers``)."""
    if not speakers or speakers["state"] == "off":
        return [("speakers", "off ('quietmic set speakers on' adds a denoised 'quietmic speakers' output)")]
    state = speakers["state"] + (f" ({speakers['detail']})" if speakers.get("detail") else "")
    if "sink" not in speakers:  # unavailable, or not started yet
        return [("speakers", f"on, {state}")]
    return [
        ("speakers", f"on, {state}"),
        ("  plays to", speakers["output"] or "- (no real output chosen yet)"),
        ("  playing in", f"{speakers['playing_streams']} stream(s) into {speakers['sink']}"),
        ("  xruns", f"{speakers['xruns']} " + json.dumps(speakers["counters"])),
        ("  reconnects", f"{speakers['reconnects']} (output lost {speakers['lost_streams']} times)"),
        ("  faults", _faults_text(speakers)),
    ]


def _faults_text(status: dict[str, Any]) -> str:
    """The status's fault counters, and what is wrong now if anything is."""
    faults = status.get("faults", {})
    text = ", ".join(f"{key.replace('_', ' ')} {value}" for key, value in faults.items()) or "none"
    if status.get("model_failing"):
        text = "MODEL FAILING, passing the input through; " + text
    if status.get("fault_detail"):
        text += f" (last: {status['fault_detail']})"
    return text


def cmd_set(args: argparse.Namespace) -> int:
    from realtime.config import parse_setting, save_setting
    from realtime.desktop import background
    from realtime.desktop.control import NotRunning

    try:
        answer = background.set_value(args.key, args.value, persist=not args.temporary)
    except NotRunning:
        if args.temporary:
            raise
        path = Path(args.config).expanduser() if args.config else default_config_path()
        value = parse_setting(args.key, args.value)
        save_setting(path, args.key, value)
        print(f"{args.key} = {value}: saved in {path}; quietmic is not running, it applies at the next start")
        return 0
    changed = "; ".join(f"{k} = {v}" for k, v in answer["changed"].items())
    where = f"saved in {answer['saved_to']}" if answer.get("saved_to") else "until quietmic stops (--temporary)"
    print(f"{changed} ({where})")
    return 0


def cmd_autostart(args: argparse.Namespace) -> int:
    from realtime.desktop import autostart

    print(autostart.enable() if args.action == "enable" else autostart.disable())
    return 0


def _enhance_paths(args: argparse.Namespace) -> tuple[str, str] | None:
    """``(IN, OUT)`` for one file, None for many (-o), or a usage error in words."""
    paths = args.paths
    if args.output_dir is not None:
        if args.plot:
            raise QuietmicError("--plot draws one file: give 'quietmic enhance IN OUT --plot FILE.png', without -o")
        return None
    if args.format or args.jobs:
        raise QuietmicError(f"{'--format' if args.format else '--jobs'} is for many files: give -o DIR")
    if len(paths) != 2:
        raise QuietmicError(
            "give an input and an output file ('quietmic enhance IN OUT'), or inputs and an output directory "
            f"('quietmic enhance {' '.join(paths) if len(paths) > 2 else 'IN...'} -o DIR')"
        )
    if Path(paths[0]).is_dir():
        raise QuietmicError(f"{paths[0]} is a directory: enhance the files in it with 'quietmic enhance {paths[0]} -o DIR'")
    return paths[0], paths[1]


def describe_result(output: str | Path, result: Any) -> str:
    """The line ``quietmic enhance`` prints for a written file (a :class:`~realtime.files.file_mode.FileResult`)."""
    from realtime.files.plot import describe_figures

    resampled = f", enhanced at {result.processing_rate} Hz" if result.processing_rate != result.sample_rate else ""
    replaced = f"; {result.invalid_samples} NaN/Inf samples replaced with silence" if result.invalid_samples else ""
    figures = f"; {describe_figures(result.figures)}" if result.figures else ""
    where = "standard output" if str(output) == "-" else output
    return (
        f"quietmic: wrote {where} ({result.frames} frames, {result.channels} channel(s), "
        f"{result.sample_rate} Hz{resampled}; {result.latency_samples}-sample delay compensated{replaced}){figures}"
    )


def cmd_enhance(args: argparse.Namespace) -> int:
    """``quietmic enhance IN OUT`` or ``quietmic enhance IN... -o DIR``: streams each file; SIGTERM, like Ctrl-C,
    leaves no partial output. Many files run in worker processes; exit status 1 if any failed."""
    single = _enhance_paths(args)
    settings = _settings(args)

    def interrupt(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, interrupt) if in_main_thread else None
    try:
        if single is not None:
            return _enhance_one(args, settings, *single)
        return _enhance_many(args, settings)
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


def _enhance_one(args: argparse.Namespace, settings: Settings, source: str, target: str) -> int:
    from realtime.files import progress
    from realtime.files.file_mode import enhance_file

    show = progress.wanted(args.progress)
    bar = None
    if show:
        from realtime.files.audio_io import open_audio

        seconds = 0.0
        if source != "-":
            try:
                with open_audio(source) as reader:
                    seconds = reader.info.seconds
            except QuietmicError:
                pass  # enhance_file says why, in words
        bar = progress.Progress(seconds, seconds > 0)
    try:
        result = enhance_file(
            source, target, settings.model,
            atten_lim_db=settings.atten_lim_db, block_size=settings.block_size,
            plot_path=args.plot, reference_path=args.reference,
            progress=bar.advance if bar is not None else None,
        )
    finally:
        if bar is not None:
            bar.close()
    print(describe_result(target, result), file=sys.stderr)
    return 0


def _enhance_many(args: argparse.Namespace, settings: Settings) -> int:
    from realtime.default_model import is_bundled_model
    from realtime.files import batch, progress
    from realtime.model import require_valid_model

    if args.jobs is not None and args.jobs < 1:
        raise QuietmicError(f"--jobs must be at least 1, got {args.jobs}")
    jobs = batch.plan(args.paths, args.output_dir, args.format)
    model_path = resolve_model_path(settings.model)
    if not is_bundled_model(model_path):
        require_valid_model(model_path)  # once, in a child process; the workers then load it unchecked
    failed = 0

    def done(outcome: batch.Outcome, bar: progress.Progress) -> None:
        nonlocal failed
        if outcome.result is not None:
            bar.note(describe_result(outcome.job.target, outcome.result))
        else:
            failed += 1
            bar.note(f"quietmic: error: {outcome.error}")

    batch.enhance_many(
        jobs, workers=args.jobs or batch.default_jobs(), show_progress=progress.wanted(args.progress), on_done=done,
        model=model_path, atten_lim_db=settings.atten_lim_db, block_size=settings.block_size,
    )
    if failed:
        print(f"quietmic: {failed} of {len(jobs)} files could not be enhanced (above)", file=sys.stderr)
        return EXIT_ERROR
    print(f"quietmic: enhanced {len(jobs)} file{'' if len(jobs) == 1 else 's'} into {args.output_dir}", file=sys.stderr)
    return 0


def model_info(model_path: Path) -> dict[str, Any]:
    """A summary of a model file, validated by loading it and running it on probe features.

    ``valid`` says whether it ran with finite, right-sized masks and states
    (:func:`realtime.model.check_model_file`, in a child process, so that a file
    crashing TensorFlow Lite is reported too); ``check`` holds the details.
    Raises :class:`~realtime.errors.ModelError` if the file cannot be loaded at all.
    """
    from realtime.metadata import load_metadata
    from realtime.model import check_model_file, read_model_bytes

    data = read_model_bytes(model_path)
    meta = load_metadata(data, str(model_path))
    check = check_model_file(model_path)
    return {
        "valid": check.valid,
        "check": check.to_dict(),
        "path": str(model_path),
        "size_bytes": len(data),
        "name": meta.name,
        "model_version": meta.model_version,
        "sample_rate": meta.sample_rate,
        "window_length": meta.window_length,
        "hop_length": meta.hop_length,
        "window": meta.window,
        "window_ms": 1000 * meta.window_length / meta.sample_rate,
        "hop_ms": 1000 * meta.hop_length / meta.sample_rate,
        "lookahead_frames": meta.lookahead_frames,
        "algorithmic_latency_ms": meta.algorithmic_latency_ms,
        "features": meta.features.type,
        "feature_size": meta.feature_size,
        "mask": meta.mask.type,
        "mask_size": meta.mask_size,
        "band_edges_hz": list(meta.features.band_edges_hz or []),
        "spectrum_input": None if meta.features.spectrum is None else {
            "tensor": meta.features.spectrum.tensor, "bins": meta.features.spectrum.bins,
            "top_hz": meta.features.spectrum.bins * meta.framing.bin_spacing_hz},
        "deep_filter": None if meta.mask.deep_filter is None else {
            "tensor": meta.mask.deep_filter.tensor, "bins": meta.mask.deep_filter.bins,
            "order": meta.mask.deep_filter.order, "lookahead": meta.mask.deep_filter.lookahead,
            "top_hz": meta.mask.deep_filter.bins * meta.framing.bin_spacing_hz},
        "states": [{"input": s.input, "output": s.output, "shape": list(s.shape)} for s in meta.states],
        "quantization": meta.quantization,
        "parameters": meta.parameters,
        "training": meta.training,
    }


def cmd_info(args: argparse.Namespace) -> int:
    """``quietmic info``: a model's metadata and whether it is valid; exit status 1 if it is not.

    With ``--json`` a model that cannot even be loaded still gives a JSON record
    (``valid: false`` and the error) on stdout, besides the error line on stderr.
    """
    from realtime.errors import ModelError
    from realtime.model import invalid_model_error

    settings = _settings(args)
    path = resolve_model_path(settings.model)
    try:
        info = model_info(path)
    except ModelError as exc:
        if args.json:
            print(json.dumps({"path": str(path), "valid": False, "problems": [str(exc)]}, indent=2))
        raise
    check = info["check"]
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        mask_range = check["mask_range"]
        ran = f"ran {check['frames']} probe frames" + (
            f", masks in [{mask_range[0]:.3g}, {mask_range[1]:.3g}]" if mask_range else ""
        )
        print(f"model          {info['path']} ({info['size_bytes']} bytes)")
        print(f"name           {info['name']} (version {info['model_version']})")
        print(f"quantization   {info['quantization']}, {info['parameters']} parameters")
        print(
            f"framing        {info['window']} window {info['window_ms']:g} ms, hop {info['hop_ms']:g} ms "
            f"({info['window_length']}/{info['hop_length']} samples at {info['sample_rate']} Hz), "
            f"lookahead {info['lookahead_frames']} frames"
        )
        print(f"latency        {info['algorithmic_latency_ms']:g} ms algorithmic")
        print(f"features       {info['features']} ({info['feature_size']} values)")
        print(f"mask           {info['mask']} ({info['mask_size']} values)")
        if info["spectrum_input"]:
            spectrum = info["spectrum_input"]
            print(f"spectrum in    {spectrum['tensor']}: complex bins below {spectrum['top_hz']:g} Hz ({spectrum['bins']})")
        if info["deep_filter"]:
            deep = info["deep_filter"]
            print(f"deep filter    {deep['tensor']}: {deep['order']} taps ({deep['lookahead']} ahead) on bins below "
                  f"{deep['top_hz']:g} Hz ({deep['bins']})")
        for state in info["states"]:
            print(f"state          {state['input']} -> {state['output']} {state['shape']}")
        if info["training"]:
            print(f"training       {json.dumps(info['training'])}")
        print(f"check          {'valid' if info['valid'] else 'INVALID'} ({ran})")
        for problem in check["problems"]:
            print(f"  problem      {problem}")
        for note in check["notes"]:
            print(f"  note         {note}")
    if not info["valid"]:
        raise invalid_model_error(str(path), check["problems"])
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    if args.path:
        print(default_config_path())
    else:
        print(DEFAULT_CONFIG_YAML, end="")
    return 0


COMMANDS = {
    "run": cmd_run, "devices": cmd_devices, "enhance": cmd_enhance, "info": cmd_info, "config": cmd_config,
    "serve": cmd_serve, "start": cmd_start, "stop": cmd_stop, "restart": cmd_restart, "status": cmd_status,
    "set": cmd_set, "autostart": cmd_autostart,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``quietmic`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    try:
        return COMMANDS[args.command](args)
    except QuietmicError as exc:
        print(f"quietmic: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("quietmic: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
