"""The kill -9 campaign with readers beside the writer (tests/crash_campaign.py; issue 20).

The fast test runs one short round of each configuration; the slow one
(``-m slow``) 15 rounds of each, 60 in all. Either fails on a lost
acknowledged commit, a reopen that fails ``check()`` or holds other than the
model's contents, or a reader that saw a wrong sum. The full campaign is run
as a script: ``python tests/crash_campaign.py --rounds 75 --seed 1``.
"""
from __future__ import annotations

import pytest

import crash_campaign


def _run(tmp_path, rounds: int, seed: int, max_delay: float, ways=None) -> None:
    report = []
    for i, (page_size, mmap) in enumerate(crash_campaign.CONFIGS):
        stats = crash_campaign.run_config(str(tmp_path), page_size, mmap, rounds, seed + i, max_delay=max_delay,
                                          ways=ways)
        report.append(crash_campaign.summary(f"{page_size}-byte pages, {'mmap' if mmap else 'no mmap'}", stats))
        assert stats["rounds"] == rounds
        assert stats["acks"] > 0, report[-1]
        assert stats["acks_checked"] == stats["acks"], report[-1]
        assert not stats["failures"] and not stats["wrong_sums"], "\n".join(report)
    print("\n" + "\n".join(report))


def test_model_keeps_the_sum():
    model = crash_campaign.CampaignModel(3)
    state = model.state(200)
    assert int(state[crash_campaign.SUM]) == sum(len(v) for k, v in state.items() if k.startswith(b"k"))
    # the big transactions are there, and durable and sync=False commits both
    assert any(len(crash_campaign.campaign_ops(3, n, [])) >= 40 for n in range(1, 200))
    assert {crash_campaign.is_durable(3, n) for n in range(1, 20)} == {True, False}


def test_campaign_a_round_each(tmp_path):
    # One round per configuration, killed at a log truncate: the restart's own I/O points.
    _run(tmp_path, rounds=1, seed=500, max_delay=0.8, ways=["truncate"])


@pytest.mark.slow
def test_campaign_long(tmp_path):
    _run(tmp_path, rounds=15, seed=900, max_delay=2.0)
