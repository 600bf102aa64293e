"""Many files at once: ``quietmic enhance a.wav b.flac dir/ -o OUTDIR/``.

:func:`plan` turns the inputs (files, and directories searched for audio files) into
``(input, output)`` pairs under the output directory, refusing clashes before any work;
:func:`enhance_many` runs them in parallel worker processes (one per core by default), each file
through :func:`~realtime.files.file_mode.enhance_file`, with one progress bar over all the audio.
A file that cannot be enhanced is reported and the others go on.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from realtime.errors import AudioFileError, QuietmicError
from realtime.files.audio_io import AUDIO_EXTENSIONS, OUTPUT_EXTENSIONS, open_audio
from realtime.files.file_mode import FileResult, enhance_file
from realtime.files.progress import Progress

log = logging.getLogger(__name__)

POLL_SECONDS = 0.1
"""How often the parent looks for progress and finished files, seconds."""

EXIT_INTERRUPTED = 130
"""A worker's exit status when the parent stops it (as for Ctrl-C)."""


@dataclass(frozen=True)
class Job:
    """One file to enhance."""

    source: Path
    target: Path


@dataclass(frozen=True)
class Outcome:
    """How one job went: its result, or the error message."""

    job: Job
    result: FileResult | None
    error: str | None = None


def default_jobs() -> int:
    """Worker processes by default: the cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _audio_files(directory: Path) -> list[Path]:
    """The audio files under ``directory`` (by extension, hidden ones left out), sorted."""
    found = []
    for path in sorted(directory.rglob("*")):
        hidden = any(part.startswith(".") for part in path.relative_to(directory).parts)
        if path.is_file() and not hidden and path.suffix.lower() in AUDIO_EXTENSIONS:
            found.append(path)
    return found


def plan(inputs: list[str], output_dir: str | Path, extension: str | None = None) -> list[Job]:
    """The jobs for ``inputs`` (files; directories contribute their audio files, sub-folders kept).

    Each output is ``output_dir/NAME`` (a directory's files keep their path below it), with its
    suffix replaced by ``extension`` when given (``"flac"`` or ``".flac"``). Raises
    :class:`AudioFileError` for a missing input, no audio found, two inputs that would write the
    same output, or an output that is an input.
    """
    out = Path(output_dir)
    suffix = None
    if extension:
        suffix = extension.lower() if extension.startswith(".") else f".{extension.lower()}"
        if suffix not in OUTPUT_EXTENSIONS:
            raise AudioFileError(f"--format {extension}: quietmic cannot write that; choose one of "
                                 f"{', '.join(sorted(s[1:] for s in OUTPUT_EXTENSIONS))}")
    jobs: list[Job] = []
    for name in inputs:
        path = Path(name)
        if name == "-":
            raise AudioFileError("standard input ('-') cannot be one of many inputs; give it alone: "
                                 "'quietmic enhance - OUT.wav'")
        if path.is_dir():
            files = _audio_files(path)
            if not files:
                raise AudioFileError(f"{path} holds no audio files (by extension: {', '.join(sorted(AUDIO_EXTENSIONS))})")
            jobs += [Job(file, out / file.relative_to(path)) for file in files]
        elif path.exists():
            jobs.append(Job(path, out / path.name))
        else:
            raise AudioFileError(f"input {path} does not exist")
    if suffix is not None:
        jobs = [Job(job.source, job.target.with_suffix(suffix)) for job in jobs]
    _refuse_clashes(jobs)
    return jobs


def _refuse_clashes(jobs: list[Job]) -> None:
    """Two jobs writing one file, or a job writing over any input, is an error (before any work)."""
    sources = {job.source.resolve(): job.source for job in jobs}
    targets: dict[Path, Job] = {}
    for job in jobs:
        target = job.target.resolve()
        if target in sources:
            raise AudioFileError(f"{job.source} would be written to {job.target}, which is an input; "
                                 "choose another output directory (-o)")
        if target in targets:
            raise AudioFileError(f"{targets[target].source} and {job.source} would both be written to {job.target}; "
                                 "rename one, or enhance them into different directories")
        targets[target] = job


# --- running them -------------------------------------------------------------------------------

_progress_queue: Any = None
"""In a worker: where it sends the seconds of audio it has done."""


def _stop_worker(_signum: int, _frame: Any) -> None:
    """SIGTERM in a worker: exit quietly; the unwinding removes the unfinished output."""
    sys.exit(EXIT_INTERRUPTED)


def _init_worker(progress_queue: Any) -> None:
    """A worker's start: where to report progress; Ctrl-C is the parent's to handle, SIGTERM exits."""
    global _progress_queue  # noqa: PLW0603 - the worker's one piece of state, set once at its start
    _progress_queue = progress_queue
    progress_queue.cancel_join_thread()  # a stopped worker exits without waiting for the parent to read
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop_worker)


def _report(seconds: float) -> None:
    if _progress_queue is not None:
        _progress_queue.put(seconds)


def _enhance_job(job: Job, progress: Callable[[float], None], settings: dict[str, Any]) -> Outcome:
    """Enhance one file (making its output folder); an error for the user becomes the outcome, not an exception."""
    try:
        try:
            job.target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AudioFileError(f"cannot make the output directory {job.target.parent}: {exc.strerror or exc}; "
                                 "choose another -o directory") from None
        return Outcome(job, enhance_file(job.source, job.target, progress=progress, check_model=False, **settings))
    except QuietmicError as exc:
        return Outcome(job, None, str(exc))


def _run(job: Job, settings: dict[str, Any]) -> Outcome:
    """In a worker: :func:`_enhance_job`, reporting progress to the parent."""
    return _enhance_job(job, _report, settings)


def _total_seconds(jobs: list[Job]) -> float:
    """Seconds of audio in all inputs (for the bar; unreadable ones count 0 and fail later in words)."""
    total = 0.0
    for job in jobs:
        try:
            with open_audio(job.source) as reader:
                total += reader.info.seconds
        except QuietmicError:
            pass
    return total


def enhance_many(
    jobs: list[Job],
    *,
    workers: int,
    show_progress: bool,
    on_done: Callable[[Outcome, Progress], None],
    **settings: Any,
) -> list[Outcome]:
    """Enhance every job, ``workers`` at a time in worker processes; ``on_done`` is told of each as it ends.

    ``settings`` are :func:`enhance_file`'s keyword arguments (``model``, ``atten_lim_db``,
    ``block_size``); the model must be checked already (workers load it without checking).
    An interrupt (``KeyboardInterrupt``) stops the workers, which remove their unfinished outputs.
    """
    workers = max(1, min(workers, len(jobs)))
    total = _total_seconds(jobs)
    if workers == 1:
        return _enhance_in_turn(jobs, total, show_progress, on_done, settings)
    outcomes: list[Outcome] = []
    # fork: workers start at once with this process's modules and logging. The pool is made before
    # the progress bar, while this process has no other thread.
    context = multiprocessing.get_context("fork")
    progress_queue = context.Queue()
    pool = context.Pool(workers, initializer=_init_worker, initargs=(progress_queue,))
    try:
        with Progress(total, show_progress, "enhancing ") as progress:
            pending = [pool.apply_async(_run, (job, settings)) for job in jobs]
            while pending:
                try:
                    progress.advance(progress_queue.get(timeout=POLL_SECONDS))
                    while True:
                        progress.advance(progress_queue.get_nowait())
                except queue.Empty:
                    pass
                for result in [result for result in pending if result.ready()]:
                    pending.remove(result)
                    outcome = result.get()
                    outcomes.append(outcome)
                    on_done(outcome, progress)
        pool.close()
    except BaseException:
        pool.terminate()  # SIGTERM: each worker exits, and its unfinished output is removed
        raise
    finally:
        pool.join()
    return outcomes


def _enhance_in_turn(jobs: list[Job], total: float, show_progress: bool,
                     on_done: Callable[[Outcome, Progress], None], settings: dict[str, Any]) -> list[Outcome]:
    """:func:`enhance_many` in this process, one file after the other."""
    outcomes = []
    with Progress(total, show_progress, "enhancing ") as progress:
        for job in jobs:
            outcome = _enhance_job(job, progress.advance, settings)
            outcomes.append(outcome)
            on_done(outcome, progress)
    return outcomes
