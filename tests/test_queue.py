"""Tests for gradloss.service.queue: what the queue file holds and what reading it may do."""
import json
import os
import pickle
import stat

import pytest

from gradloss.service import tasks


class _Plant:
    """A pickle that creates a folder when unpickled: what anyone who can write queue.sqlite
    could put there to run code in the worker."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return os.mkdir, (self.path,)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADLOSS_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_tasks_are_stored_as_json_carrying_only_the_run_id(home):
    """Check that an enqueued run is a JSON message with the run id, and reads back as the task."""
    tasks.enqueue("run-1", "task-1")
    huey, _ = tasks.queue_for()
    [raw] = huey.storage.enqueued_items()
    message = json.loads(raw)["__message__"]  # huey's Message fields, in order
    task_id, name, retries, args, kwargs = message[0], message[1], message[3], message[6], message[7]
    assert (task_id, name, args, kwargs) == ("task-1", "gradloss.service.tasks.train_run", ["run-1"], {})
    assert retries == tasks.TASK_RETRIES  # a task that raised before its child started runs again
    task = huey.dequeue()
    assert (task.id, tuple(task.args)) == ("task-1", ("run-1",))


def test_a_pickle_planted_in_the_queue_is_never_unpickled(home, tmp_path):
    """Check that reading a pickle payload from queue.sqlite fails without running its code."""
    marker = tmp_path / "planted"
    huey, _ = tasks.queue_for()
    huey.storage.enqueue(pickle.dumps(_Plant(marker)))
    with pytest.raises(ValueError):
        huey.dequeue()
    assert not marker.exists()


def test_queue_file_is_readable_by_the_owner_only(home):
    """Check that the queue's database files are created 0600."""
    tasks.enqueue("run-1", "task-1")
    files = sorted(home.glob("queue.sqlite*"))
    assert files and all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files), \
        {f.name: oct(f.stat().st_mode) for f in files}
