import math

import pytest

from lmkit.training import EarlyStopping


def test_early_stopping_waits_for_patience_and_keeps_the_best():
    stopper = EarlyStopping(patience=2)
    losses = [3.0, 2.0, 2.5, 1.5, 1.6, 1.7]
    stops = [stopper.step(x) for x in losses]
    assert stops == [False, False, False, False, False, True]
    assert stopper.best == 1.5 and stopper.best_step == 3
    assert not stopper.improved


def test_min_delta_and_non_finite():
    stopper = EarlyStopping(patience=1, min_delta=0.1)
    assert not stopper.step(1.0)
    assert stopper.step(0.95)  # not better by more than 0.1
    assert EarlyStopping().step(math.nan)


@pytest.mark.parametrize("kw", [dict(patience=0), dict(min_delta=-1)])
def test_bad_arguments(kw):
    with pytest.raises(ValueError):
        EarlyStopping(**kw)
