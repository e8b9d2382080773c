"""Writing outputs under a temporary name and renaming them into place, so that a crash or Ctrl-C
never leaves half a model, checkpoint or file where llmkit (or the user) would take it for whole.
The temporary name is the final one plus `.tmp`, beside it (a rename within one file system)."""

import os
import shutil


def temp_folder(final: str) -> str:
    """A fresh, empty folder beside `final` to build it in; `move_into_place` then swaps it in."""
    tmp = final + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    return tmp


def move_into_place(tmp: str, final: str) -> str:
    """Replaces `final` (a folder or file, if any) with `tmp`."""
    if os.path.isdir(final):
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def replace_folder(folder: str, write) -> str:
    """Writes a folder with `write(tmp)` and swaps it in."""
    tmp = temp_folder(folder)
    write(tmp)
    return move_into_place(tmp, folder)


def write_file(path: str, write, binary: bool = False) -> str:
    """Writes a file with `write(f)` on its temporary name (folders made as needed) and renames it into place."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb" if binary else "w", encoding=None if binary else "utf-8") as f:
        write(f)
    return move_into_place(tmp, path)


def write_path(path: str, write):
    """Writes a file with `write(tmp_path)`, for writers that take a path (gguf-py's), and renames it into place;
    a write that fails leaves no temporary file behind. Returns what `write` returns."""
    tmp = path + ".tmp"
    try:
        result = write(tmp)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    move_into_place(tmp, path)
    return result
