"""Rules of the schedule registry (``pruning_core.schedules.SCHEDULES``): one class per schedule,
read by the ``Schedule`` value, the CLI, the app's curves and the README."""

from __future__ import annotations

import pytest
from core_helpers import REPO_ROOT

from pruning_core import cli
from pruning_core.finetune import FineTuneConfig
from pruning_core.schedules import (
    SCHEDULES,
    Schedule,
    ScheduleKind,
    register_schedule,
    schedule_curve,
    schedules_table,
)


def test_the_registry_holds_one_schedule_kind_per_name():
    assert list(SCHEDULES) == ["oneshot", "iterative", "gradual", "lottery"]
    for name, kind in SCHEDULES.items():
        assert isinstance(kind, ScheduleKind) and kind.name == name and kind.label and kind.description


def test_a_name_registered_twice_is_refused():
    class Again(ScheduleKind):
        name = "oneshot"
        label = description = "x"

        def label_of(self, schedule):
            return "x"

        def curve(self, schedule, target, n_train):
            return []

        def run(self, run):
            raise NotImplementedError

    with pytest.raises(ValueError, match="already registered"):
        register_schedule(Again)


@pytest.mark.parametrize("kind", list(SCHEDULES))
def test_a_schedule_value_dispatches_label_budget_and_curve_to_its_registered_class(kind, monkeypatch):
    schedule = Schedule(kind, FineTuneConfig(epochs=2), rounds=3)
    registered = SCHEDULES[kind]
    assert schedule.kind_object is registered
    assert schedule.label == registered.label_of(schedule)
    assert schedule.finetune_epochs == (6 if registered.per_round_budget else 2)
    assert schedule_curve(schedule, 0.8, 100)[-1] == (schedule_curve(schedule, 0.8, 100)[-1][0], 0.8)
    monkeypatch.setattr(type(registered), "curve", lambda self, s, t, n: [(0, 0.123)])
    assert schedule_curve(schedule, 0.8, 100) == [(0, 0.123)], "schedule_curve does not read the registry"


def test_an_unregistered_kind_is_refused_naming_the_registered_ones():
    with pytest.raises(ValueError, match="oneshot, iterative, gradual, lottery"):
        Schedule("cyclic", FineTuneConfig(epochs=1))


def test_the_cli_lists_and_accepts_the_registered_schedules(capsys):
    assert cli.main(["schedules"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == list(SCHEDULES)


def test_the_readme_schedules_table_is_the_registrys():
    readme = (REPO_ROOT / "README.md").read_text()
    assert schedules_table() in readme, "README's schedules table differs from schedules_table(): regenerate it"
