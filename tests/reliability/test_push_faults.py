"""Pushes under a polling reader, a push killed half way, and the same model pushed twice."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from google.protobuf import json_format
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts

from components.pusher import STAGING_PREFIX, Executor, push_model, remove_stale_staging
from tests.helpers.tfs_models import write_half_plus


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    """A SavedModel directory (half_plus_two) to push."""
    return write_half_plus(str(tmp_path_factory.mktemp("model")), version_dir="export")


def _files(directory: str) -> set[str]:
    return {os.path.relpath(os.path.join(d, f), directory) for d, _, files in os.walk(directory) for f in files}


def _watch_versions(base: Path, stop: threading.Event, seen: list) -> None:
    """Record every integer-named directory a poller sees, with the files it holds at that moment."""
    while not stop.is_set():
        if base.is_dir():
            for entry in os.listdir(base):
                if entry.isdigit():
                    seen.append(_files(str(base / entry)))
        time.sleep(0.005)


def _slow_copies(monkeypatch: pytest.MonkeyPatch, seconds: float = 0.05) -> None:
    original = fileio.copy

    def slow(src, dst, overwrite=False):
        time.sleep(seconds)
        return original(src, dst, overwrite)

    monkeypatch.setattr(fileio, "copy", slow)


def test_a_polling_reader_never_sees_a_half_written_version(model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tfx.utils import io_utils

    _slow_copies(monkeypatch)
    complete = _files(model)
    for writer, base in (("tfx in place", tmp_path / "tfx"), ("push_model", tmp_path / "ours")):
        stop, seen = threading.Event(), []
        watcher = threading.Thread(target=_watch_versions, args=(base, stop, seen))
        base.mkdir()
        watcher.start()
        if writer == "push_model":
            push_model(model, str(base), "5")
        else:  # what TFX's Pusher does: the version directory in place, saved_model.pb last
            io_utils.copy_dir(model, str(base / "5"), deny_regex_patterns=[r"saved_model\.pb"])
            io_utils.copy_file(os.path.join(model, "saved_model.pb"), str(base / "5" / "saved_model.pb"))
        time.sleep(0.05)
        stop.set()
        watcher.join()
        partial = [s for s in seen if s != complete]
        if writer == "push_model":
            assert seen and not partial, f"{len(partial)} partial views of the version"
            assert not [e for e in os.listdir(base) if e.startswith(STAGING_PREFIX)]
        else:
            assert partial, "TFX's in-place copy is visible half-written (the fault this executor removes)"


def test_a_killed_push_leaves_no_version_and_the_next_push_cleans_up(model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original, copied = fileio.copy, []

    def dies_half_way(src, dst, overwrite=False):
        if len(copied) == 2:
            raise KeyboardInterrupt("killed")  # as if the process died mid-copy
        copied.append(dst)
        return original(src, dst, overwrite)

    monkeypatch.setattr(fileio, "copy", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        push_model(model, str(tmp_path), "7")
    monkeypatch.setattr(fileio, "copy", original)
    assert not (tmp_path / "7").exists()
    (staging,) = [e for e in os.listdir(tmp_path) if e.startswith(STAGING_PREFIX)]
    assert remove_stale_staging(str(tmp_path)) == []  # recent: could be a push still running
    for d, _, files in os.walk(tmp_path / staging):
        for f in files:
            os.utime(os.path.join(d, f), (time.time() - 7200, time.time() - 7200))
    assert remove_stale_staging(str(tmp_path)) == [str(tmp_path / staging)]


def _push(model: str, work: Path, base: Path, name: str):
    model_artifact = standard_artifacts.Model()
    model_artifact.uri = str(work / name / "model")
    fileio.makedirs(model_artifact.uri)
    from tfx.utils import io_utils

    io_utils.copy_dir(model, os.path.join(model_artifact.uri, "Format-Serving"))
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(work / name / "blessing")
    fileio.makedirs(blessing.uri)
    blessing.set_int_custom_property("blessed", 1)
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(work / name / "pushed")
    fileio.makedirs(pushed.uri)
    destination = pusher_pb2.PushDestination(filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=str(base)))
    Executor().Do({"model": [model_artifact], "model_blessing": [blessing]}, {"pushed_model": [pushed]},
                  {"push_destination": json_format.MessageToJson(destination)})
    return pushed


def test_the_same_model_is_pushed_once(model: str, tmp_path: Path) -> None:
    base = tmp_path / "serving"
    first = _push(model, tmp_path, base, "run1")
    second = _push(model, tmp_path, base, "run2")  # e.g. the rerun after a push that was not recorded
    assert first.get_int_custom_property("pushed") == second.get_int_custom_property("pushed") == 1
    assert first.get_string_custom_property("pushed_destination") == second.get_string_custom_property("pushed_destination")
    assert [e for e in os.listdir(base) if e.isdigit()] == [first.get_string_custom_property("pushed_version")]


@pytest.mark.parametrize("content", [b"", b"x"])
def test_a_corrupt_saved_model_pb_is_reported_as_a_file_that_could_not_be_parsed(tmp_path: Path, content: bytes) -> None:
    """Issue 40: an empty (or truncated) saved_model.pb parses as an empty message, and TF's loader then
    said "MetaGraphDef associated with tags 'serve' could not be found ... available tags '[]'"."""
    from serving.servable import load_version

    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "saved_model.pb").write_bytes(content)
    with pytest.raises(OSError, match=r"(could not be parsed as a SavedModel|Cannot parse file).*") as raised:
        load_version("m", 1, str(tmp_path / "1"))
    assert "MetaGraphDef associated with tags" not in str(raised.value)
