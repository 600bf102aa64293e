"""Which audio files file mode takes and what it writes back: a table of formats and rates.

    python -m benchmarks.file_formats [--seconds 3] [--json benchmarks/results/file_formats.json]

For every case below, writes a test file with soundfile (a tone with a slow
envelope plus white noise), runs it through :func:`realtime.enhance_file` into
the same format and, for lossy inputs, also into WAV, and checks that the output
has the input's rate, length (samples) and channel count. Prints a Markdown table:
input format and subtype, rate (Hz), channels, output extension, the container
and subtype soundfile reads back, whether rate/length/channels match, and the
wall time of the call (seconds; the first call includes loading the model).
Exit status 1 if any case fails, so it doubles as a smoke check of a new
libsndfile.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile

import realtime

TONE_HZ = 220.0
"""The test signal's tone (Hz)."""
ENVELOPE_HZ = 3.0
"""The rate of the tone's on/off envelope (Hz): syllable-like pauses for the denoiser to clean."""
TONE_PEAK = 0.2
"""The tone's peak amplitude (full scale 1.0)."""
NOISE_RMS = 0.03
"""The white noise's RMS (full scale 1.0): about -30 dBFS."""


@dataclass(frozen=True)
class FormatCase:
    """One input file to try: a label, the file extension and soundfile's format and subtype."""

    label: str
    extension: str
    container: str
    subtype: str
    rates: tuple[int, ...]
    channels: int = 1

    @property
    def lossy(self) -> bool:
        """Whether the codec changes the samples (then a WAV output is tried too)."""
        return self.subtype in ("VORBIS", "OPUS", "MPEG_LAYER_III")


CASES = (
    FormatCase("WAV PCM 16", "wav", "WAV", "PCM_16", (8000, 16000, 22050, 44100, 48000)),
    FormatCase("WAV PCM 24 stereo", "wav", "WAV", "PCM_24", (44100,), channels=2),
    FormatCase("WAV float 32", "wav", "WAV", "FLOAT", (96000,)),
    FormatCase("WAV mu-law", "wav", "WAV", "ULAW", (8000,)),
    FormatCase("WAV A-law", "wav", "WAV", "ALAW", (8000,)),
    FormatCase("RF64 PCM 16", "wav", "RF64", "PCM_16", (48000,)),
    FormatCase("W64 PCM 16", "w64", "W64", "PCM_16", (32000,)),
    FormatCase("FLAC 16", "flac", "FLAC", "PCM_16", (11025, 48000)),
    FormatCase("Ogg Vorbis stereo", "ogg", "OGG", "VORBIS", (44100,), channels=2),
    FormatCase("Ogg Opus", "opus", "OGG", "OPUS", (48000,)),
    FormatCase("MP3", "mp3", "MP3", "MPEG_LAYER_III", (22050, 44100)),
    FormatCase("AIFF PCM 16", "aiff", "AIFF", "PCM_16", (16000,)),
)


@dataclass(frozen=True)
class FormatResult:
    """What one input/output pair gave."""

    input: str
    rate: int
    channels: int
    output_extension: str
    output_format: str
    matches: bool
    detail: str
    wall_seconds: float


def tone_in_noise(rate: int, seconds: float, channels: int, seed: int = 0) -> np.ndarray:
    """A tone switched on and off by a slow envelope plus white noise: (samples,) or (samples, channels)."""
    n = int(round(seconds * rate))
    t = np.arange(n) / rate
    envelope = (1.0 + np.sin(2 * np.pi * ENVELOPE_HZ * t)) / 2.0
    x = TONE_PEAK * envelope * np.sin(2 * np.pi * TONE_HZ * t)
    x = x + NOISE_RMS * np.random.default_rng(seed).standard_normal(n)
    return (np.stack([x] * channels, axis=1) if channels > 1 else x).astype(np.float32)


def run_case(case: FormatCase, rate: int, seconds: float, folder: Path) -> list[FormatResult]:
    """Write the case's file at ``rate``, enhance it into each output format and check the outputs."""
    source = folder / f"in-{case.container}-{case.subtype}-{rate}.{case.extension}"
    soundfile.write(source, tone_in_noise(rate, seconds, case.channels), rate,
                    format=case.container, subtype=case.subtype)
    given = soundfile.info(str(source))
    results = []
    for extension in (case.extension, "wav") if case.lossy else (case.extension,):
        target = folder / f"out-{source.stem}.{extension}"
        start = time.perf_counter()
        try:
            realtime.enhance_file(source, target)
        except realtime.QuietmicError as exc:
            results.append(FormatResult(case.label, rate, case.channels, extension, "error", False,
                                        str(exc), time.perf_counter() - start))
            continue
        wall = time.perf_counter() - start
        out = soundfile.info(str(target))
        found = (out.samplerate, out.frames, out.channels)
        wanted = (given.samplerate, given.frames, given.channels)
        detail = "" if found == wanted else f"rate/length/channels {found}, input {wanted}"
        results.append(FormatResult(case.label, rate, case.channels, extension, f"{out.format}/{out.subtype}",
                                    found == wanted, detail, wall))
    return results


def markdown(results: list[FormatResult]) -> str:
    """The results as a Markdown table."""
    lines = ["| input | rate (Hz) | channels | output | written as | same rate, length, channels | wall s |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        verdict = "yes" if r.matches else f"NO: {r.detail}"
        lines.append(f"| {r.input} | {r.rate} | {r.channels} | .{r.output_extension} | {r.output_format} "
                     f"| {verdict} | {r.wall_seconds:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run every case, print the table (and write JSON); 1 if any case failed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each test file (s)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="quietmic-formats-") as folder:
        results = [r for case in CASES for rate in case.rates for r in run_case(case, rate, args.seconds, Path(folder))]
    print(markdown(results))
    if args.json:
        args.json.write_text(json.dumps({"libsndfile": soundfile.__libsndfile_version__,
                                         "cases": [asdict(r) for r in results]}, indent=1))
    failed = [r for r in results if not r.matches]
    if failed:
        print(f"{len(failed)} of {len(results)} cases failed", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
