"""The journal storage's trial lists: Optuna's answers, at a cost that does not grow (issue 6).

bitscout's journal storage keeps each study's trial list up to date as journal entries
are replayed, instead of rebuilding it at every read as Optuna's ``JournalStorage`` does.
Its answers must be exactly Optuna's: the same trials in the same order for every state
filter, whichever process wrote the entries. Each check below compares with a fresh
stock ``JournalStorage`` replaying the same file.
"""

from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.storages.journal._storage import JournalStorageReplayResult
from optuna.trial import TrialState

from bitscout._optuna_adapter import IndexedJournalStorage, LocalJournalBackend
from bitscout.study import open_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)

DIST = {"a": CategoricalDistribution((2, 4, 8)), "b": CategoricalDistribution((1, 2))}
FILTERS = [
    None,
    (TrialState.WAITING,),
    (TrialState.RUNNING,),
    (TrialState.RUNNING, TrialState.WAITING),
    (TrialState.COMPLETE,),
    (TrialState.COMPLETE, TrialState.PRUNED),
    (TrialState.FAIL,),
    [TrialState.PRUNED, TrialState.WAITING],
]


def _view(storage: JournalStorage, study_id: int, states) -> list[tuple]:
    return [
        (t.number, t.state, t.params, t.values, t.user_attrs, t.system_attrs)
        for t in storage.get_all_trials(study_id, deepcopy=False, states=states)
    ]


def _assert_as_optuna(path: Path, *storages: JournalStorage) -> None:
    stock = JournalStorage(JournalFileBackend(str(path)))
    study_id = stock.get_study_id_from_name("s")
    for states in FILTERS:
        expected = _view(stock, study_id, states)
        for storage in storages:
            assert _view(storage, study_id, states) == expected, states


def test_trial_lists_answer_as_optunas_journal_whoever_wrote_the_entries(tmp_path: Path) -> None:
    path = tmp_path / "study.journal"
    one = IndexedJournalStorage(LocalJournalBackend(str(path)))
    study = optuna.create_study(storage=one, study_name="s", sampler=optuna.samplers.RandomSampler(seed=0))
    # A second process on the same file: its own replay, its own lists.
    two = IndexedJournalStorage(LocalJournalBackend(str(path)))
    other = optuna.load_study(storage=two, study_name="s", sampler=optuna.samplers.RandomSampler(seed=1))
    _assert_as_optuna(path, one, two)
    for step in range(12):
        trial = study.ask(DIST)
        _assert_as_optuna(path, one, two)  # a RUNNING trial of the first process
        if step % 4 == 0:
            other.enqueue_trial({"a": 8, "b": 1}, user_attrs={"queued_at": step})
        if step % 3 == 0:
            two.set_trial_user_attr(trial._trial_id, "seen_by_two", step)
        _assert_as_optuna(path, one, two)
        state = [TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL][step % 3]
        study.tell(trial, float(step) if state == TrialState.COMPLETE else None, state=state)
        _assert_as_optuna(path, one, two)
        if step % 2:
            queued = other.ask(DIST)  # takes a WAITING trial first, when there is one
            other.tell(queued, -1.0)
            _assert_as_optuna(path, one, two)
    numbers = [t.number for t in one.get_all_trials(study._study_id, deepcopy=False)]
    assert numbers == list(range(len(numbers))) and len(numbers) >= 15
    # deepcopy=True hands out copies, never the storage's own trials.
    mine = one.get_all_trials(study._study_id, deepcopy=False)
    copies = one.get_all_trials(study._study_id, deepcopy=True)
    assert [t.number for t in copies] == [t.number for t in mine]
    assert all(a is not b and a.user_attrs == b.user_attrs for a, b in zip(copies, mine))
    # The list handed out is the caller's: changing it changes nothing stored.
    mine.clear()
    _assert_as_optuna(path, one, two)


def test_a_pickled_storage_replays_the_file_again(tmp_path: Path) -> None:
    path = tmp_path / "study.journal"
    storage = IndexedJournalStorage(LocalJournalBackend(str(path)))
    study = optuna.create_study(storage=storage, study_name="s")
    for value in (1.0, 2.0, 3.0):
        study.tell(study.ask(DIST), value)
    copy = pickle.loads(pickle.dumps(storage))
    assert "_fd" not in vars(copy._backend) or copy._backend._fd is None
    _assert_as_optuna(path, storage, copy)
    again = optuna.load_study(storage=copy, study_name="s")
    again.tell(again.ask(DIST), 4.0)
    _assert_as_optuna(path, storage, copy)


def test_reads_after_the_first_never_rebuild_the_whole_list(tmp_path: Path, monkeypatch) -> None:
    storage, _ = open_storage(None, tmp_path)
    study = optuna.create_study(storage=storage, study_name="s")
    rebuilt = []
    original = JournalStorageReplayResult.get_all_trials

    def counted(self, study_id, states):
        rebuilt.append(states)
        return original(self, study_id, states)

    monkeypatch.setattr(JournalStorageReplayResult, "get_all_trials", counted)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Optuna's heartbeat advice
        for value in range(30):
            study.tell(study.ask(DIST), float(value))
    assert len(study.trials) == 30
    assert rebuilt == [None]  # once, at the study's first read; then kept up to date


def test_an_append_after_the_journal_was_rewritten_goes_to_the_new_file(tmp_path: Path) -> None:
    path = tmp_path / "study.journal"
    storage = JournalStorage(LocalJournalBackend(str(path)))
    study = optuna.create_study(storage=storage, study_name="s")
    study.tell(study.ask(DIST), 1.0)
    # What `bitscout report --repair` does: a new file renamed over the old one.
    fresh = tmp_path / "fresh.journal"
    fresh.write_bytes(path.read_bytes())
    os.replace(fresh, path)
    study.tell(study.ask(DIST), 2.0)
    again = optuna.load_study(storage=JournalStorage(JournalFileBackend(str(path))), study_name="s")
    assert [t.value for t in again.trials] == [1.0, 2.0]


@pytest.mark.parametrize("fsync", [False, True])
def test_every_entry_is_in_the_file_when_append_returns(tmp_path: Path, fsync: bool) -> None:
    path = tmp_path / "study.journal"
    backend = LocalJournalBackend(str(path), fsync=fsync)
    logs = [{"op_code": 0, "worker_id": "w", "study_name": f"s{i}", "directions": [1]} for i in range(3)]
    backend.append_logs(logs[:1])
    backend.append_logs(logs[1:])
    # Read back by a plain open(), as another process would, without closing the backend.
    assert path.read_bytes().count(b"\n") == 3
    assert list(JournalFileBackend(str(path)).read_logs(0)) == logs
    assert list(backend.read_logs(1)) == logs[1:]


@pytest.mark.parametrize("chunk", [7, 64, 1 << 22])
def test_reads_in_chunks_give_every_entry_once(tmp_path: Path, monkeypatch, chunk: int) -> None:
    """Lines longer than a chunk and lines cut by a chunk's end included."""
    import bitscout._optuna_adapter as adapter

    path = tmp_path / "study.journal"
    storage = JournalStorage(LocalJournalBackend(str(path)))
    study = optuna.create_study(storage=storage, study_name="s")
    for value in range(4):
        trial = study.ask(DIST)
        trial.set_user_attr("long", "x" * 200 * value)  # lines of many chunks
        study.tell(trial, float(value))
    expected = list(JournalFileBackend(str(path)).read_logs(0))
    monkeypatch.setattr(adapter, "_READ_CHUNK", chunk)
    backend = LocalJournalBackend(str(path))
    assert list(backend.read_logs(0)) == expected
    assert list(backend.read_logs(5)) == expected[5:]
    with open(path, "ab") as f:  # a torn last line is not an entry
        f.write(b'{"op_code":5,"worker_id":"x')
    assert list(backend.read_logs(0)) == expected


def _record(step: int) -> dict:
    """A record shaped like the search loop's: per-layer dicts of choices, float metrics."""
    layer = {"name": "integer", "data_in_width": [2, 4][step % 2], "weight_width": 8, "signed": True}
    return {
        "software_metrics": {"accuracy": 0.5 + step / 1000, "loss": 1.0 / (step + 1)},
        "sampled_config": {"fc1": dict(layer), "fc2": {**layer, "weight_width": 8.0}, "relu": "float"},
        "duration_s": 0.001 * step,
    }


def test_finished_trials_share_equal_parts_and_keep_every_value(tmp_path: Path) -> None:
    """Finished trials are compacted in memory (issue 16: 10 KB a trial on a 13,824-trial
    brute force): equal parts become one object, and every value stays what Optuna
    replays, type included (8 and 8.0, True and 1 are equal but not the same value)."""
    path = tmp_path / "study.journal"
    storage = IndexedJournalStorage(LocalJournalBackend(str(path)))
    study = optuna.create_study(storage=storage, study_name="s", sampler=optuna.samplers.RandomSampler(seed=0))
    for step in range(40):
        trial = study.ask(DIST)
        trial.set_user_attr("record", _record(step))
        trial.set_user_attr("accuracy", 0.5 + step / 1000)
        if step == 39:
            break  # the last one stays RUNNING
        study.tell(trial, float(step))
    _assert_as_optuna(path, storage)
    stock = JournalStorage(JournalFileBackend(str(path)))
    expected = stock.get_all_trials(0, deepcopy=False)
    trials = storage.get_all_trials(study._study_id, deepcopy=False)

    def typed(value):
        if isinstance(value, dict):
            return {k: typed(v) for k, v in value.items()}
        return (type(value), value)

    for mine, theirs in zip(trials, expected, strict=True):
        assert mine.distributions == theirs.distributions
        assert typed(mine.user_attrs) == typed(theirs.user_attrs)
        assert typed(mine.params) == typed(theirs.params)
    done = trials[:-1]
    assert all(t.distributions is done[0].distributions for t in done)
    fc1 = [t.user_attrs["record"]["sampled_config"]["fc1"] for t in done]
    assert fc1[0] is fc1[2] and fc1[1] is fc1[3] and fc1[0] is not fc1[1]  # widths 2 / 4
    fc2 = [t.user_attrs["record"]["sampled_config"]["fc2"] for t in done]
    assert fc2[0] is not fc1[0] and fc2[0]["weight_width"] == 8.0  # a float in it: not shared
    metrics = [t.user_attrs["record"]["software_metrics"] for t in done]
    assert metrics[0] is not metrics[1]
    assert trials[-1].distributions is not done[0].distributions  # running: left as replayed
    # A finished trial cannot change any more; one that does change gets new dicts from Optuna.
    assert trials[-1].user_attrs["record"]["sampled_config"]["fc1"] == _record(39)["sampled_config"]["fc1"]


def test_the_backend_keeps_two_offsets_whatever_the_length_of_the_journal(tmp_path: Path) -> None:
    path = tmp_path / "study.journal"
    storage = IndexedJournalStorage(LocalJournalBackend(str(path)))
    study = optuna.create_study(storage=storage, study_name="s")
    for value in range(25):
        study.tell(study.ask(DIST), float(value))
    offsets = storage._backend._log_number_offset
    read = storage._replay_result.log_number_read
    assert sorted(offsets) == [0, read] and offsets[read] == path.stat().st_size
    # Another process appends; this one reads on from its offset, and a fresh reader
    # that starts from 0 gets every entry.
    other = optuna.load_study(storage=IndexedJournalStorage(LocalJournalBackend(str(path))), study_name="s")
    other.tell(other.ask(DIST), 99.0)
    assert [t.value for t in study.trials][-1] == 99.0
    assert sorted(offsets) == [0, storage._replay_result.log_number_read]
    _assert_as_optuna(path, storage)


def test_a_resumed_study_shares_the_parts_of_its_stored_trials(tmp_path: Path) -> None:
    path = tmp_path / "study.journal"
    study = optuna.create_study(storage=IndexedJournalStorage(LocalJournalBackend(str(path))), study_name="s")
    for step in range(6):
        trial = study.ask(DIST)
        trial.set_user_attr("record", _record(step))
        study.tell(trial, float(step))
    resumed = IndexedJournalStorage(LocalJournalBackend(str(path)))  # replays the whole file at its first read
    trials = resumed.get_all_trials(resumed.get_study_id_from_name("s"), deepcopy=False)
    assert all(t.distributions is trials[0].distributions for t in trials)
    assert trials[0].user_attrs["record"]["sampled_config"]["fc1"] is trials[2].user_attrs["record"]["sampled_config"]["fc1"]
    _assert_as_optuna(path, resumed)


def test_distributions_are_shared_only_when_optuna_calls_them_equal():
    from optuna.distributions import FloatDistribution, IntDistribution

    from bitscout._optuna_adapter import _exactly

    same = [
        (CategoricalDistribution([2, 4, 8]), CategoricalDistribution((2, 4, 8))),
        (CategoricalDistribution(["integer", None]), CategoricalDistribution(["integer", None])),
        (FloatDistribution(0.0, 1.0, log=False), FloatDistribution(0.0, 1.0)),
        (IntDistribution(1, 9, step=2), IntDistribution(1, 9, step=2)),
    ]
    for a, b in same:
        assert a == b and _exactly(a) == _exactly(b) and hash(_exactly(a)) == hash(_exactly(b))
    # Optuna calls these equal (1 == 1.0 == True, NaN == NaN): kept apart, which only costs memory.
    for a, b in [
        (CategoricalDistribution([1, 2]), CategoricalDistribution([1.0, 2])),
        (CategoricalDistribution([True]), CategoricalDistribution([1])),
        (CategoricalDistribution([float("nan")]), CategoricalDistribution([float("nan")])),
    ]:
        assert a == b and _exactly(a) != _exactly(b)
    # Never shared when Optuna tells them apart.
    for a, b in [
        (CategoricalDistribution([2, 4]), CategoricalDistribution([4, 2])),
        (FloatDistribution(0.0, 1.0), FloatDistribution(0.0, 2.0)),
        (IntDistribution(1, 9), FloatDistribution(1, 9)),
    ]:
        assert a != b and _exactly(a) != _exactly(b)
