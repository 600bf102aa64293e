"""The rule that picks the default attenuation limit from validation figures."""

from __future__ import annotations

import json

from benchmarks.attenuation import DEFAULT_OUT, SI_SDR_TOLERANCE_DB, choose
from realtime.config import DEFAULT_ATTEN_LIM_DB, Settings


def _result(limit: float | None, pesq: float, si_sdr: float) -> dict:
    return {"atten_lim_db": limit, "pesq": pesq, "si_sdr": si_sdr}


def test_the_best_pesq_wins_when_it_keeps_the_waveform() -> None:
    results = [_result(None, 1.70, 9.50), _result(30.0, 1.78, 9.50 - SI_SDR_TOLERANCE_DB / 2), _result(20.0, 1.75, 9.6)]
    assert choose(results)["atten_lim_db"] == 30.0


def test_a_limit_that_costs_si_sdr_is_not_chosen_however_good_its_pesq() -> None:
    results = [_result(None, 1.70, 9.50), _result(15.0, 1.90, 9.50 - 2 * SI_SDR_TOLERANCE_DB)]
    assert choose(results)["atten_lim_db"] is None


def test_the_default_is_what_the_recorded_validation_sweep_chose() -> None:
    recorded = json.loads(DEFAULT_OUT.read_text())
    assert recorded["split"] == "val"
    assert recorded["chosen_atten_lim_db"] == choose(recorded["results"])["atten_lim_db"] == DEFAULT_ATTEN_LIM_DB
    assert Settings().atten_lim_db == DEFAULT_ATTEN_LIM_DB
