"""A live stream as the settings describe it: the stream rate, and the Enhancer with its LiveProcessor.

``quietmic run`` (:mod:`realtime.cli`) and the background service (:mod:`realtime.desktop.service`)
both build their stream here, so the settings mean the same in each: the block size is the setting,
else the model's hop at the stream rate (no buffering delay); the attenuation limit, bypass, input
channel and devices are the settings'.
"""

from __future__ import annotations

from typing import Any, Callable

from realtime.config import Settings
from realtime.enhancer import Enhancer, hop_at_rate
from realtime.errors import DeviceError
from realtime.live.echo_stage import EchoStage
from realtime.live.portaudio_scan import sounddevice
from realtime.live.processor import LiveProcessor
from realtime.model import MaskModel


Device = int | str | None
"""An audio device: PortAudio index, a part of its name, or None for the system's default
(on PulseAudio/PipeWire: a source or sink name)."""


def device_rate(device: Device) -> int:
    """The default sample rate of input ``device`` as PortAudio reports it, in Hz.

    Raises a :class:`DeviceError` saying what to do when there is no such input device.
    """
    sd = sounddevice()
    try:
        return int(sd.query_devices(device, "input")["default_samplerate"])
    except (ValueError, sd.PortAudioError) as exc:
        raise DeviceError(f"no usable input device: {exc}; list devices with 'quietmic devices'") from None


def build_processor(
    model: MaskModel,
    settings: Settings,
    sample_rate: int,
    *,
    devices: tuple[Device, Device] | None = None,
    stream_factory: Callable[..., Any] | None = None,
    inline: bool = False,
    echo_reference: str | None = None,
    host_blocks: bool = False,
) -> LiveProcessor:
    """An :class:`Enhancer` running ``model`` at ``sample_rate`` Hz, and the (not yet started)
    :class:`LiveProcessor` that streams it, as ``settings`` say.

    Args:
        model: the model (reset by the new Enhancer).
        settings: block size, attenuation limit, bypass, input channel and, unless ``devices``, the devices.
        sample_rate: the stream rate in Hz (e.g. the setting, else :func:`device_rate`).
        devices: (input, output) in place of the settings' (the service's chosen source and virtual microphone).
        echo_reference: with echo cancellation, the PulseAudio/PipeWire source that carries the far end
            (the monitor of the sink the speakers play): an :class:`~realtime.live.echo_stage.EchoStage`
            then runs before the enhancer. Raises a :class:`~realtime.errors.QuietmicError` saying what
            to do when the canceller cannot run (its package missing, a rate it does not take).
        stream_factory, inline, host_blocks: as for :class:`LiveProcessor` (a stream that is not PortAudio's;
            callbacks of the server's period).
    """
    block = settings.block_size or hop_at_rate(model.metadata, sample_rate)
    echo = None if echo_reference is None else EchoStage(echo_reference, sample_rate, block)
    enhancer = Enhancer(model, sample_rate, block_size=block, atten_lim_db=settings.atten_lim_db, bypass=settings.bypass)
    input_device, output_device = (settings.input_device, settings.output_device) if devices is None else devices
    return LiveProcessor(
        enhancer,
        input_device=input_device,
        output_device=output_device,
        input_channel=settings.input_channel,
        stream_factory=stream_factory,
        inline=inline,
        echo=echo,
        host_blocks=host_blocks,
    )
