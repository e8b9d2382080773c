"""The one way the jobs write outputs: under a temporary name, then renamed into place."""

import os

import pytest

from llmkit_worker.atomic import move_into_place, replace_folder, temp_folder, write_file, write_path


def test_write_file_makes_folders_and_leaves_no_temporary_file(tmp_path):
    path = str(tmp_path / "a" / "b" / "metrics.jsonl")
    assert write_file(path, lambda f: f.write("one\n")) == path
    write_file(path, lambda f: f.writelines(["two\n", "three\n"]))
    assert open(path).read() == "two\nthree\n"
    assert os.listdir(tmp_path / "a" / "b") == ["metrics.jsonl"]
    write_file(path, lambda f: f.write(b"\x00\x01"), binary=True)
    assert open(path, "rb").read() == b"\x00\x01"


def test_a_failed_write_keeps_the_old_file(tmp_path):
    path = str(tmp_path / "config.json")
    write_file(path, lambda f: f.write("old"))

    def crash(f):
        f.write("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_file(path, crash)
    assert open(path).read() == "old"


def test_replace_folder_swaps_the_whole_folder(tmp_path):
    folder = str(tmp_path / "model")
    os.makedirs(folder)
    open(os.path.join(folder, "stale.bin"), "w").close()
    assert replace_folder(folder, lambda tmp: open(os.path.join(tmp, "weights.bin"), "w").close()) == folder
    assert os.listdir(folder) == ["weights.bin"]
    assert sorted(os.listdir(tmp_path)) == ["model"]


def test_temp_folder_starts_empty_even_after_a_crashed_run(tmp_path):
    final = str(tmp_path / "out")
    os.makedirs(final + ".tmp")
    open(os.path.join(final + ".tmp", "leftover"), "w").close()
    tmp = temp_folder(final)
    assert tmp == final + ".tmp" and os.listdir(tmp) == []
    open(os.path.join(tmp, "new"), "w").close()
    move_into_place(tmp, final)
    assert os.listdir(final) == ["new"] and not os.path.exists(tmp)


def test_write_path_renames_into_place_and_a_failed_write_leaves_nothing(tmp_path):
    path = str(tmp_path / "model.gguf")

    def write(tmp):
        open(tmp, "wb").write(b"GGUF")
        return 4

    assert write_path(path, write) == 4
    assert open(path, "rb").read() == b"GGUF"

    def crash(tmp):
        open(tmp, "wb").write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_path(path, crash)
    assert open(path, "rb").read() == b"GGUF"
    assert os.listdir(tmp_path) == ["model.gguf"]
