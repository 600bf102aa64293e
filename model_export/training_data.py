"""Training batches: mixtures from the corpus turned into the engine's features and spectra.

Batches are made in worker processes (the trainer's main process runs
TensorFlow) from seeds, so batch ``i`` of a run is the same every time: the
mixer's generator is seeded with ``(seed, split index, batch index)``. Features
and spectra are computed with :mod:`realtime.dsp`, exactly as the runtime does.
No TensorFlow is imported here.
"""

from __future__ import annotations

import collections
import multiprocessing
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from realtime import dsp
from realtime.metadata import ModelMetadata

SPLIT_INDEX = {"train": 0, "val": 1, "test": 2}
"""Mixed into the seed so the splits never share random streams."""

PREFETCH_BATCHES = 4
"""Batches requested ahead of the trainer."""


@dataclass
class Batch:
    """One batch: features ``[B, T, K]``, spectra ``[B, T, F]`` (real/imag), clean waveforms ``[B, L]``,
    and for phase-aware models the low-band spectrum input ``[B, T, 2 * bins]``."""

    features: np.ndarray
    noisy_real: np.ndarray
    noisy_imag: np.ndarray
    clean_real: np.ndarray
    clean_imag: np.ndarray
    clean_wave: np.ndarray
    noisy_wave: np.ndarray
    spectrum: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.features)

    @property
    def inputs(self) -> np.ndarray:
        """The model's input frames ``[B, T, input_size]``: the features, then the spectrum (if any)."""
        if self.spectrum is None:
            return self.features
        return np.concatenate([self.features, self.spectrum], axis=-1)


def featurize(noisy: list[np.ndarray], clean: list[np.ndarray], metadata: ModelMetadata) -> Batch:
    """A :class:`Batch` from equal-length noisy/clean waveform pairs at the model's rate."""
    framing = metadata.framing
    extractor = dsp.FeatureExtractor(
        metadata.features.type,
        framing,
        framing,
        list(metadata.features.band_edges_hz) if metadata.features.band_edges_hz else None,
    )
    noisy_spec = np.stack([dsp.stft(x, framing) for x in noisy]).astype(np.complex64)
    clean_spec = np.stack([dsp.stft(x, framing) for x in clean]).astype(np.complex64)
    power = noisy_spec.real**2 + noisy_spec.imag**2
    spectrum = metadata.features.spectrum
    return Batch(
        spectrum=None if spectrum is None else dsp.low_band_spectrum(noisy_spec, spectrum.bins),
        features=extractor(power),
        noisy_real=np.ascontiguousarray(noisy_spec.real),
        noisy_imag=np.ascontiguousarray(noisy_spec.imag),
        clean_real=np.ascontiguousarray(clean_spec.real),
        clean_imag=np.ascontiguousarray(clean_spec.imag),
        clean_wave=np.stack(clean).astype(np.float32),
        noisy_wave=np.stack(noisy).astype(np.float32),
    )


# --- worker processes ----------------------------------------------------------------------------

_WORKER: dict = {}


def _init_worker(cache_dir: str | None, sample_rate: int, seconds: float, metadata_json: str,
                 mix: Mapping[str, Any]) -> None:
    from model_export.augment import Mixer, mix_config
    from model_export.corpus import load_corpus

    corpus = load_corpus(cache_dir, sample_rate)
    config = mix_config(mix, sample_rate=sample_rate, seconds=seconds)
    _WORKER["mixers"] = {split: Mixer.from_corpus(corpus, split, config=config) for split in ("train", "val")}
    _WORKER["metadata"] = ModelMetadata.from_json(metadata_json)


def batch_examples(mixer: Any, split: str, seed: int, index: int, size: int) -> list:
    """The mixtures (:class:`model_export.augment.Example`) of batch ``index`` of ``split``: ``mixer``'s
    examples drawn from a generator seeded with ``(seed, split, index)``, the same in every run."""
    rng = np.random.default_rng([seed, SPLIT_INDEX[split], index])
    return [mixer.example(rng) for _ in range(size)]


def _make_batch(split: str, seed: int, index: int, size: int) -> Batch:
    examples = batch_examples(_WORKER["mixers"][split], split, seed, index, size)
    return featurize([e.noisy for e in examples], [e.clean for e in examples], _WORKER["metadata"])


class BatchSource:
    """Deterministic batches from worker processes, prefetched.

    Args:
        metadata: the model's contract (features are computed as it says).
        cache_dir: corpus cache (None: the default).
        seconds: length of each example.
        batch_size: examples per batch.
        seed: run seed.
        workers: worker processes.
        mix: :class:`model_export.augment.MixConfig` settings that differ from its defaults
            (a training config's ``mix`` section).
    """

    def __init__(
        self,
        metadata: ModelMetadata,
        cache_dir: str | Path | None,
        seconds: float,
        batch_size: int,
        seed: int,
        workers: int = 1,
        mix: Mapping[str, Any] | None = None,
    ) -> None:
        self.batch_size = batch_size
        self.seed = seed
        self._pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(None if cache_dir is None else str(cache_dir), metadata.sample_rate, seconds, metadata.to_json(),
                      dict(mix or {})),
        )

    def batches(self, split: str, start: int, count: int) -> Iterator[Batch]:
        """Batches ``start .. start + count - 1`` of ``split``, in order."""
        pending: collections.deque[Future[Batch]] = collections.deque()
        next_index = start
        end = start + count
        while pending or next_index < end:
            while next_index < end and len(pending) < PREFETCH_BATCHES:
                pending.append(self._pool.submit(_make_batch, split, self.seed, next_index, self.batch_size))
                next_index += 1
            yield pending.popleft().result()

    def close(self) -> None:
        self._pool.shutdown(cancel_futures=True)

    def __enter__(self) -> BatchSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
