"""freeze_startup_heap: what a worker holds at startup leaves the collector's generations."""

from __future__ import annotations

import gc

from lifeboat.serving.predicting import freeze_startup_heap


def test_objects_alive_at_startup_are_frozen_and_later_ones_are_not():
    held = [object()]  # a container the collector tracks
    try:
        freeze_startup_heap()
        later = [object()]
        tracked = {id(o) for o in gc.get_objects()}
        assert gc.get_freeze_count() > 0
        assert id(held) not in tracked
        assert id(later) in tracked
    finally:
        gc.unfreeze()
