"""Puts ONNX Runtime's CUDA provider where onnxruntime-node loads it, from the PyPI wheel onnxruntime-gpu.

ONNX Runtime loads execution providers from its core library's folder, so the wheel's provider
libraries go beside onnxruntime-node's libonnxruntime.so.1, and they must come from the same release
as that core. The provider is built for CUDA 13 and has no RUNPATH: the CUDA libraries it needs are
looked for in this Python's site-packages first (PyTorch cu130 brings them all) and installed with pip
into llmkit's own folder otherwise; llmkit puts their folders on the loader path when it starts.

Config: version (onnxruntime-node's), dest (the folder of libonnxruntime.so.1), cache (llmkit's folder
for downloads and CUDA libraries), source (null: PyPI; a .whl; a folder holding the wheel, or the
provider libraries already unpacked), offline (never call pip's index: a machine without network).
Result: version, source, provider_files, library_dirs.
Raises BadInput: no wheel or libraries at source, a release other than onnxruntime-node's, CUDA
libraries missing when offline.
"""

import glob
import os
import re
import site
import subprocess
import sys
import zipfile

from .atomic import write_file
from .jobs import CudaProviderConfig
from .protocol import BadInput, emit

PROVIDER_LIBS = (
    "libonnxruntime_providers_cuda.so",
    "libonnxruntime_providers_shared.so",
    "libonnxruntime_providers_tensorrt.so",
)
# What the provider links (readelf -d) plus cuDNN, which it opens at run time; each with the pip
# package of its CUDA 13 build. The wheel's own extras leave out nvidia-cublas.
CUDA_LIBS = {
    "libcudart.so.13": "nvidia-cuda-runtime==13.*",
    "libcublas.so.13": "nvidia-cublas==13.*",
    "libcublasLt.so.13": "nvidia-cublas==13.*",
    "libcurand.so.10": "nvidia-curand==10.*",
    "libcudnn.so.9": "nvidia-cudnn-cu13==9.*",
}
WHEEL_NAME = re.compile(r"onnxruntime_gpu-(\d+\.\d+\.\d+)-.*\.whl$")


def run(config: CudaProviderConfig) -> int:
    version, dest, cache = config["version"], config["dest"], config["cache"]
    source = config.get("source")
    wheel = download_wheel(version, os.path.join(cache, "downloads")) if source is None else find_wheel(source)
    if wheel:
        check_wheel_version(wheel, version)
        emit("progress", message=f"unpacking the provider from {os.path.basename(wheel)}")
        files = install_from_wheel(wheel, dest)
    else:
        assert source is not None, "a download that finds no wheel raises"
        files = install_from_folder(find_unpacked(source), version, dest)
    library_dirs = find_cuda_libraries(sys_paths(), config.get("offline", False), os.path.join(cache, "cuda-libs"))
    emit("result", version=version, source=wheel or source, provider_files=files, library_dirs=library_dirs)
    return 0


def download_wheel(version: str, folder: str) -> str:
    emit("progress", message=f"downloading onnxruntime-gpu=={version} from PyPI (about 250 MB)")
    os.makedirs(folder, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", folder]
    done = subprocess.run([*pip, f"onnxruntime-gpu=={version}"], capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise BadInput(f"pip could not download onnxruntime-gpu=={version} ({tail})", hint="check access to PyPI, or pass a wheel or folder with --cuda-from")
    wheel = find_wheel(folder, version)
    if wheel is None:
        raise BadInput(f"pip downloaded no onnxruntime-gpu=={version} wheel into {folder}", hint="pass a wheel or folder with --cuda-from")
    return wheel


def find_wheel(source: str, version: str | None = None) -> str | None:
    """The onnxruntime-gpu wheel at source (a file, or the one in a folder that matches `version`)."""
    if not os.path.exists(source):
        raise BadInput(f"--cuda-from {source} does not exist", hint="pass an onnxruntime-gpu wheel or a folder holding it")
    if os.path.isfile(source):
        if not WHEEL_NAME.search(os.path.basename(source)):
            raise BadInput(f"{source} is not an onnxruntime-gpu wheel", hint="pass onnxruntime_gpu-VERSION-...whl or its folder")
        return source
    wheels = sorted(p for p in glob.glob(os.path.join(source, "*.whl")) if WHEEL_NAME.search(os.path.basename(p)))
    found = [w for w in wheels if version is None or wheel_version(w) == version] or wheels
    return found[-1] if found else None


def wheel_version(wheel: str) -> str | None:
    match = WHEEL_NAME.search(os.path.basename(wheel))
    return match.group(1) if match else None


def check_wheel_version(wheel: str, version: str) -> None:
    found = wheel_version(wheel)
    if found != version:
        raise BadInput(
            f"onnxruntime-gpu {found} does not match onnxruntime-node {version}: the provider must come from the same release",
            hint=f"use onnxruntime-gpu=={version}",
        )


def install_from_wheel(wheel: str, dest: str) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        names = {os.path.basename(n): n for n in archive.namelist() if n.startswith("onnxruntime/capi/")}
        missing = [lib for lib in PROVIDER_LIBS if lib not in names]
        if missing:
            raise BadInput(f"{wheel} has no {', '.join(missing)}", hint="use the Linux x86-64 wheel of onnxruntime-gpu")
        return [place(lambda out, lib=lib: out.write(archive.read(names[lib])), dest, lib) for lib in PROVIDER_LIBS]


def find_unpacked(source: str) -> str:
    for folder in (source, os.path.join(source, "onnxruntime", "capi")):
        if os.path.isfile(os.path.join(folder, PROVIDER_LIBS[0])):
            return folder
    raise BadInput(
        f"{source} holds neither an onnxruntime-gpu wheel nor {PROVIDER_LIBS[0]}", hint="pass the wheel, its folder, or a folder with the provider libraries"
    )


def install_from_folder(folder: str, version: str, dest: str) -> list[str]:
    """Unpacked libraries carry no version in their names; the CUDA provider holds its release as a string."""
    with open(os.path.join(folder, PROVIDER_LIBS[0]), "rb") as f:
        if b"\0" + version.encode() + b"\0" not in f.read():
            raise BadInput(
                f"the CUDA provider in {folder} is not from onnxruntime {version}, the release onnxruntime-node uses",
                hint=f"take the libraries from onnxruntime-gpu=={version}",
            )
    files = []
    for lib in PROVIDER_LIBS:
        path = os.path.join(folder, lib)
        if not os.path.isfile(path):
            raise BadInput(f"{folder} has no {lib}", hint="copy all three provider libraries of the wheel")
        with open(path, "rb") as f:
            data = f.read()
        files.append(place(lambda out, data=data: out.write(data), dest, lib))
    return files


def place(write, dest: str, name: str) -> str:
    """Writes a library beside onnxruntime's core under a temporary name, then renames it into place."""

    def executable(out) -> None:
        write(out)
        os.fchmod(out.fileno(), 0o755)

    return write_file(os.path.join(dest, name), executable, binary=True)


def sys_paths() -> list[str]:
    return [p for p in (*site.getsitepackages(), site.getusersitepackages()) if os.path.isdir(p)]


def find_cuda_libraries(search: list[str], offline: bool, pip_target: str) -> list[str]:
    """Folders that together hold every library of CUDA_LIBS; pip installs what none of them has."""
    found = locate(CUDA_LIBS, [*search, pip_target])
    missing = sorted(set(CUDA_LIBS) - set(found))
    if missing and offline:
        raise BadInput(
            f"CUDA libraries not found: {', '.join(missing)}", hint="install PyTorch cu130 (it brings them) or run the set-up where PyPI is reachable"
        )
    if missing:
        packages = sorted({CUDA_LIBS[m] for m in missing})
        emit("progress", message=f"installing {', '.join(packages)} with pip")
        done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--target", pip_target, *packages], capture_output=True, text=True)
        if done.returncode != 0:
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise BadInput(f"pip could not install {', '.join(packages)} ({tail})", hint="check access to PyPI")
        found = locate(CUDA_LIBS, [*search, pip_target])
    return sorted(set(found.values()))


def locate(sonames, roots: list[str]) -> dict[str, str]:
    """soname -> the folder holding it, first root first, searching each root's nvidia/ packages."""
    found: dict[str, str] = {}
    for root in roots:
        for soname in sonames:
            if soname in found:
                continue
            hits = glob.glob(os.path.join(root, "nvidia", "**", soname), recursive=True)
            if hits:
                found[soname] = os.path.dirname(sorted(hits)[0])
    return found
