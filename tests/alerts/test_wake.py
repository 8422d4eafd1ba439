"""The dispatcher's tick loop wait: woken, timed out, and always cancellable (no broker)."""

import asyncio

import pytest

from alerts.dispatcher import wait_woken


async def test_a_set_event_wakes_it_and_an_unset_one_times_out():
    wake = asyncio.Event()
    wake.set()
    await asyncio.wait_for(wait_woken(wake, 3600), 5)  # returns at once
    wake.clear()
    loop = asyncio.get_running_loop()
    started = loop.time()
    await wait_woken(wake, 0.05)
    assert loop.time() - started >= 0.05


async def test_a_cancellation_that_comes_as_the_event_is_set_is_not_swallowed():
    # The race that kept a stopped dispatcher running: the event is set and the waiting task is
    # cancelled in the same turn of the loop. asyncio.wait_for on Python 3.11 returns normally then.
    wake = asyncio.Event()
    waiting = asyncio.create_task(wait_woken(wake, 3600))
    await asyncio.sleep(0)
    await asyncio.sleep(0)  # now inside wake.wait()
    wake.set()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
