"""Make the notebook pictures: ``notebook-rich-display.png`` and ``notebook-window.png`` in ``docs/guide/img/``.

::

    python docs/screenshot_notebook.py [OUT_DIR] [--only rich-display|window]

Both come from a real Jupyter kernel (nbclient; the ``python3`` kernel of this
interpreter), run in a temporary folder with settings and journals in
temporary folders too:

``notebook-rich-display.png``
    ``docs/example.ipynb`` executed as the tests run it, plus a cell of our
    own (an ``each`` pruning sweep of the demo); the code cells whose output is
    rich (``text/html``, ``image/*``) are written with their outputs (stderr
    left out: TensorFlow's C++ log lines) into one HTML page (nbconvert is not needed: the outputs are
    already HTML) and photographed by headless Chromium (``chromium`` on the
    PATH, e.g. Debian's package), the blank end of the page trimmed.
``notebook-window.png``
    A notebook that trains a small Keras model in memory, calls
    ``weightlab.show(model, data=(x, y))`` (IPython's Qt loop: the kernel stays
    usable between cells), ablates two neurons through the window's edit
    panel, checks that Keras' accuracy of ``viewer.model()`` equals the
    window's, and saves ``viewer.window.grab()`` (Qt's offscreen platform with a
    1920x1200 screen; 1400x900 window). The kernel prints both accuracies.

Pictures over 240 kB are palette-quantised as in ``docs/screenshot_guide.py``.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
NOTEBOOK = HERE / "example.ipynb"
CELL_TIMEOUT_S = 900
PAGE_WIDTH = 1100

#: Cells added to the example notebook for the picture (a result it does not display itself).
EXTRA_CELLS = (
    textwrap.dedent(
        """\
        sweep = weightlab.sweep(MODEL_KERAS, HELDOUT, op="prune_magnitude", param="sparsity",
                                range="0.1:0.9:0.2", targets="*/kernel", mode="each", budget_pp=1.0)
        sweep"""
    ),
)

#: The notebook behind ``notebook-window.png``: a model trained here, the window on it, two neurons ablated.
WINDOW_CELLS = (
    textwrap.dedent(
        """\
        import keras
        import numpy as np

        import weightlab
        from weightlab.demo import HELDOUT, TRAIN

        train, heldout = np.load(TRAIN), np.load(HELDOUT)
        x_train, y_train, x, y = train["x"], train["y"], heldout["x"], heldout["y"]
        keras.utils.set_random_seed(0)
        model = keras.Sequential([
            keras.Input(x_train.shape[1:]),
            keras.layers.Conv2D(8, 3, activation="relu", name="conv"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(32, activation="relu", name="hidden"),
            keras.layers.Dense(10, activation="softmax", name="out"),
        ])
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(x_train, y_train, epochs=15, batch_size=32, verbose=0)
        print("trained:", model.evaluate(x, y, verbose=0))"""
    ),
    'viewer = weightlab.show(model, data=(x, y), title="trained in this notebook")\nviewer',
    textwrap.dedent(
        """\
        # Two neurons of "hidden" ablated through the window's own edit panel, as a user clicks them.
        assert viewer.wait(600), "the baseline"
        w = viewer.window
        w.resize(1400, 900)
        w.tree.select("hidden/kernel")
        viewer.wait(600)
        w.selection.set_neurons([4, 11])
        w.edit_panel.tabs.setCurrentIndex(1)
        w.edit_panel.zero_neurons_btn.click()
        assert viewer.wait(600), "the live evaluation"
        window_accuracy = viewer.metrics.accuracy
        keras_accuracy = viewer.model().evaluate(x, y, verbose=0)[1]
        print(f"window {window_accuracy:.6f}  keras {keras_accuracy:.6f}  history {[s.edit.describe() for s in viewer.session.history]}")"""
    ),
    textwrap.dedent(
        """\
        from PySide6.QtWidgets import QApplication
        for _ in range(200):
            QApplication.processEvents()
        viewer.window.grab().save(OUT)
        viewer.close()"""
    ),
)


def save_png_file(path: Path) -> None:
    """Palette-quantise ``path`` in place when it is over the guide's size limit."""
    sys.path.insert(0, str(HERE))
    from PIL import Image
    from screenshot_guide import MAX_BYTES

    if path.stat().st_size > MAX_BYTES:
        with Image.open(path) as im:
            q = im.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        q.save(path, optimize=True)


def kernel_env(tmp: Path) -> dict[str, str]:
    """The environment of the kernels: a ``python3`` kernelspec running this interpreter, private state, offscreen Qt."""
    spec = tmp / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "Python 3", "language": "python"}))
    screen = {"name": "notebook", "x": 0, "y": 0, "width": 1920, "height": 1200, "logicalDpi": 96, "dpr": 1}
    (tmp / "offscreen.json").write_text(json.dumps({"screens": [screen]}))
    env = {
        "JUPYTER_PATH": str(tmp / "jupyter"),
        "WEIGHTLAB_CONFIG_DIR": str(tmp / "config"),
        "WEIGHTLAB_STATE_DIR": str(tmp / "state"),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "MPLBACKEND": "Agg",
    }
    if "DISPLAY" not in os.environ and "WAYLAND_DISPLAY" not in os.environ:
        env["QT_QPA_PLATFORM"] = f"offscreen:configfile={tmp / 'offscreen.json'}"
    return env


def execute(nb: Any, workdir: Path, env: dict[str, str]) -> Any:
    """Run ``nb`` in a fresh kernel whose working folder is ``workdir``; the executed notebook."""
    import nbclient

    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=CELL_TIMEOUT_S,
                                         resources={"metadata": {"path": str(workdir)}})
        client.execute()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return nb


def code_html(source: str) -> str:
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonLexer

    return highlight(source, PythonLexer(), HtmlFormatter(nowrap=True))


def output_html(out: Any) -> str:
    """One output as Jupyter shows it: the richest representation it has."""
    if out.output_type == "stream":
        # TensorFlow's C++ logging on stderr (no CUDA driver, ...) is left out of the picture
        return "" if out.name == "stderr" else f"<pre class='stream'>{html.escape(out.text)}</pre>"
    if out.output_type == "error":
        return f"<pre class='error'>{html.escape(out.ename + ': ' + out.evalue)}</pre>"
    data = out.get("data", {})
    if "text/html" in data:
        return f"<div class='html'>{data['text/html']}</div>"
    if "image/svg+xml" in data:
        return f"<div class='html'>{data['image/svg+xml']}</div>"
    if "image/png" in data:
        return f"<img src='data:image/png;base64,{data['image/png'].strip()}'>"
    return f"<pre>{html.escape(data.get('text/plain', ''))}</pre>"


def is_rich(cell: Any) -> bool:
    return any(k in out.get("data", {}) for out in cell.get("outputs", [])
               for k in ("text/html", "image/png", "image/svg+xml"))


def page(nb: Any, title: str) -> str:
    """The rich cells of ``nb`` (code, then outputs) as one HTML page styled like JupyterLab's light theme."""
    from pygments.formatters import HtmlFormatter

    cells = []
    for cell in nb.cells:
        if cell.cell_type != "code" or not is_rich(cell):
            continue
        n = cell.get("execution_count") or " "
        outs = "".join(output_html(o) for o in cell.outputs)
        cells.append(
            f"<div class='cell'><div class='in'><span class='prompt'>[{n}]:</span>"
            f"<pre class='code'>{code_html(cell.source)}</pre></div>"
            f"<div class='out'><span class='prompt'></span><div class='outputs'>{outs}</div></div></div>"
        )
    style = HtmlFormatter(style="default").get_style_defs(".code")
    return f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; font-size: 13px;
       margin: 0; padding: 12px 16px; background: #fff; color: #212121; width: {PAGE_WIDTH - 32}px; }}
h1 {{ font-size: 15px; font-weight: 600; margin: 0 0 10px 0; color: #444; }}
.cell {{ margin: 0 0 14px 0; }}
.in, .out {{ display: flex; align-items: flex-start; }}
.prompt {{ flex: 0 0 46px; color: #307fc1; font-family: "DejaVu Sans Mono", monospace; font-size: 12px;
          padding-top: 6px; text-align: right; padding-right: 8px; }}
.out .prompt {{ color: #bf5b3d; }}
pre.code {{ flex: 1; margin: 0; padding: 5px 8px; background: #f7f7f7; border: 1px solid #e0e0e0;
           border-radius: 2px; font-size: 12px; white-space: pre-wrap; }}
.outputs {{ flex: 1; padding: 6px 0 0 8px; overflow: hidden; }}
{style}
</style></head><body><h1>{html.escape(title)}</h1>{''.join(cells)}</body></html>"""


def chromium_png(html_file: Path, out: Path, width: int = PAGE_WIDTH, height: int = 6000) -> None:
    """Photograph ``html_file`` with headless Chromium, then trim the blank bottom of the page."""
    from PIL import Image, ImageChops

    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if exe is None:
        raise SystemExit("no chromium on the PATH (Debian/Ubuntu: apt-get install chromium)")
    profile = html_file.parent / "chromium-profile"
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--force-device-scale-factor=1",
           f"--user-data-dir={profile}", f"--window-size={width},{height}", f"--screenshot={out}",
           html_file.as_uri()]
    subprocess.run(cmd, check=True, capture_output=True, timeout=180)
    with Image.open(out) as im:
        rgb = im.convert("RGB")
    box = ImageChops.difference(rgb, Image.new("RGB", rgb.size, (255, 255, 255))).getbbox()
    if box is None:
        raise SystemExit(f"{out}: the page came out blank")
    rgb.crop((0, 0, width, min(rgb.height, box[3] + 16))).save(out, optimize=True)
    save_png_file(out)


def rich_display(out_dir: Path, tmp: Path, env: dict[str, str]) -> Path:
    import nbformat

    work = tmp / "rich"
    work.mkdir()
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.extend(nbformat.v4.new_code_cell(src) for src in EXTRA_CELLS)
    execute(nb, work, env)
    nbformat.write(nb, work / "executed.ipynb")
    page_file = work / "page.html"
    page_file.write_text(page(nb, "docs/example.ipynb in Jupyter: WeightLab's rich display"), encoding="utf-8")
    out = out_dir / "notebook-rich-display.png"
    chromium_png(page_file, out)
    return out


def window(out_dir: Path, tmp: Path, env: dict[str, str]) -> Path:
    import nbformat

    work = tmp / "window"
    work.mkdir()
    out = out_dir / "notebook-window.png"
    cells = (f"OUT = {str(out)!r}", *WINDOW_CELLS)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    execute(nb, work, env)
    for cell in nb.cells:
        for o in cell.outputs:
            if o.output_type == "stream":
                print(o.text.rstrip(), flush=True)
    save_png_file(out)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", nargs="?", default=str(HERE / "guide" / "img"), help="folder for the pictures")
    ap.add_argument("--only", choices=("rich-display", "window"), default=None)
    args = ap.parse_args(argv)
    out_dir = Path(args.out).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="weightlab-notebook-shots-"))
    try:
        env = kernel_env(tmp)
        made = []
        if args.only in (None, "rich-display"):
            made.append(rich_display(out_dir, tmp, env))
        if args.only in (None, "window"):
            made.append(window(out_dir, tmp, env))
        for p in made:
            print(f"{p}: {p.stat().st_size // 1024} KB", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
