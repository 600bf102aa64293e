"""Any audio file, many files: formats and rates in and out, standard input/output, parallel batches,
``--atten-lim-db none``, progress, the plot's figures, and a runtime that runs without scipy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import soundfile as sf

from realtime.cli import build_parser, main
from realtime.default_model import DEFAULT_MODEL_PATH, MODELS_DIR, is_bundled_model
from realtime.files import batch
from realtime.files.audio_io import open_audio, output_subtype
from realtime.files.file_mode import enhance_file
from realtime.files.plot import enhancement_figures, si_sdr_db
from realtime.dsp import Framing

REPO = Path(__file__).resolve().parent.parent
RATE = 48_000
SECONDS = 0.5
LOSSLESS_SNR_DB = 60.0
"""Least signal-to-error ratio of the identity model's output in lossless formats, dB (float processing)."""
LOSSY_SNR_DB = 12.0
"""Least ratio for lossy formats: the output is encoded a second time."""
RESAMPLED_SNR_DB = 40.0
"""Least ratio at rates that are resampled with soxr, there and back."""


@pytest.fixture(scope="module")
def identity(reference_model: Callable[..., Path]) -> Path:
    return reference_model("identity", 16_000, "float32")


@pytest.fixture(scope="module")
def random_model(reference_model: Callable[..., Path]) -> Path:
    return reference_model("random", 16_000)


def speechlike(rate: int, seconds: float = SECONDS, channels: int = 1) -> np.ndarray:
    """Band-limited tones in bursts (words) over faint noise, float32 ``(frames, channels)`` in [-0.5, 0.5]."""
    t = np.arange(int(rate * seconds)) / rate
    bursts = (np.sin(2 * np.pi * 3 * t) > 0).astype(np.float64)
    rng = np.random.default_rng(7)
    columns = [0.3 * bursts * np.sin(2 * np.pi * (220 + 110 * c) * t) + 0.1 * np.sin(2 * np.pi * 0.2 * rate / 2 * t)
               + 0.003 * rng.standard_normal(len(t)) for c in range(channels)]
    return np.stack(columns, axis=1).astype(np.float32)


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    error = estimate.astype(np.float64) - reference.astype(np.float64)
    return float(10 * np.log10(np.sum(reference.astype(np.float64) ** 2) / max(np.sum(error**2), 1e-30)))


# --- formats -------------------------------------------------------------------------------------

FORMATS = [  # (extension, libsndfile container, subtype, lossless)
    ("wav", "WAV", "PCM_16", True),
    ("wav", "WAV", "PCM_24", True),
    ("wav", "WAV", "FLOAT", True),
    ("wav", "WAV", "ULAW", False),
    ("wav", "WAV", "ALAW", False),
    ("wav", "WAVEX", "PCM_24", True),
    ("wav", "RF64", "PCM_16", True),
    ("w64", "W64", "PCM_24", True),
    ("flac", "FLAC", "PCM_16", True),
    ("flac", "FLAC", "PCM_24", True),
    ("aiff", "AIFF", "PCM_16", True),
    ("aiff", "AIFF", "FLOAT", True),
    ("caf", "CAF", "PCM_24", True),
    ("au", "AU", "PCM_16", True),
    ("ogg", "OGG", "VORBIS", False),
    ("opus", "OGG", "OPUS", False),
    ("mp3", "MP3", "MPEG_LAYER_III", False),
]


def _write(path: Path, samples: np.ndarray, rate: int, container: str, subtype: str) -> None:
    if not sf.check_format(container, subtype):
        pytest.skip(f"this libsndfile ({sf.__libsndfile_version__}) does not write {container} {subtype}")
    sf.write(path, samples, rate, subtype=subtype, format=container)


@pytest.mark.parametrize("ext,container,subtype,lossless", FORMATS, ids=[f"{f[1]}-{f[2]}" for f in FORMATS])
def test_every_format_round_trips(identity: Path, tmp_path: Path, ext: str, container: str, subtype: str,
                                  lossless: bool) -> None:
    """Read through libsndfile (or the WAV reader), written back in the same format, same length and rate."""
    source, target = tmp_path / f"in.{ext}", tmp_path / f"out.{ext}"
    _write(source, speechlike(RATE, channels=2), RATE, container, subtype)
    before = source.read_bytes()
    result = enhance_file(source, target, identity)
    assert source.read_bytes() == before
    info_in, info_out = sf.info(str(source)), sf.info(str(target))
    assert (info_out.samplerate, info_out.channels, info_out.subtype) == (RATE, 2, info_in.subtype)
    # RF64 is written only where RIFF's 4 GiB do not suffice; the header (extensible or not) is kept.
    assert info_out.format == info_in.format or (info_in.format == "RF64" and info_out.format in ("WAV", "WAVEX"))
    decoded_in, _ = sf.read(source, dtype="float32", always_2d=True)
    decoded_out, _ = sf.read(target, dtype="float32", always_2d=True)
    assert result.frames == len(decoded_in) and len(decoded_out) == len(decoded_in)
    assert snr_db(decoded_in, decoded_out) >= (LOSSLESS_SNR_DB if lossless else LOSSY_SNR_DB)
    assert {p.name for p in tmp_path.iterdir()} == {source.name, target.name}


CONVERSIONS = [  # (input container, subtype, output extension, expected output subtype)
    ("FLAC", "PCM_24", "wav", "PCM_24"),
    ("WAV", "FLOAT", "flac", "PCM_24"),
    ("WAV", "ULAW", "wav", "ULAW"),
    ("WAV", "ULAW", "flac", "PCM_16"),
    ("MP3", "MPEG_LAYER_III", "wav", "PCM_16"),
    ("OGG", "OPUS", "flac", "PCM_16"),
    ("WAV", "PCM_16", "ogg", "VORBIS"),
    ("AIFF", "DOUBLE", "wav", "DOUBLE"),
]


@pytest.mark.parametrize("container,subtype,ext,expected", CONVERSIONS, ids=[f"{c[1]}-to-{c[2]}" for c in CONVERSIONS])
def test_the_output_extension_names_the_format(identity: Path, tmp_path: Path, container: str, subtype: str, ext: str,
                                               expected: str) -> None:
    source = tmp_path / "in.bin"
    _write(source, speechlike(RATE), RATE, container, subtype)
    enhance_file(source, tmp_path / f"out.{ext}", identity)
    info = sf.info(str(tmp_path / f"out.{ext}"))
    assert info.subtype == expected and info.frames == int(RATE * SECONDS)


def test_an_unknown_output_extension_is_refused_before_any_work(capsys, identity: Path, tmp_path: Path) -> None:
    sf.write(tmp_path / "in.wav", speechlike(RATE), RATE)
    code = main(["enhance", str(tmp_path / "in.wav"), str(tmp_path / "out.m4a"), "--model", str(identity)])
    assert code == 1 and "cannot tell which format to write from the name 'out.m4a'" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["in.wav"]


def test_a_recorder_that_never_wrote_the_length_is_read_by_quietmics_own_reader(tmp_path: Path) -> None:
    """libsndfile reads a data size of 0 as no audio; quietmic's WAV reader reads what is there."""
    sf.write(tmp_path / "full.wav", speechlike(16_000), 16_000, subtype="PCM_16")
    raw = bytearray((tmp_path / "full.wav").read_bytes())
    data = raw.index(b"data")
    raw[data + 4 : data + 8] = bytes(4)
    (tmp_path / "unfinished.wav").write_bytes(bytes(raw))
    assert sf.info(str(tmp_path / "unfinished.wav")).frames == 0
    with open_audio(tmp_path / "unfinished.wav") as reader:
        assert reader.info.frames == int(16_000 * SECONDS) and reader.info.warnings


def test_output_subtype_prefers_the_inputs() -> None:
    from realtime.files.audio_io import AudioInfo

    info = AudioInfo(RATE, 1, 10, "WAV", "FLOAT")
    assert output_subtype(info, "FLAC", None) == "PCM_24"
    assert output_subtype(info, "AIFF", None) == "FLOAT"
    assert output_subtype(AudioInfo(RATE, 1, 10, "MP3", "MPEG_LAYER_III"), "AIFF", None) == "PCM_16"


# --- rates -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [8000, 11025, 22050, 44100, 96000, 12345, 37800])
def test_any_rate_keeps_rate_and_length(identity: Path, tmp_path: Path, rate: int) -> None:
    source, target = tmp_path / "in.flac", tmp_path / "out.flac"
    signal = speechlike(rate)
    signal[rate // 3, 0] += 0.3  # a click: misalignment would show
    sf.write(source, signal, rate, subtype="PCM_24")
    result = enhance_file(source, target, identity)
    out, out_rate = sf.read(target, dtype="float32", always_2d=True)
    decoded, _ = sf.read(source, dtype="float32", always_2d=True)
    assert out_rate == rate and out.shape == signal.shape
    fits = rate % 100 == 0
    assert (result.processing_rate == rate) == fits
    assert snr_db(decoded, out) >= (LOSSLESS_SNR_DB if fits else RESAMPLED_SNR_DB)


# --- standard input and output -----------------------------------------------------------------------


def quietmic(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "realtime", *args], input=stdin, capture_output=True, timeout=120)


def test_stdin_to_stdout(identity: Path, tmp_path: Path) -> None:
    sf.write(tmp_path / "in.flac", speechlike(RATE), RATE, subtype="PCM_24")
    done = quietmic("enhance", "-", "-", "--model", str(identity), stdin=(tmp_path / "in.flac").read_bytes())
    assert done.returncode == 0, done.stderr
    (tmp_path / "out.wav").write_bytes(done.stdout)  # stdout holds the WAV file and nothing else
    out, rate = sf.read(tmp_path / "out.wav", dtype="float32", always_2d=True)
    decoded, _ = sf.read(tmp_path / "in.flac", dtype="float32", always_2d=True)
    assert rate == RATE and sf.info(str(tmp_path / "out.wav")).subtype == "PCM_24"
    assert snr_db(decoded, out) >= LOSSLESS_SNR_DB
    assert b"wrote standard output" in done.stderr
    assert not (tmp_path / "-").exists() and not Path("-").exists()


def test_file_to_stdout_writes_no_file_named_dash(identity: Path, tmp_path: Path) -> None:
    sf.write(tmp_path / "in.wav", speechlike(RATE), RATE, subtype="PCM_16")
    done = subprocess.run([sys.executable, "-m", "realtime", "enhance", "in.wav", "-", "--model", str(identity)],
                          capture_output=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 0 and done.stdout[:4] == b"RIFF"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav"]


def test_stdin_that_is_not_audio_is_refused_in_one_line(identity: Path) -> None:
    done = quietmic("enhance", "-", "-", "--model", str(identity), stdin=b"hello, not audio\n" * 10)
    assert done.returncode == 1 and done.stdout == b""
    assert done.stderr.decode().strip().count("\n") == 0 and "stdin is a text file" in done.stderr.decode()


# --- many files ---------------------------------------------------------------------------------------


def test_many_files_in_parallel_equal_one_at_a_time(random_model: Path, tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    (inputs / "sub").mkdir(parents=True)
    sf.write(inputs / "a.wav", speechlike(16_000, 1.0), 16_000, subtype="PCM_16")
    sf.write(inputs / "sub" / "b.flac", speechlike(44_100, 0.7, channels=2), 44_100, subtype="PCM_24")
    sf.write(inputs / "c.ogg", speechlike(22_050, 0.6), 22_050)
    (inputs / "notes.txt").write_text("not audio, not picked up from a directory")
    extra = tmp_path / "extra.wav"
    sf.write(extra, speechlike(48_000, 0.4), 48_000, subtype="FLOAT")
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "realtime", "enhance", str(inputs), str(extra), "-o", str(out), "--jobs", "2",
         "--model", str(random_model)], capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == ["a.wav", "c.ogg", "extra.wav", "sub/b.flac"]
    assert done.stderr.count("quietmic: wrote") == 4 and "enhanced 4 files" in done.stderr
    assert "s of audio" not in done.stderr  # no bar: stderr is not a terminal
    for source, target in [(inputs / "a.wav", out / "a.wav"), (inputs / "sub" / "b.flac", out / "sub" / "b.flac"),
                           (extra, out / "extra.wav")]:
        enhance_file(source, tmp_path / f"single{source.suffix}", random_model)
        assert (tmp_path / f"single{source.suffix}").read_bytes() == target.read_bytes() or np.array_equal(
            sf.read(tmp_path / f"single{source.suffix}")[0], sf.read(target)[0])


def test_a_failing_file_does_not_stop_the_others(capsys, identity: Path, tmp_path: Path) -> None:
    sf.write(tmp_path / "good.wav", speechlike(RATE), RATE)
    (tmp_path / "bad.wav").write_bytes(b"RIFF....WAVEjunk")
    code = main(["enhance", str(tmp_path / "good.wav"), str(tmp_path / "bad.wav"), "-o", str(tmp_path / "out"),
                 "--jobs", "2", "--model", str(identity), "--format", "flac"])
    err = capsys.readouterr().err
    assert code == 1 and "1 of 2 files could not be enhanced" in err and "bad.wav" in err
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["good.flac"]


def test_clashing_outputs_are_refused_before_any_work(tmp_path: Path) -> None:
    for folder in ("x", "y"):
        (tmp_path / folder).mkdir()
        sf.write(tmp_path / folder / "take.wav", speechlike(RATE), RATE)
    with pytest.raises(Exception, match="would both be written to"):
        batch.plan([str(tmp_path / "x" / "take.wav"), str(tmp_path / "y" / "take.wav")], tmp_path / "out")
    with pytest.raises(Exception, match="which is an input"):
        batch.plan([str(tmp_path / "x" / "take.wav")], tmp_path / "x")


def test_progress_bar_on_request(identity: Path, tmp_path: Path) -> None:
    sf.write(tmp_path / "in.wav", speechlike(RATE, 3.0), RATE)
    done = subprocess.run([sys.executable, "-m", "realtime", "enhance", str(tmp_path / "in.wav"),
                           str(tmp_path / "out.wav"), "--model", str(identity), "--progress"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "s of audio" in done.stderr and "/3 s of audio" in done.stderr


# --- options ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("word", ["none", "null", "None"])
def test_atten_lim_db_none_means_no_limit(random_model: Path, tmp_path: Path, word: str) -> None:
    sf.write(tmp_path / "in.wav", speechlike(16_000), 16_000, subtype="FLOAT")
    assert main(["enhance", str(tmp_path / "in.wav"), str(tmp_path / "cli.wav"), "--model", str(random_model),
                 "--atten-lim-db", word]) == 0
    enhance_file(tmp_path / "in.wav", tmp_path / "api.wav", random_model, atten_lim_db=None)
    enhance_file(tmp_path / "in.wav", tmp_path / "limited.wav", random_model, atten_lim_db=6.0)
    assert (tmp_path / "cli.wav").read_bytes() == (tmp_path / "api.wav").read_bytes()
    assert (tmp_path / "cli.wav").read_bytes() != (tmp_path / "limited.wav").read_bytes()


def test_atten_lim_db_inf_is_refused_with_a_hint_that_works(capsys, tmp_path: Path) -> None:
    """The refusal of 'inf' suggests null, which the option takes (as it takes 'none')."""
    assert main(["enhance", str(tmp_path / "a.wav"), str(tmp_path / "b.wav"), "--atten-lim-db", "inf"]) == 1
    err = capsys.readouterr().err
    assert "or null for no limit" in err and "\n" not in err.strip()
    assert build_parser().parse_args(["enhance", "a", "b", "--atten-lim-db", "null"]).atten_lim_db == "none"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["enhance", "a", "b", "--atten-lim-db", "loud"])
    assert "'none' for no limit" in capsys.readouterr().err


# --- the plot's figures --------------------------------------------------------------------------------


def test_figures_measure_removed_noise_and_si_sdr() -> None:
    rate = 16_000
    framing = Framing(rate, 320, 160, "sqrt_hann")
    clean = speechlike(rate, 2.0)[:, 0] * 1.0
    t = np.arange(len(clean)) / rate
    clean = (np.sin(2 * np.pi * 2 * t) > 0) * 0.3 * np.sin(2 * np.pi * 300 * t)
    noise = 0.01 * np.random.default_rng(1).standard_normal(len(clean))
    figures = enhancement_figures(clean + noise, clean + 0.01 * noise, framing, reference=clean)
    assert figures["noise_removed_between_words_db"] == pytest.approx(40.0, abs=1.0)
    assert abs(figures["speech_level_change_db"]) < 0.5
    assert figures["si_sdr_improvement_db"] > 30.0
    assert si_sdr_db(2.0 * clean, clean) > 100.0  # scale-invariant


def test_plot_with_a_reference_reports_si_sdr(identity: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    sf.write(tmp_path / "clean.wav", speechlike(16_000, 1.0), 16_000)
    result = enhance_file(tmp_path / "clean.wav", tmp_path / "out.wav", identity, plot_path=tmp_path / "p.png",
                          reference_path=tmp_path / "clean.wav")
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    assert result.figures["si_sdr_output_db"] > 40.0 and "noise_removed_between_words_db" in result.figures


def test_plot_install_hint_works_from_a_clone() -> None:
    from realtime.files.plot import install_hint

    assert install_hint() == f"{sys.executable} -m pip install -e '{REPO}[plot]'"


# --- the runtime without scipy, and a quick start ----------------------------------------------------------

NO_SCIPY = """
import sys
sys.modules["scipy"] = None  # any 'import scipy...' now raises ImportError
from realtime.cli import main
code = main(sys.argv[1:])
assert not any(name == "scipy" or name.startswith("scipy.") for name in sys.modules if sys.modules[name] is not None)
sys.exit(code)
"""


def test_file_mode_runs_without_scipy(identity: Path, tmp_path: Path) -> None:
    sf.write(tmp_path / "in.flac", speechlike(22_050), 22_050)
    done = subprocess.run([sys.executable, "-c", NO_SCIPY, "enhance", str(tmp_path / "in.flac"),
                           str(tmp_path / "out.mp3"), "--model", str(identity)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert sf.info(str(tmp_path / "out.mp3")).frames > 0


def test_bundled_models_are_recognised_and_nothing_else(tmp_path: Path) -> None:
    if not DEFAULT_MODEL_PATH.exists():
        pytest.skip("no default model is installed")
    assert is_bundled_model(DEFAULT_MODEL_PATH) and is_bundled_model(MODELS_DIR / "." / DEFAULT_MODEL_PATH.name)
    copy = tmp_path / DEFAULT_MODEL_PATH.name
    copy.write_bytes(DEFAULT_MODEL_PATH.read_bytes())
    assert not is_bundled_model(copy)


def test_sigterm_stops_the_workers_and_leaves_no_partial_output(identity: Path, tmp_path: Path) -> None:
    import signal
    import time

    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    for index in range(3):
        sf.write(inputs / f"long{index}.flac", 0.1 * np.random.default_rng(index).standard_normal(16_000 * 300), 16_000)
    process = subprocess.Popen([sys.executable, "-m", "realtime", "enhance", str(inputs), "-o", str(out), "--jobs", "2",
                                "--model", str(identity)], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60

    def enhancing() -> bool:
        try:
            return out.exists() and any(p.stat().st_size > 100_000 for p in out.glob(".*.tmp"))
        except FileNotFoundError:  # renamed into place between glob and stat
            return False

    while not enhancing():
        assert process.poll() is None and time.monotonic() < deadline, "enhancing did not start or ended too soon"
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130 and stderr.strip().endswith("quietmic: interrupted"), stderr
    assert not list(out.glob(".*.tmp")), "a worker left its temporary output"
