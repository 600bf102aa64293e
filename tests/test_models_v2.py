"""Phase-aware models (metadata format version 2): ERB gains plus a deep filter for the low band.

A randomly initialised phase-aware model (its filter drawn at random, so it does real work) is
built and exported once per module (float32 and int8), then run through the runtime: metadata,
parity, the Keras training path against the Enhancer, block-size independence, faults, the
attenuation limit, other device rates.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow", reason="model export needs the 'export' extra (tensorflow)")

from model_export import contract, signals  # noqa: E402
from model_export.exporter import ExportResult, export_model  # noqa: E402
from model_export.losses import LossWeights, MaskLoss, multi_resolution_stft_loss  # noqa: E402
from model_export.models_v2 import MAX_PARAMETERS, deep_filter_reference_models  # noqa: E402
from model_export.parity import INT8_TOLERANCE  # noqa: E402
from model_export.tflite_metadata import embed_metadata  # noqa: E402
from model_export.train import build_metadata, build_models, load_config  # noqa: E402
from realtime import dsp  # noqa: E402
from realtime.enhancer import ANY_BLOCK_SIZE, Enhancer  # noqa: E402
from realtime.errors import ModelError  # noqa: E402
from realtime.metadata import DeepFilterSpec, ModelMetadata, load_metadata  # noqa: E402
from realtime.model import MaskModel, check_model  # noqa: E402
from test_enhancer import run_blocks  # noqa: E402

REPO_ROOT = Path(__file__).parent.parent
RATE = 16000
SAME_OUTPUT_TOLERANCE = 1e-4
"""Largest difference (full scale 1) between the Keras training path and the float32 Enhancer: float32
rounding of the network and of the spectra (complex64 in training, complex128 in the engine)."""
RECONSTRUCTION_TOLERANCE = 1e-5


def speechlike(rate: int, seconds: float, seed: int) -> np.ndarray:
    """The exporter's synthetic noisy speech-like signal, float32."""
    return signals.synthetic_audio(rate, seconds, seed).astype(np.float32)


@pytest.fixture(scope="module")
def models():  # -> StreamingModels
    return deep_filter_reference_models(RATE, seed=0)


@pytest.fixture(scope="module")
def exported(models, tmp_path_factory: pytest.TempPathFactory) -> dict[str, ExportResult]:
    directory = tmp_path_factory.mktemp("v2")
    return {q: export_model(models, directory / f"v2-{q}.tflite", q) for q in ("float32", "int8")}


def test_metadata_declares_the_spectrum_and_the_deep_filter(exported: dict[str, ExportResult]) -> None:
    result = exported["int8"]
    data = result.path.read_bytes()
    meta = load_metadata(data)
    assert meta == result.metadata
    spectrum, deep = meta.features.spectrum, meta.mask.deep_filter
    assert spectrum is not None and deep is not None
    assert (spectrum.type, spectrum.tensor, spectrum.bins) == (dsp.SPECTRUM_LOW_BAND_RMS, "spectrum", 96)
    assert (deep.tensor, deep.bins, deep.order, deep.lookahead, deep.max_coef) == ("df_coefs", 96, 3, 1, 1.0)
    assert meta.mask.type == dsp.MASK_BAND_GAIN and meta.mask_size == 32 and meta.feature_size == 32
    assert (meta.input_size, meta.output_size) == (32 + 192, 32 + 576)
    assert meta.algorithmic_latency_ms == 20.0  # the filter's lookahead is the model's: no extra latency
    assert 250_000 <= meta.parameters <= MAX_PARAMETERS
    record = json.loads(meta.to_json())
    assert record["format_version"] == 2
    # A gain-only record stays a version-1 record without the new keys (older quietmic reads it).
    plain = replace(meta, features=replace(meta.features, spectrum=None), mask=replace(meta.mask, deep_filter=None))
    plain_record = json.loads(plain.to_json())
    assert plain_record["format_version"] == 1
    assert "spectrum" not in plain_record["features"] and "deep_filter" not in plain_record["mask"]
    assert ModelMetadata.from_json(plain.to_json()) == plain


def test_parity_covers_gains_and_coefficients(exported: dict[str, ExportResult]) -> None:
    assert exported["float32"].parity.max_abs < 1e-5
    int8 = exported["int8"].parity
    assert 0.0 < int8.max_abs <= INT8_TOLERANCE.max_abs and int8.mean_abs <= INT8_TOLERANCE.mean_abs
    model = MaskModel(exported["int8"].path)
    meta = model.metadata
    inputs = signals.synthetic_inputs(meta, 1.0, [7])[0]
    outputs = [model.run(frame[: meta.feature_size], frame[meta.feature_size :]) for frame in inputs]
    coefs = np.stack([o.deep_filter for o in outputs])
    assert coefs.shape == (len(inputs), meta.deep_filter_size)
    assert np.abs(coefs).max() <= 1.0 and coefs.std(axis=0).mean() > 0.01  # a real, varying filter
    with pytest.raises(ValueError, match="spectrum"):
        model.run(inputs[0, : meta.feature_size])
    check = check_model(model, frames=5)
    assert check.valid, check.problems


@pytest.mark.parametrize("atten_lim_db", [None, 12.0])
def test_keras_training_path_and_enhancer_give_the_same_audio(
    models, exported: dict[str, ExportResult], atten_lim_db: float | None
) -> None:
    """The training graph (Keras sequence model -> MaskLoss.enhance -> resynthesis) and the runtime
    (float32 TFLite through the Enhancer) shape the audio identically: gains, deep filter, lookahead
    alignment, the filter's history at the start and the attenuation limit."""
    meta = models.metadata
    signal = speechlike(RATE, 1.0, seed=11)
    spectra = dsp.stft(signal, meta.framing)
    outputs = models.predict_sequence(signals.spectra_inputs(spectra, meta)[None])
    loss = MaskLoss(
        dsp.gain_spreading_matrix(meta.mask.type, meta.framing, meta.framing, list(meta.mask.band_edges_hz)),
        meta.framing,
        LossWeights(atten_lim_db=atten_lim_db),
        meta.lookahead_frames,
        meta.mask.deep_filter,
    )
    real = tf.constant(spectra.real[None].astype(np.float32))
    imag = tf.constant(spectra.imag[None].astype(np.float32))
    enh_real, enh_imag = loss.enhance(tf.constant(outputs), real, imag)
    trained = loss.resynthesise(enh_real, enh_imag).numpy()[0]

    enhancer = Enhancer(exported["float32"].path, RATE, block_size=160, atten_lim_db=atten_lim_db)
    out = enhancer.process(signal)
    latency = enhancer.latency
    assert latency == 320  # 20 ms
    n = len(signal) - latency
    np.testing.assert_allclose(out[latency:], trained[:n], atol=SAME_OUTPUT_TOLERANCE)
    # The filter matters: the gains alone give other audio.
    gains_only = MaskLoss(loss.spreading_t.numpy().T, meta.framing, LossWeights(atten_lim_db=atten_lim_db), 1)
    plain = gains_only.resynthesise(*gains_only.enhance(tf.constant(outputs[..., : meta.mask_size]), real, imag))
    assert np.max(np.abs(plain.numpy()[0][:n] - trained[:n])) > 100 * SAME_OUTPUT_TOLERANCE


def test_any_block_split_gives_the_one_block_output_at_48khz(exported: dict[str, ExportResult]) -> None:
    path = exported["int8"].path
    signal = speechlike(48000, 1.2, seed=3)
    whole = Enhancer(path, 48000, block_size=ANY_BLOCK_SIZE).process(signal)
    pieces = run_blocks(Enhancer(path, 48000, block_size=ANY_BLOCK_SIZE), signal, [5, 480, 33, 1024, 2, 961])
    np.testing.assert_array_equal(pieces, whole)
    assert np.std(whole) > 0.003
    enhancer = Enhancer(path, 48000, block_size=480)
    first = run_blocks(enhancer, signal, [480])
    enhancer.process(speechlike(48000, 0.3, seed=4))
    enhancer.reset()
    np.testing.assert_array_equal(run_blocks(enhancer, signal, [480]), first)


def test_a_nan_burst_leaves_no_trace_once_it_leaves_the_filter(exported: dict[str, ExportResult]) -> None:
    """Two inputs that differ before a NaN burst and agree after it: once the burst and the audio
    before it are older than the window, the lookahead and the filter's history, the outputs are
    bit for bit the same (the model restarted; the stored spectra hold only the shared audio)."""
    path = exported["int8"].path
    rate, hop = 48000, 480
    shared = speechlike(rate, 1.0, seed=5)
    first = np.concatenate([speechlike(rate, 0.3, seed=6), shared])
    second = np.concatenate([0.5 * speechlike(rate, 0.3, seed=7), shared])
    burst = slice(int(0.25 * rate), int(0.3 * rate))
    first[burst] = np.nan
    second[burst] = np.nan
    second[burst.start + 10] = np.inf
    outputs = []
    for signal in (first, second):
        enhancer = Enhancer(path, rate, block_size=hop)
        out = run_blocks(enhancer, signal, [hop])
        assert np.isfinite(out).all() and enhancer.model.states_finite()
        assert enhancer.counters.model_resets >= 1 and enhancer.counters.invalid_samples == burst.stop - burst.start
        outputs.append(out)
    history = -dsp.deep_filter_offsets(3, 1)[0]
    window = 2 * hop
    clear = burst.stop + enhancer.latency + window + (history + enhancer.lookahead_frames) * hop
    np.testing.assert_array_equal(outputs[0][clear:], outputs[1][clear:])
    assert np.max(np.abs(outputs[0][: burst.start] - outputs[1][: burst.start])) > 1e-3  # they did differ


def test_model_failure_bypass_and_zero_db_pass_the_input_through(
    exported: dict[str, ExportResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = exported["int8"].path
    signal = speechlike(48000, 0.5, seed=8)
    for enhancer in (Enhancer(path, 48000, atten_lim_db=0.0), Enhancer(path, 48000, bypass=True)):
        out = enhancer.process(signal)
        latency = enhancer.latency
        assert np.max(np.abs(out[latency:] - signal[: len(signal) - latency])) < RECONSTRUCTION_TOLERANCE

    def fail(self: MaskModel, features: np.ndarray, spectrum: np.ndarray | None = None) -> None:
        raise RuntimeError("simulated interpreter failure")

    failing = Enhancer(path, 48000)
    monkeypatch.setattr(MaskModel, "run", fail)
    out = failing.process(signal)
    latency = failing.latency
    assert failing.model_failing and failing.counters.model_failures > 0
    assert np.max(np.abs(out[latency:] - signal[: len(signal) - latency])) < RECONSTRUCTION_TOLERANCE


def test_attenuation_limit_mixes_the_noisy_input_back(exported: dict[str, ExportResult]) -> None:
    """Under a limit the gains are raised to the floor and the filter scaled by (1 - floor): the output
    is floor * input + (1 - floor) * the unlimited output, in the filtered band as everywhere."""
    path = exported["float32"].path
    signal = speechlike(48000, 0.6, seed=9)
    floor = dsp.attenuation_floor(20.0)
    limited = Enhancer(path, 48000, block_size=480, atten_lim_db=20.0)
    unlimited = Enhancer(path, 48000, block_size=480, atten_lim_db=None)
    out_limited = limited.process(signal)
    out_unlimited = unlimited.process(signal)
    latency = limited.latency
    delayed = np.concatenate([np.zeros(latency, np.float32), signal])[: len(signal)]
    np.testing.assert_allclose(out_limited, floor * delayed + (1 - floor) * out_unlimited, atol=1e-5)
    assert limited.last_gains.min() >= floor - 1e-6
    np.testing.assert_allclose(limited.last_deep_filter, (1 - floor) * unlimited.last_deep_filter, atol=1e-6)


@pytest.mark.parametrize("rate", [8000, 44100])
def test_other_device_rates(exported: dict[str, ExportResult], rate: int) -> None:
    """At 8 kHz the device has bins up to 4 kHz only: the filter shapes those (the spectrum input's
    missing bins are zeros); at 44.1 kHz everything above the model's band takes the top band's gain."""
    enhancer = Enhancer(exported["int8"].path, rate)
    signal = speechlike(rate, 0.5, seed=10)
    out = enhancer.process(signal)
    assert np.isfinite(out).all() and np.std(out) > 1e-3
    assert enhancer._deep_bins == min(96, enhancer.framing.n_bins)


def test_metadata_refuses_an_inconsistent_deep_filter(exported: dict[str, ExportResult], tmp_path: Path) -> None:
    meta = exported["int8"].metadata
    deep = meta.mask.deep_filter
    assert deep is not None

    def with_filter(**changes: object) -> ModelMetadata:
        return replace(meta, mask=replace(meta.mask, deep_filter=replace(deep, **changes)))

    cases = [
        (with_filter(lookahead=2), "a filter tap beyond the model's lookahead"),
        (replace(with_filter(), lookahead_frames=0), "mask.deep_filter.lookahead must be between 0 and"),
        (with_filter(bins=200), "mask.deep_filter.bins must be between 1 and 161"),
        (with_filter(order=0), "mask.deep_filter.order must be between 1 and"),
        (with_filter(max_coef=0.0), "max_coef must be > 0"),
        (with_filter(tensor="mask"), "output tensor names must be unique"),
        (replace(meta, features=replace(meta.features, spectrum=replace(meta.features.spectrum, bins=0))),
         "features.spectrum.bins must be between 1 and 161"),
        (replace(meta, features=replace(meta.features, spectrum=replace(meta.features.spectrum, type="mfcc"))),
         "features.spectrum.type must be one of"),
    ]
    for bad, fragment in cases:
        with pytest.raises(ModelError, match=fragment):
            ModelMetadata.from_json(bad.to_json(), "bad.tflite")
    record = json.loads(meta.to_json())
    record["format_version"] = 1
    with pytest.raises(ModelError, match="needs format_version 2"):
        ModelMetadata.from_json(json.dumps(record), "old.tflite")
    record["format_version"] = 3
    with pytest.raises(ModelError, match="upgrade quietmic"):
        ModelMetadata.from_json(json.dumps(record), "new.tflite")
    # A record whose filter names a tensor the model lacks is refused when the model loads.
    renamed = with_filter(tensor="coefficients")
    path = tmp_path / "renamed.tflite"
    path.write_bytes(embed_metadata(exported["int8"].path.read_bytes(), renamed))
    with pytest.raises(ModelError, match="no output tensor named 'coefficients'"):
        MaskModel(path)
    # A record that forgets the spectrum input is refused too (the model has that input).
    forgetful = replace(meta, features=replace(meta.features, spectrum=None))
    path.write_bytes(embed_metadata(exported["int8"].path.read_bytes(), forgetful))
    with pytest.raises(ModelError, match="the model's inputs are"):
        MaskModel(path)


def test_low_band_spectrum_is_bounded_and_level_independent() -> None:
    rng = np.random.default_rng(0)
    spectrum = rng.standard_normal((4, 161)) + 1j * rng.standard_normal((4, 161))
    quiet = dsp.low_band_spectrum(1e-3 * spectrum, 96)
    loud = dsp.low_band_spectrum(1e3 * spectrum, 96)
    np.testing.assert_allclose(quiet, loud, rtol=1e-5)
    assert quiet.shape == (4, 192) and quiet.dtype == np.float32
    magnitude = np.hypot(quiet[:, 0::2], quiet[:, 1::2])  # real and imaginary parts interleaved
    np.testing.assert_allclose(np.mean(magnitude**2, axis=-1), 1.0, rtol=1e-5)  # unit RMS
    np.testing.assert_allclose(quiet[:, 0::2] / quiet[:, 1::2], spectrum.real[:, :96] / spectrum.imag[:, :96], rtol=1e-4)
    single = dsp.low_band_spectrum(spectrum[2], 96)  # one frame, as the engine calls it
    np.testing.assert_allclose(single, quiet[2], rtol=1e-6)
    impulse = np.zeros(161, complex)
    impulse[5] = 1e15
    assert np.abs(dsp.low_band_spectrum(impulse, 96)).max() <= np.sqrt(96) + 1e-3
    assert not dsp.low_band_spectrum(np.zeros(161, complex), 96).any()
    short = dsp.low_band_spectrum(spectrum[:, :81], 96)  # an 8 kHz device: bins 81-95 missing
    assert short.shape == (4, 192) and not short[:, 2 * 81 :].any() and short[:, : 2 * 81].all()


def test_deep_filter_math() -> None:
    assert list(dsp.deep_filter_offsets(3, 1)) == [-1, 0, 1]
    assert list(dsp.deep_filter_offsets(2, 0)) == [-1, 0]
    with pytest.raises(ValueError):
        dsp.deep_filter_offsets(2, 2)
    rng = np.random.default_rng(1)
    order, bins = 3, 5
    flat = rng.uniform(-1, 1, 2 * order * bins)
    coefs = dsp.deep_filter_coefficients(flat, order, bins)
    assert coefs[1, 2] == flat[2 * (bins + 2)] + 1j * flat[2 * (bins + 2) + 1]  # tap 1, bin 2 (DEEP_FILTER_LAYOUT)
    taps = rng.standard_normal((order, bins)) + 1j * rng.standard_normal((order, bins))
    expected = sum(coefs[i] * taps[i] for i in range(order))
    np.testing.assert_allclose(dsp.apply_deep_filter(taps, coefs), expected)
    # The limit's mix: raised gains and scaled coefficients = floor * X + (1 - floor) * (g X + filter).
    floor, gain = 0.1, 0.3
    mixed = dsp.raise_to_floor(gain, floor) * taps[1] + dsp.apply_deep_filter(taps, dsp.scale_deep_filter(coefs, floor))
    np.testing.assert_allclose(mixed, floor * taps[1] + (1 - floor) * (gain * taps[1] + expected))


def test_losses_new_terms() -> None:
    rng = np.random.default_rng(2)
    clean = tf.constant(rng.standard_normal((2, 8000)).astype(np.float32) * 0.1)
    assert float(multi_resolution_stft_loss(clean, clean)) < 1e-5
    assert float(multi_resolution_stft_loss(0.5 * clean, clean)) > 0.5
    framing = dsp.Framing(16000, 320, 160)
    spec = np.stack([dsp.stft(x, framing) for x in clean.numpy()]).astype(np.complex64)
    real, imag = tf.constant(spec.real), tf.constant(spec.imag)
    loss = MaskLoss(np.eye(161, dtype=np.float32), framing, LossWeights(over_suppression=1.0, mr_stft=1.0))
    ones = tf.ones((2, spec.shape[1], 161))
    perfect = loss(ones, real, imag, real, imag, clean)
    assert float(perfect["over_suppression"]) < 1e-9 and float(perfect["mr_stft"]) < 1e-3
    suppressed = loss(0.3 * ones, real, imag, real, imag, clean)
    louder = loss(tf.ones_like(ones), 2 * real, 2 * imag, real, imag, clean)  # too loud: no over-suppression
    assert float(suppressed["over_suppression"]) > 1e-3 and float(louder["over_suppression"]) < 1e-9
    assert "mr_stft" not in MaskLoss(np.eye(161, dtype=np.float32), framing, LossWeights())(ones, real, imag, real,
                                                                                            imag, clean)
    with pytest.raises(ValueError, match="looks 1 frames ahead"):
        MaskLoss(np.eye(161, dtype=np.float32), framing, LossWeights(), 0, DeepFilterSpec("c", 96, 3, 1))


def test_v2_config_builds_the_phase_aware_model_and_v1_stays() -> None:
    v2 = load_config(REPO_ROOT / "model_export" / "configs" / "v2.yaml")
    meta = build_metadata(v2, {"kind": "test"})
    assert meta.mask.deep_filter is not None and meta.algorithmic_latency_ms <= 20.0
    size = meta.feature_size
    built = build_models(v2, meta, np.zeros(size), np.ones(size))
    assert built.parameters <= MAX_PARAMETERS
    # The filter starts at zero for training: the untrained model is a gain-only model.
    inputs = signals.synthetic_inputs(meta, 0.3, [1])[0]
    assert not built.predict_sequence(inputs[None])[..., meta.mask_size :].any()
    v1 = load_config(REPO_ROOT / "model_export" / "configs" / "v1.yaml")  # the default before: format 1 as it was
    v1_meta = build_metadata(v1, {"kind": "test"})
    assert v1.model.architecture == "gru_mask" and v1_meta.mask.deep_filter is None
    assert v1_meta.features.spectrum is None and json.loads(v1_meta.to_json())["format_version"] == 1
    default = load_config(REPO_ROOT / "model_export" / "configs" / "default.yaml")  # now the v2 model
    assert build_metadata(default, {"kind": "test"}).mask.deep_filter == meta.mask.deep_filter
    standard = contract.deep_filter_model_metadata("x", "1", 16000, meta.states, {})
    assert standard.mask.deep_filter == meta.mask.deep_filter


def test_the_zero_started_filter_learns() -> None:
    """The filter's last layer starts at zero, yet the loss has a gradient for it through the
    training graph's deep filter (a wiring mistake would leave it at zero for ever)."""
    v2 = load_config(REPO_ROOT / "model_export" / "configs" / "v2.yaml")
    meta = build_metadata(v2, {"kind": "test"})
    built = build_models(v2, meta, np.zeros(meta.feature_size), np.ones(meta.feature_size))
    noisy = speechlike(RATE, 0.5, seed=12)
    clean = np.convolve(noisy, np.ones(3) / 3, mode="same").astype(np.float32)  # any other signal
    noisy_spec, clean_spec = dsp.stft(noisy, meta.framing), dsp.stft(clean, meta.framing)
    loss = MaskLoss(
        dsp.gain_spreading_matrix(meta.mask.type, meta.framing, meta.framing, list(meta.mask.band_edges_hz)),
        meta.framing, LossWeights(**v2.loss), meta.lookahead_frames, meta.mask.deep_filter,
    )
    parts = [tf.constant(x[None].astype(np.float32)) for x in
             (noisy_spec.real, noisy_spec.imag, clean_spec.real, clean_spec.imag)]
    inputs = tf.constant(signals.spectra_inputs(noisy_spec, meta)[None])
    kernel = built.sequence.get_layer("filter_coefs").kernel
    with tf.GradientTape() as tape:
        terms = loss(built.sequence(inputs, training=True), *parts, tf.constant(clean[None]))
    gradient = tape.gradient(terms["loss"], kernel)
    assert not np.any(kernel.numpy()) and float(tf.norm(gradient)) > 1e-6
    assert set(terms) == {"loss", "magnitude", "complex", "sisdr", "over_suppression", "mr_stft"}


def test_info_shows_the_spectrum_input_and_the_deep_filter(reference_model) -> None:
    import subprocess
    import sys

    path = reference_model("deep-filter", 16000)
    done = subprocess.run([sys.executable, "-m", "realtime", "info", "--model", str(path)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "spectrum in    spectrum: complex bins below 4800 Hz (96)" in done.stdout
    assert "deep filter    df_coefs: 3 taps (1 ahead) on bins below 4800 Hz (96)" in done.stdout
