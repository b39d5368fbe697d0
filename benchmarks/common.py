"""Shared helpers of the benchmarks: the cached Keras models, fresh-process timing, the machine.

Importing this module has no side effects (no TensorFlow, no files written).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "benchmarks" / ".cache"
#: keras.applications models (weights=None) the large-file benchmarks use.
MODELS = ("ResNet50", "VGG16")
FORMATS = (".h5", ".keras")

_BUILD = """
import os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras
name, out = sys.argv[1], sys.argv[2:]
model = getattr(keras.applications, name)(weights=None)
for path in out:
    tmp = path + ".part" + os.path.splitext(path)[1]
    model.save(tmp)
    os.replace(tmp, path)
"""


def model_path(name: str, ext: str) -> Path:
    """Path of the cached ``keras.applications.<name>(weights=None)`` saved as ``ext``."""
    return CACHE / f"{name.lower()}{ext}"


def ensure_models(names=MODELS, formats=FORMATS) -> dict[tuple[str, str], Path]:
    """Build the cached models that are missing (in a child process: TensorFlow stays out of this one)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in names:
        missing = [str(model_path(name, ext)) for ext in formats if not model_path(name, ext).exists()]
        if missing:
            subprocess.run([sys.executable, "-c", _BUILD, name, *missing], check=True, env=child_env())
        out.update({(name, ext): model_path(name, ext) for ext in formats})
    return out


def child_env(**extra: str) -> dict[str, str]:
    """Environment for child processes: quiet TensorFlow, the repository importable."""
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env


def run_timed(cmd: list[str], env: dict[str, str] | None = None, timeout: float = 600) -> tuple[float, str]:
    """Run ``cmd``; return (wall seconds from spawn to exit, stdout). Raises on a non-zero exit."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env or child_env(), timeout=timeout)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{Path(cmd[1]).name} exited {proc.returncode}: {proc.stderr[-3000:]}")
    return wall, proc.stdout


def last_json(stdout: str):
    """The last line of ``stdout`` that parses as JSON."""
    for line in reversed(stdout.strip().splitlines()):
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            continue
    raise ValueError(f"no JSON in output: {stdout[-500:]}")


def median(xs) -> float:
    return float(statistics.median(xs))


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def machine() -> dict[str, str]:
    """CPU model, cores, RAM, versions (TensorFlow's read from its metadata: not imported)."""
    from importlib import metadata

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram = f"{int(line.split()[1]) / 1024**2:.1f} GiB"
    except OSError:
        pass

    def version(pkg: str) -> str:
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return "not installed"

    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "ram": ram,
        "os": platform.platform(),
        "python": platform.python_version(),
        "tensorflow": version("tensorflow"),
        "keras": version("keras"),
        "numpy": version("numpy"),
        "h5py": version("h5py"),
        "PySide6": version("PySide6") if version("PySide6") != "not installed" else version("PySide6_Essentials"),
    }
