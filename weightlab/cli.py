"""The ``weightlab`` command: the window by default, subcommands for headless work.

::

    weightlab [PATH] [--data HELDOUT.npz]       open the window (on PATH)
    weightlab --demo                            open the window on the bundled demo
    weightlab --install-desktop | --uninstall-desktop
                                                add WeightLab to this user's desktop (menu, icon, file types)
    weightlab inspect PATH [--json] [--all]     one row per tensor with statistics (--all: with
                                                optimizer state and metrics variables)
    weightlab inspect PATH --tensor NAME [--bins N] [--json]
                                                one tensor's statistics and histogram
    weightlab compare A B [--json]              per-tensor change from A to B, largest first
    weightlab export PATH --tensor NAME -o OUT.npy|OUT.csv [--recipe R.json]
    weightlab eval PATH --data HELDOUT.npz [--recipe R.json] [--json] [--trust]
                   [--architecture MODEL.keras] [--signature S] [--input T] [--output T]
    weightlab apply PATH RECIPE.json -o OUT [--overwrite]
    weightlab sweep PATH --data HELDOUT.npz --op OP --param NAME
                   (--values V1,V2,... | --range START:STOP:STEP | --adaptive [LOW:HIGH])
                   [--target GLOB ...] [--each] [--coupled] [--metric accuracy|agreement]
                   [--budget PP] [--fixed KEY=VALUE ...] [--workers N] [--ray [ADDRESS]]
                   [--log FILE.jsonl] [--json | --csv FILE] [--plot FILE.png|FILE.svg]
    weightlab rank PATH --data HELDOUT.npz --layer NAME [--ablation zero|mean]
                   [--no-cumulative] [--json | --csv FILE] [--plot FILE.png|FILE.svg]
    weightlab plan PATH --data HELDOUT.npz --op OP --param NAME --budget PP
                   [--target GLOB ...] (--values ... | --range ... | --adaptive ...)
                   -o RECIPE.json [--json]
    weightlab finetune PATH --train TRAIN.npz (--val VAL.npz | --val-split F) --epochs N
                   [--batch-size B] [--lr LR] [--optimizer NAME] [--schedule SPEC] [--recipe R.json]
                   [--keep-masks | --no-keep-masks] [--freeze GLOB] [--l1 F] [--l2 F]
                   [--clip-weights C] [--early-stopping PATIENCE] [--seed S] [--data HELDOUT.npz]
                   -o OUT [--json]
    weightlab prune-retrain PATH --train TRAIN.npz (--val VAL.npz | --val-split F) --rounds R
                   (--threshold T --factor F | --sparsity S1,S2,...) --epochs E
                   [--data HELDOUT.npz] [--budget PP] -o OUT [--json]

A user error (bad file, recipe, held-out set or graph, unknown command) prints
one line on stderr and exits with status 2; nothing is written. When a system
library Qt's X11 plugin needs is missing, the window command says which and how
to install it (:mod:`weightlab.platform_check`) and exits with status 1. Ctrl+C ends a sweep, ranking or
plan early: the points measured so far are printed (and saved), status 130; it ends a fine-tune
after the current batch, writing the best (or, --on-cancel last, the last) epoch's weights, status
130. The libraries' log lines
(TensorFlow, absl, oneDNN, CUDA, Keras warnings) stay off stderr unless
``--verbose`` (or ``WEIGHTLAB_DEBUG=1``); output cut short by a pipe
(``| head``) ends quietly.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from weightlab import __version__
from weightlab.core.errors import WeightLabError

SUBCOMMANDS = ("inspect", "eval", "apply", "compare", "export", "sweep", "rank", "plan", "finetune", "prune-retrain")
EXIT_USER_ERROR = 2
#: Exit status of a sweep, ranking or plan ended early by Ctrl+C (128 + SIGINT, as a shell reports it).
EXIT_INTERRUPTED = 130
EXIT_INTERNAL_ERROR = 1
#: Exit status of a prune-retrain whose first round already fell past --budget: nothing is written.
EXIT_NOTHING_KEPT = 3
#: Exit status when stdout is closed early (``weightlab inspect BIG | head``):
#: that of a Unix tool ended by SIGPIPE as a shell reports it (128 + 13).
EXIT_BROKEN_PIPE = 128 + 13
#: Longest error line printed (characters); the rest is cut.
MAX_ERROR_LINE = 1000

_VERBOSE_HELP = "show the libraries' log lines and warnings, and full tracebacks (also: WEIGHTLAB_DEBUG=1)"
#: Every format WeightLab opens, as the help texts name them (a test checks it against weightlab.formats.FORMATS).
FORMATS_HELP = (
    "a Keras model (.keras), a legacy Keras HDF5 model or weights file (.h5, .hdf5), Keras 3 weights "
    "(.weights.h5), a TensorFlow SavedModel folder, a TensorFlow checkpoint (its .index file or prefix) "
    "or a frozen TensorFlow graph (.pb)"
)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``weightlab`` command; returns the exit status.

    A failure caused by a file, recipe, held-out set or graph (a
    :class:`~weightlab.core.errors.WeightLabError`) prints one line on stderr
    and returns 2. Anything else unexpected prints one line and returns 1
    (``--verbose`` shows its traceback). Subcommands keep TensorFlow's and the
    other libraries' log lines off stderr (:mod:`weightlab.engine.quiet`)
    unless ``--verbose`` or ``WEIGHTLAB_DEBUG=1``. When stdout is closed early
    (a pipe into ``head``), the command ends quietly with status 141.
    """
    from weightlab.engine.quiet import is_verbose, quiet_process, set_verbose

    argv = list(sys.argv[1:] if argv is None else argv)
    # "weightlab --verbose inspect ..." as well as "weightlab inspect ... --verbose"
    lead = 0
    while lead < len(argv) and argv[lead] in ("--verbose", "-v"):
        lead += 1
    subcommand = lead < len(argv) and argv[lead] in SUBCOMMANDS
    if subcommand:
        args = _subcommand_parser().parse_args(argv[lead:])
    else:
        word = _unknown_command(argv[lead:])
        if word is not None:
            _say(sys.stderr, _unknown_command_error(word))
            return EXIT_USER_ERROR
        args = _gui_parser().parse_args(argv)
    verbose = bool(lead or args.verbose or is_verbose())
    set_verbose(verbose)
    if not subcommand and (args.install_desktop or args.uninstall_desktop):
        return _guarded(lambda: _desktop(args.install_desktop), sys.stderr, verbose)
    if not subcommand:
        return _guarded(lambda: _gui(args), sys.stderr, verbose)
    with quiet_process() as err:
        args.stderr = err  # the user's messages (fd 2 itself is quiet)
        return _guarded(lambda: args.func(args), err, verbose)


def _guarded(run: Any, err: Any, verbose: bool) -> int:
    """Run a command; turn its failures into one line on ``err`` and an exit status."""
    import traceback

    try:
        code = run()
        sys.stdout.flush()  # a closed pipe shows here rather than at exit
        return code
    except WeightLabError as e:
        if verbose:
            traceback.print_exc(file=err)
        _say(err, f"weightlab: error: {e}")
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        if not _stdout_closed():
            if verbose:
                raise
            _say(err, "weightlab: error: a pipe to a child process broke (run with --verbose for details)")
            return EXIT_INTERNAL_ERROR
        _drop_stdout()
        return EXIT_BROKEN_PIPE
    except Exception as e:  # a bug or a library failure: one line, the traceback on request
        if verbose:
            raise
        text = str(e) or type(e).__name__
        what = "not enough memory" if isinstance(e, MemoryError) else f"{type(e).__name__}: {text}"
        _say(err, f"weightlab: internal error: {what} (run with --verbose for the traceback)")
        return EXIT_INTERNAL_ERROR


def _say(err: Any, message: str) -> None:
    """Print ``message`` as one line (newlines folded, cut at :data:`MAX_ERROR_LINE`)."""
    line = " ".join(part.strip() for part in message.splitlines() if part.strip())
    if len(line) > MAX_ERROR_LINE:
        line = line[: MAX_ERROR_LINE - 1] + "\u2026"
    try:
        print(line, file=err, flush=True)
    except (OSError, ValueError):
        pass  # stderr itself is gone: nothing left to tell


def _stdout_closed() -> bool:
    """True when stdout is a pipe whose reader has gone (POLLERR), e.g. ``| head`` finished."""
    import select

    try:
        fd = sys.stdout.fileno()
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in poller.poll(0))
    except (AttributeError, OSError, ValueError):
        return True  # no usable stdout left: the pipe is what broke


def _drop_stdout() -> None:
    """Point stdout at /dev/null so that Python's final flush at exit fails no more.

    The recipe of the Python documentation (signal module, "Note on SIGPIPE").
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (AttributeError, OSError, ValueError):
        pass


# -- the window ---------------------------------------------------------------


def _gui_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="weightlab",
        description="Inspect and edit the weights of TensorFlow/Keras models. Opens "
        f"{FORMATS_HELP}. Headless commands: {', '.join(SUBCOMMANDS)} (weightlab COMMAND --help).",
    )
    p.add_argument("path", nargs="?", type=Path, help=f"the model to open: {FORMATS_HELP}")
    p.add_argument("--data", type=Path, help="held-out set (.npz with arrays x and y) for live accuracy")
    p.add_argument("--demo", action="store_true", help="open the bundled demo model and held-out set")
    p.add_argument(
        "--screenshot", type=Path, metavar="PNG", help="save a picture of the window to PNG once it is ready, and quit"
    )
    desktop = p.add_mutually_exclusive_group()
    desktop.add_argument(
        "--install-desktop",
        action="store_true",
        help="install WeightLab for this user as a desktop application (menu entry, icon, and opening "
        ".keras, .h5, .hdf5 and .pb files with a double-click), then exit",
    )
    desktop.add_argument(
        "--uninstall-desktop", action="store_true", help="remove what --install-desktop installed, then exit"
    )
    p.add_argument("-v", "--verbose", action="store_true", help=_VERBOSE_HELP)
    p.add_argument("--version", action="version", version=f"weightlab {__version__}")
    return p


def _unknown_command(argv: Sequence[str]) -> str | None:
    """The first argument when it reads as a mistyped command rather than a model (``weightlab frob m.h5``).

    A first argument that is a word (no ``/``, no ``.``) and names no file or
    folder here is a command; a file name (``missing.h5``) is the window's to
    report. Returns None otherwise.
    """
    if not argv or argv[0].startswith("-"):
        return None
    first = argv[0]
    if any(c in first for c in ("/", ".", os.sep)) or Path(first).exists():
        return None
    return first


def _unknown_command_error(word: str) -> str:
    import difflib

    close = difflib.get_close_matches(word, SUBCOMMANDS, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return (
        f"weightlab: error: unknown command '{word}' (choose from {', '.join(SUBCOMMANDS)}, "
        f"or open a model in the window: weightlab PATH){hint}"
    )


def _desktop(install: bool) -> int:
    """``--install-desktop`` / ``--uninstall-desktop``: print each path written or removed."""
    from weightlab import desktop

    paths = desktop.install_desktop() if install else desktop.uninstall_desktop()
    verb = "installed" if install else "removed"
    for path in paths:
        print(f"{verb} {path}")
    if not paths:
        print("nothing to remove: WeightLab was not installed as a desktop application" if not install else
              "nothing to install")
    elif install:
        print("WeightLab is in the applications menu; .keras, .h5, .hdf5 and .pb files open with it")
    return 0


def _gui(args: argparse.Namespace) -> int:
    path, data = args.path, args.data
    if args.demo:
        from weightlab.demo import HELDOUT, MODEL_KERAS

        path, data = path or MODEL_KERAS, data or HELDOUT
    problem = display_problem()
    if problem:
        print(f"weightlab: cannot open a window: {problem}", file=sys.stderr)
        return EXIT_USER_ERROR
    from weightlab.platform_check import xcb_problem

    problem = xcb_problem()
    if problem:  # Qt would abort (status 134) naming no library: say which, and how to install them
        _say(sys.stderr, f"weightlab: cannot open a window: {problem}")
        return EXIT_INTERNAL_ERROR
    from weightlab.gui.app import run_app

    return run_app(path=path, data=data, screenshot=args.screenshot)


def display_problem(environ: dict[str, str] | None = None) -> str | None:
    """Say why Qt cannot show a window here, or None when it can (Linux checks only).

    Checks that a display is set (X11 ``DISPLAY`` or ``WAYLAND_DISPLAY``) unless
    ``QT_QPA_PLATFORM`` picks another platform (``offscreen``). The libraries
    of Qt's xcb plugin are checked by :func:`weightlab.platform_check.xcb_problem`.
    """
    env = os.environ if environ is None else environ
    if not sys.platform.startswith("linux"):
        return None
    platform = env.get("QT_QPA_PLATFORM", "")
    if platform and not platform.startswith("xcb"):
        return None
    if not platform and env.get("WAYLAND_DISPLAY"):
        return None
    if not env.get("DISPLAY"):
        return (
            "no display (DISPLAY is not set). Run it on a desktop, under Xvfb "
            "(xvfb-run weightlab ...), or headless with QT_QPA_PLATFORM=offscreen."
        )
    return None


# -- headless subcommands ------------------------------------------------------


def _subcommand_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", help=_VERBOSE_HELP)
    p = argparse.ArgumentParser(prog="weightlab")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser("inspect", parents=[common], help="list every tensor with shape, dtype and statistics")
    s.add_argument("path", type=Path, help=f"the model: {FORMATS_HELP}")
    s.add_argument("--json", action="store_true", help="print a JSON list of objects")
    s.add_argument(
        "--all",
        action="store_true",
        help="also list optimizer state and metrics variables (hidden by default: they are not model weights)",
    )
    s.add_argument("--tensor", metavar="NAME", help="only this tensor (read alone), with its histogram")
    s.add_argument("--bins", type=int, default=100, help="histogram bins with --tensor (default: 100)")
    s.set_defaults(func=cmd_inspect)

    s = sub.add_parser("compare", parents=[common], help="per-tensor change between two files of the same architecture")
    s.add_argument("path", type=Path, help="the first model (A)")
    s.add_argument("other", type=Path, help="the second model (B), of the same architecture")
    s.add_argument("--json", action="store_true", help="print a JSON list, one object per tensor")
    s.set_defaults(func=cmd_compare)

    s = sub.add_parser("export", parents=[common], help="write one tensor as .npy or .csv")
    s.add_argument("path", type=Path, help="the model (any format inspect reads)")
    s.add_argument("--tensor", metavar="NAME", required=True, help="the tensor's name as inspect lists it (conv2d/kernel)")
    s.add_argument("-o", "--output", type=Path, required=True, metavar="OUT", help="the file to write, .npy or .csv")
    s.add_argument("--recipe", type=Path, help="apply this recipe first")
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("eval", parents=[common], help="evaluate on a held-out set (imports TensorFlow)")
    s.add_argument("path", type=Path, help=f"the model: {FORMATS_HELP}")
    s.add_argument("--data", type=Path, required=True, help=".npz with arrays x and y (x alone: agreement only)")
    s.add_argument("--recipe", type=Path, help="apply this recipe and evaluate baseline and edited model")
    s.add_argument("--json", action="store_true", help="print the metrics as JSON (baseline and edited with --recipe)")
    s.add_argument("--trust", action="store_true", help="allow code in the file (Lambda layers): only for files you trust")
    s.add_argument(
        "--batch-size", type=int, default=None, help="samples per forward pass (default: chosen from memory)"
    )
    s.add_argument("--architecture", type=Path, help="for a checkpoint: the Keras model file of its architecture")
    s.add_argument("--signature", help="for a SavedModel: the signature (default: serving_default)")
    s.add_argument("--input", help="for a frozen graph: the input tensor (default: its placeholder)")
    s.add_argument("--output", help="the output to score: signature output key, graph tensor or Keras output")
    s.set_defaults(func=cmd_eval)

    from weightlab.core.catalogue import help_text

    s = sub.add_parser(
        "apply",
        parents=[common],
        help="apply a recipe and save the edited model",
        epilog=help_text(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("path", type=Path, help="the model (any format inspect reads); never changed")
    s.add_argument("recipe", type=Path, help="the recipe (.json, see docs/recipes.md)")
    s.add_argument("-o", "--output", type=Path, required=True, metavar="OUT",
                   help="the edited model to write, in the input's format")
    s.add_argument("--overwrite", action="store_true", help="allow -o to be the input file itself")
    s.set_defaults(func=cmd_apply)
    _analysis_parsers(sub, common)
    _training_parsers(sub, common)
    for name, parser in sub.choices.items():
        # `weightlab CMD --help` opens with what CMD does (argparse prints no help= there).
        parser.description = textwrap.fill(_DESCRIPTIONS.get(name, ""), 78) or None
    return p


#: The first paragraph of each subcommand's ``--help``.
_DESCRIPTIONS = {
    "inspect": "List every tensor of a model with its shape, dtype and statistics (min, max, mean, std, "
               "fraction of zeros), or one tensor with its histogram. Reads the weights only: no model code "
               "runs.",
    "compare": "Compare two files of the same architecture tensor by tensor: the relative L2 change, the "
               "fraction of values changed and the largest absolute difference.",
    "export": "Write one tensor's values to a .npy or .csv file.",
    "eval": "Evaluate a model on a held-out set (.npz with arrays x and y; x alone gives agreement only), "
            "optionally before and after a recipe's edits. Imports TensorFlow.",
    "apply": "Apply a recipe's edits to a model and save the edited copy in the input's format; the input "
             "file is never changed.",
    "sweep": "Measure held-out accuracy while one parameter of an edit varies over a range (the "
             "sensitivity of a tensor or layer to pruning, noise, scaling...). Imports TensorFlow.",
    "rank": "Rank a layer's neurons or filters by the held-out accuracy their ablation costs. "
            "Imports TensorFlow.",
    "plan": "Find the strongest value of an edit per target that keeps the held-out accuracy within a "
            "budget, and write the result as a recipe. Imports TensorFlow.",
    "finetune": "Fine-tune the (edited) model on a training set (.npz or image folder); weights pruned to zero "
                "stay at zero. "
                "Imports TensorFlow.",
    "prune-retrain": "Prune by magnitude in rounds (a threshold growing each round, or a sparsity per round), "
                     "each followed by a fine-tune with the pruning masks kept. Imports TensorFlow.",
}


def _open(path: Path):
    import weightlab

    session = weightlab.open(path)
    # A command replays a recipe once and never undoes: no past weights to keep
    # (a 100k-step recipe then runs in the memory of the model, not of its history).
    session.history_budget_bytes = 0
    return session


def cmd_inspect(args: argparse.Namespace) -> int:
    """``weightlab inspect PATH [--json]`` and ``--tensor NAME [--bins N]``."""
    from weightlab.core.stats import summarize, tensor_stats

    session = _open(args.path)
    if args.tensor:
        if args.bins < 1:
            raise WeightLabError(f"--bins must be at least 1; got {args.bins}")
        info = session.model.tensor(args.tensor)
        values = session.array(info.name)
        counts, edges, st = summarize(values, args.bins)  # = histogram() and tensor_stats(), fewer passes
        one = {
            "name": info.name,
            "key": info.key,
            "shape": list(info.shape),
            "dtype": info.dtype,
            **{k: _finite_or_none(v) for k, v in st.as_dict().items()},
            "counts": counts.tolist(),
            "edges": edges.tolist(),
        }
        if args.json:
            print(json.dumps(one))
        else:
            print(f"{info.name}  {'x'.join(map(str, info.shape))}  {info.dtype}")
            print("  ".join(f"{k} {_g(one[k])}" for k in ("min", "max", "mean", "std", "l1", "l2", "p1", "p99")))
            peak = max(counts.max(), 1)
            for c, lo, hi in zip(counts, edges[:-1], edges[1:]):
                print(f"[{lo:+.4g}, {hi:+.4g})  {c:>9}  {'#' * round(40 * c / peak)}")
        return 0
    from weightlab.core.model import auxiliary_layers

    hidden = set() if args.all else auxiliary_layers(session.model)
    shown = [info for info in session.model.tensors.values() if info.layer not in hidden]
    rows: list[dict[str, Any]] = []
    for info in shown:
        st = tensor_stats(session.array(info.name))
        rows.append(
            {
                "name": info.name,
                "layer": info.layer,
                "key": info.key,
                "shape": list(info.shape),
                "dtype": info.dtype,
                "params": info.size,
                "trainable": info.trainable,
                **{k: _finite_or_none(v) for k, v in st.as_dict().items() if k != "count"},
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    model = session.model
    layers = [layer for layer in model.layers if layer.name not in hidden]
    params = sum(r["params"] for r in rows)
    print(f"{model.path}  ({model.format}, {len(layers)} layers, {params:,} parameters)")
    # Keras 2.0-2.2 files store weights under TF scopes (conv2d_1_1/kernel:0): show where, beside the name.
    renamed = set(model.attrs.get("stored_under_other_names") or ())
    header = ("name", "shape", "dtype", "params", "min", "max", "mean", "std", "zeros") + (
        ("stored as",) if renamed else ()
    )
    table = [header] + [
        (
            r["name"],
            "x".join(map(str, r["shape"])) or "()",
            r["dtype"],
            f"{r['params']:,}",
            _g(r["min"]),
            _g(r["max"]),
            _g(r["mean"]),
            _g(r["std"]),
            f"{100 * r['zeros']:.1f}%" if r["zeros"] is not None else "-",
        )
        + ((r["key"] if r["layer"] in renamed else "",) if renamed else ())
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        cells = [c.ljust(w) if i < 3 or i >= 9 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))]
        print("  ".join(cells).rstrip())
    aux = [t for t in model.tensors.values() if t.layer in hidden]
    if aux:
        metrics = any(model.layer(t.layer).class_name == "(metrics)" for t in aux)
        state = any(model.layer(t.layer).class_name != "(metrics)" for t in aux)
        kinds = " and ".join(k for k, there in (("optimizer state", state), ("metrics variables", metrics)) if there)
        print(f"({len(aux)} tensor(s) of {kinds} not listed; --all lists them)")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """``weightlab eval PATH --data HELDOUT.npz [--recipe R] [--json]``.

    Evaluates the unedited model, then (with ``--recipe``) applies the recipe
    in the same engine session the window's worker uses (incremental:
    only the layers downstream of the earliest edit run again) and evaluates
    again. The JSON has the metrics of the last evaluation at top level,
    ``baseline`` and ``edited`` with a recipe, and ``timing`` with
    ``baseline_s`` and ``edited_s`` (seconds of each evaluation, the latter
    only with a recipe).
    """
    from weightlab.formats.tf_formats import evaluation_kind

    # A bad combination of options fails here, before TensorFlow is imported.
    evaluation_kind(args.path, architecture=args.architecture, signature=args.signature, input=args.input)
    edited = None
    if args.recipe:
        session = _open(args.path)
        try:
            session.apply_recipe(args.recipe)
            edited = session.edited_arrays()
        finally:
            session.model.close()
    from weightlab._tf.headless import open_session, run_errors

    with run_errors(args.path):  # a graph that fails at run time: one line naming the file
        engine = open_session(
            args.path,
            args.data,
            trust=args.trust,
            batch_size=args.batch_size,
            architecture=args.architecture,
            signature=args.signature,
            input=args.input,
            output=args.output,
        )
        base = engine.evaluate()
        after = engine.evaluate(edited) if edited is not None else None
    result: dict[str, Any] = _metrics_dict(base)
    timing = {"baseline_s": base.seconds}
    if after is not None:
        timing["edited_s"] = after.seconds
        result = {"baseline": _metrics_dict(base), "edited": _metrics_dict(after), **_metrics_dict(after)}
    result["timing"] = timing
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    if edited is not None and result["labels"]:
        b, a = result["baseline"], result["edited"]
        print(f"baseline  accuracy {100 * b['accuracy']:.2f} %  loss {b['loss']:.4f}  ({b['seconds']:.3f} s)")
        print(
            f"edited    accuracy {100 * a['accuracy']:.2f} %  loss {a['loss']:.4f}  "
            f"({100 * (a['accuracy'] - b['accuracy']):+.2f} pp; {a['seconds']:.3f} s, {a['mode']})"
        )
    elif result["labels"]:
        print(f"accuracy {100 * result['accuracy']:.2f} %  loss {result['loss']:.4f}")
    else:
        print("no labels (or several outputs): agreement with the unedited model only")
    if edited is not None and result["agreement"] is not None:
        print(f"agreement with the unedited model {100 * result['agreement']:.2f} %")
    print(f"{result['num_samples']} samples, {result['seconds']:.2f} s on {result['device']}")
    return 0


def cmd_apply(args: argparse.Namespace) -> int:
    """``weightlab apply PATH RECIPE -o OUT [--overwrite]``."""
    session = _open(args.path)
    session.apply_recipe(args.recipe)
    try:
        out = session.save(args.output, overwrite=args.overwrite)
    except WeightLabError as e:
        raise _cli_wording(e) from None
    edited = session.edited_names
    print(f"applied {session.position} edit(s) to {len(edited)} tensor(s); wrote {out}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """``weightlab compare A B [--json]``."""
    from weightlab.core.diff import compare_models

    a, b = _open(args.path), _open(args.other)
    diffs = compare_models(a.model, b.model)
    rows = [
        {
            "name": d.name,
            "relative_l2": _finite_or_none(d.relative_l2),
            "changed": d.changed,
            "fraction_changed": d.fraction_changed,
            "max_abs": d.max_abs,
        }
        for d in diffs
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(r["name"]) for r in rows) if rows else 4
    print(f"{'name'.ljust(width)}  {'rel. L2':>10}  {'changed':>9}  {'max |diff|':>10}")
    for r in rows:
        rel = "inf" if r["relative_l2"] is None else f"{r['relative_l2']:.4g}"
        print(f"{r['name'].ljust(width)}  {rel:>10}  {100 * r['fraction_changed']:>8.2f}%  {r['max_abs']:>10.4g}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """``weightlab export PATH --tensor NAME -o OUT``."""
    from weightlab.core.diff import export_tensor

    session = _open(args.path)
    if args.recipe:
        session.apply_recipe(args.recipe)
    out = export_tensor(session.array(session.model.tensor(args.tensor).name), args.output)
    print(f"wrote {out}")
    return 0


# -- sweeps, rankings and plans (issue 11) --------------------------------------------


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors can be one line (``one_line_errors``), as the command's other errors."""

    def __init__(self, *args: Any, one_line_errors: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.one_line_errors = one_line_errors

    def error(self, message: str) -> Any:
        if not self.one_line_errors:
            return super().error(message)
        _say(sys.stderr, f"weightlab: error: {message} (see {self.prog} --help)")
        raise SystemExit(EXIT_USER_ERROR)


#: Spec fields of :mod:`weightlab.core.sweeps` -> the flags that set them (error messages name the flag).
_FLAGS = {
    "op": "--op", "param": "--param", "targets": "--target", "values": "--values", "value_range": "--range",
    "adaptive": "--adaptive", "mode": "--each", "fixed": "--fixed", "budget_pp": "--budget", "metric": "--metric",
    "coupled": "--coupled", "layer": "--layer", "ablation": "--ablation", "batchnorm": "--ablation",
}  # fmt: skip


def _analysis_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    def model_options(s: argparse.ArgumentParser) -> None:
        s.add_argument("path", type=Path, help="the model (any format `weightlab eval` reads); never changed")
        s.add_argument("--data", type=Path, required=True, help=".npz with arrays x and y (x alone: agreement only)")
        s.add_argument("--trust", action="store_true", help="allow code in the file (Lambda layers): trusted files only")
        s.add_argument("--batch-size", type=int, default=None, help="samples per forward pass (default: from memory)")
        s.add_argument("--architecture", type=Path, help="for a checkpoint: the Keras model file of its structure")
        s.add_argument("--signature", help="for a SavedModel: the signature (default: serving_default)")
        s.add_argument("--input", help="for a frozen graph: the input tensor (default: its placeholder)")

    def sweep_options(s: argparse.ArgumentParser, plan: bool) -> None:
        s.add_argument("--op", required=True, help="the edit op (clip, prune_magnitude, add_noise, prune_neurons...)")
        s.add_argument("--param", required=True, help="its parameter to vary (clip: threshold, clips to [-t, t])")
        v = s.add_mutually_exclusive_group(required=True)
        v.add_argument("--values", metavar="V1,V2,...", help="the values, e.g. 0.5,0.2,0.1")
        v.add_argument("--range", metavar="START:STOP:STEP", help="start, start+step, ... up to stop (included)")
        v.add_argument(
            "--adaptive", nargs="?", const=True, metavar="LOW:HIGH",
            help="a coarse grid, then refined where the metric falls fastest (default bounds: the parameter's range)",
        )  # fmt: skip
        s.add_argument(
            "--target", action="append", metavar="GLOB",
            help="tensors/layers to edit: glob, name or group:ID (repeatable; default: */kernel, every kernel)",
        )  # fmt: skip
        if not plan:
            s.add_argument("--each", action="store_true", help="one curve per tensor/layer alone (default: together)")
        s.add_argument("--coupled", action="store_true", help="neuron ops: sweep coupled layers (Add...) as one")
        s.add_argument("--metric", choices=("accuracy", "agreement"), default="accuracy",
                       help="what is measured: accuracy, or agreement with the unedited model (no labels needed)")
        if plan:
            s.add_argument("--budget", type=float, required=True, metavar="PP", help="largest drop per target (pp)")
        else:
            s.add_argument("--budget", type=float, metavar="PP", help="stop a target once its drop exceeds PP (pp)")
        s.add_argument("--fixed", action="append", metavar="KEY=VALUE", help="another parameter of the op (JSON)")
        s.add_argument(
            "--workers", nargs="?", const="cores", metavar="N",
            help="measure in N local processes (no N: one per core; default: this process)",
        )  # fmt: skip
        s.add_argument("--ray", nargs="?", const="", metavar="ADDRESS", help="on a Ray cluster (none: a local Ray)")
        s.add_argument("--log", type=Path, metavar="FILE.jsonl", help="partial results; the same --log resumes")

    s = sub.add_parser(
        "sweep", parents=[common], one_line_errors=True,
        help="accuracy while one parameter of an edit varies (sensitivity; imports TensorFlow)",
    )  # fmt: skip
    model_options(s)
    sweep_options(s, plan=False)
    out = s.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the result as JSON")
    out.add_argument("--csv", type=Path, metavar="FILE", help="write one row per point")
    s.add_argument("--plot", type=Path, metavar="FILE.png|FILE.svg", help="draw the curves")
    s.set_defaults(func=cmd_sweep)

    s = sub.add_parser(
        "rank", parents=[common], one_line_errors=True,
        help="rank a layer's neurons/filters by the accuracy their ablation costs (imports TensorFlow)",
    )  # fmt: skip
    model_options(s)
    s.add_argument("--layer", required=True, help="a layer with a kernel (Dense, Conv...)")
    s.add_argument("--ablation", choices=("zero", "mean"), default="zero",
                   help="zero: the unit's kernel slice and bias set to 0; mean: its output replaced by its mean "
                   "over the held-out set")
    s.add_argument("--no-cumulative", action="store_true", help="skip the cumulative top-k/bottom-k curves")
    out = s.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the ranking as JSON")
    out.add_argument("--csv", type=Path, metavar="FILE", help="write one row per unit")
    s.add_argument("--plot", type=Path, metavar="FILE.png|FILE.svg", help="draw the drops as bars")
    s.set_defaults(func=cmd_rank)

    s = sub.add_parser(
        "plan", parents=[common], one_line_errors=True,
        help="the strongest value per target within a budget, as a recipe (imports TensorFlow)",
    )  # fmt: skip
    model_options(s)
    sweep_options(s, plan=True)
    s.add_argument("-o", "--output", type=Path, required=True, metavar="RECIPE.json", help="the recipe to write")
    s.add_argument("--json", action="store_true", help="print the plan as JSON")
    s.set_defaults(func=cmd_plan)


def _cli_wording(e: WeightLabError) -> WeightLabError:
    """``e`` with the Python API's argument names replaced by the command's flags (``--overwrite``)."""
    import copy

    text = e.message.replace("overwrite=True", "--overwrite")
    if text == e.message:
        return e
    out = copy.copy(e)
    out.message = text
    out.args = (text,)
    return out


def _flag_error(e: WeightLabError) -> WeightLabError:
    """A spec error named by its flag (``--range: ...``) rather than its field."""
    import re

    m = re.match(r"^(?:sweep|rank) spec: field '(\w+)': (.*)$", str(e), re.S)
    if m and m.group(1) in _FLAGS:
        return type(e)(f"{_FLAGS[m.group(1)]}: {m.group(2)}")
    return e


def _fixed(items: Sequence[str] | None) -> dict[str, Any]:
    """``--fixed KEY=VALUE`` pairs; VALUE as JSON (``3``, ``[0, 2]``, ``true``) or else as text."""
    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise WeightLabError(f"--fixed: expected KEY=VALUE, e.g. scope=global; got {item!r}")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        out[key.strip()] = value
    return out


def _same_path(a: Path, b: Path | None) -> bool:
    if b is None:
        return False
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _check_outputs(args: argparse.Namespace, outputs: Sequence[tuple[str, Path | None]]) -> None:
    """Refuse, before any work, outputs that would write over the inputs or cannot be written."""
    inputs = [("model file", args.path), ("held-out file", args.data)]
    for flag, out in outputs:
        if out is None:
            continue
        for what, given in inputs:
            if _same_path(out, given) or out.resolve() == Path(given).resolve():
                raise WeightLabError(f"{flag} {out}: refusing to write over the {what}")
        if out.is_dir():
            raise WeightLabError(f"{flag} {out}: is a folder; give a file name")
        if not out.parent.is_dir():
            raise WeightLabError(f"{flag} {out}: the folder {out.parent} does not exist")
        if flag == "--plot" and out.suffix.lower() not in (".png", ".svg"):
            raise WeightLabError(f"--plot {out}: expected a .png or .svg file name")


def _engine_options(args: argparse.Namespace) -> dict[str, Any]:
    from weightlab.formats.tf_formats import evaluation_kind

    if args.batch_size is not None and args.batch_size < 1:
        raise WeightLabError(f"--batch-size: must be at least 1; got {args.batch_size}")
    # A bad combination of format options fails here, before TensorFlow is imported.
    evaluation_kind(args.path, architecture=args.architecture, signature=args.signature, input=args.input)
    opts = {"architecture": args.architecture, "signature": args.signature, "input": args.input,
            "batch_size": args.batch_size}  # fmt: skip
    return {"trust": args.trust, **{k: v for k, v in opts.items() if v is not None}}


def _sweep_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of :func:`weightlab.sweep`/:func:`weightlab.plan` the flags give."""
    workers: int | None = 1
    if args.workers == "cores":
        workers = None  # one per core
    elif args.workers is not None:
        try:
            workers = int(args.workers)
        except ValueError:
            workers = 0
        if workers < 1:
            raise WeightLabError(f"--workers: expected a whole number >= 1 (or no number: one per core); got {args.workers}")
    kw: dict[str, Any] = {
        "op": args.op,
        "param": args.param,
        "values": args.values,
        "range": args.range,
        "adaptive": args.adaptive,
        "targets": args.target,
        "metric": args.metric,
        "fixed": _fixed(args.fixed),
        "coupled": args.coupled,
        "log": args.log,
    }
    if workers != 1:  # passed on only when given (the parallel runner's keywords)
        kw["workers"] = workers
    if args.ray is not None:
        kw["ray"] = args.ray
    return kw


class _CtrlC:
    """Ctrl+C (SIGINT) asks a running sweep to stop after the point it is measuring; a second one stops now.

    ``should_stop`` is the engine's polling hook. Installed only in the main
    thread (signal handlers cannot be set elsewhere); the previous handler is
    restored on exit.
    """

    def __init__(self) -> None:
        import threading

        self.pressed = threading.Event()
        self._old: Any = None

    def should_stop(self) -> bool:
        return self.pressed.is_set()

    def _handler(self, signum: int, frame: Any) -> None:
        if self.pressed.is_set():
            raise KeyboardInterrupt
        self.pressed.set()

    def __enter__(self) -> _CtrlC:
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        import signal

        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
            self._old = None


def _interruptible(run: Any, ctrl_c: _CtrlC) -> Any:
    """``run()``; None when Ctrl+C came before anything was measured (the engine raised its cancellation)."""
    from weightlab._tf.headless import EvaluationCancelled

    try:
        return run()
    except EvaluationCancelled:
        if ctrl_c.pressed.is_set():
            return None
        raise


def _write_text(path: Path, text: str, flag: str) -> None:
    from weightlab.core.atomic import atomic_path

    try:
        with atomic_path(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
    except OSError as e:
        raise WeightLabError(f"{flag} {path}: cannot write: {e.strerror or e}") from None


def _write_plot(result: Any, path: Path) -> None:
    """Draw with the window's plot (Qt imported only here, offscreen when there is no window)."""
    from weightlab.gui.sweep_plot import save_plot

    try:
        save_plot(result, path)
    except OSError as e:
        raise WeightLabError(f"--plot {path}: cannot write: {e.strerror or e}") from None


def _save(result: Any, args: argparse.Namespace) -> None:
    if args.plot is not None:
        _write_plot(result, args.plot)
    if args.csv is not None:
        _write_text(args.csv, result.to_csv(), "--csv")


def _interrupted(args: argparse.Namespace, what: str) -> int:
    _say(getattr(args, "stderr", sys.stderr), f"weightlab: interrupted: {what}")
    return EXIT_INTERRUPTED


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.2f} %"


def _ci(ci: Sequence[float] | None) -> str:
    return "" if ci is None else f"[{100 * ci[0]:.2f}, {100 * ci[1]:.2f}]"


def _pp(v: float | None) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{v:+.2f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> None:
    """Print columns: the first ``left`` left-aligned, the rest right-aligned."""
    table = [list(header), *map(list, rows)]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for r in table:
        cells = [c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))]
        print("  ".join(cells).rstrip())


def _print_sweep(result: Any, args: argparse.Namespace) -> None:
    from weightlab.core.sweeps import drop_pp

    spec, base = result.spec, result.baseline
    print(f"{spec.label} of {args.path}, {base.num_samples} held-out samples")
    print(f"baseline: accuracy {_pct(base.accuracy)} {_ci(base.accuracy_ci)}  loss {_g(base.loss)}")
    ref = base.metric(spec.metric)
    rows = [
        (
            p.target,
            f"{p.value:g}",
            f"{_pct(p.accuracy)} {_ci(p.accuracy_ci)}".rstrip(),
            _pp(drop_pp(ref, p.metric(spec.metric))),
            _pct(p.agreement),
        )
        for p in sorted(result.points, key=lambda p: result.targets().index(p.target))
    ]
    drop = "drop pp" if spec.metric == "accuracy" else "drop pp (agreement)"
    _table(("target", "value", "accuracy [95 % interval]", drop, "agreement"), rows, left=1)
    for target in result.targets():
        note = result.notes.get(target)
        if note:
            print(f"note: {target}: {note}")
    for target, value in result.stopped.items():
        print(f"stopped: {target} after {value:g} (its drop passed the {spec.budget_pp:g} pp budget)")
    if not result.complete:
        resume = f"; resume with --log {args.log}" if args.log else ""
        print(f"incomplete: {len(result.points)} point(s) measured{resume}")


def cmd_sweep(args: argparse.Namespace) -> int:
    """``weightlab sweep PATH --data HELDOUT.npz --op OP --param NAME (--values|--range|--adaptive) ...``.

    Prints the baseline and every point (``--json``: :meth:`SweepResult.to_json`;
    ``target`` is the glob in together mode); ``--csv`` and ``--plot`` write
    files. Ctrl+C stops after the current point: the points so far are
    printed and written, status 130 (with ``--log``, a re-run resumes).
    """
    import weightlab

    _check_outputs(args, [("--csv", args.csv), ("--plot", args.plot), ("--log", args.log)])
    kw = _sweep_arguments(args)
    options = _engine_options(args)
    with _CtrlC() as ctrl_c:
        try:
            result = _interruptible(
                lambda: weightlab.sweep(
                    args.path, args.data, mode="each" if args.each else "together", budget_pp=args.budget,
                    should_stop=ctrl_c.should_stop, **kw, **options,
                ), ctrl_c,
            )  # fmt: skip
        except WeightLabError as e:
            raise _flag_error(e) from None
    if result is None:
        return _interrupted(args, "no point was measured")
    _save(result, args)
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        _print_sweep(result, args)
    if ctrl_c.pressed.is_set():
        resume = f"; the same command with --log {args.log} resumes" if args.log else ""
        return _interrupted(args, f"stopped after {len(result.points)} point(s){resume}")
    return 0


def cmd_rank(args: argparse.Namespace) -> int:
    """``weightlab rank PATH --data HELDOUT.npz --layer NAME [--ablation zero|mean] ...``.

    Prints the units largest drop first (``--json``: :meth:`RankResult.to_json`,
    ``drop`` = baseline accuracy - ablated accuracy, fractions); units whose
    removal raises accuracy are flagged. Ctrl+C: the units so far, status 130.
    """
    import weightlab

    _check_outputs(args, [("--csv", args.csv), ("--plot", args.plot)])
    options = _engine_options(args)
    with _CtrlC() as ctrl_c:
        try:
            result = _interruptible(
                lambda: weightlab.rank(
                    args.path, args.data, layer=args.layer, ablation=args.ablation,
                    cumulative=not args.no_cumulative, should_stop=ctrl_c.should_stop, **options,
                ), ctrl_c,
            )  # fmt: skip
        except WeightLabError as e:
            raise _flag_error(e) from None
    if result is None:
        return _interrupted(args, "no unit was measured")
    _save(result, args)
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        base = result.baseline
        print(f"{result.spec.label} of {args.path}, {base.num_samples} held-out samples ({result.method})")
        print(f"baseline: accuracy {_pct(base.accuracy)} {_ci(base.accuracy_ci)}  loss {_g(base.loss)}")
        rows = [
            (
                str(u.index),
                f"{_pct(u.point.accuracy)} {_ci(u.point.accuracy_ci)}".rstrip(),
                _pp(None if u.drop is None else 100 * u.drop),
                "-" if u.loss_change is None else f"{u.loss_change:+.4g}",
                "removal raises accuracy" if u.raises_accuracy else "",
            )
            for u in result.units
        ]
        _table(("unit", "accuracy [95 % interval]", "drop pp", "loss change", ""), rows, left=1)
        raising = result.raising()
        if raising:
            print(f"{len(raising)} unit(s) whose removal raises accuracy: {', '.join(map(str, raising))}")
        if not result.complete:
            print(f"incomplete: {len(result.units)} unit(s) measured")
    if ctrl_c.pressed.is_set():
        return _interrupted(args, f"stopped after {len(result.units)} unit(s)")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    """``weightlab plan PATH --data HELDOUT.npz --op OP --param NAME --budget PP -o RECIPE.json``.

    Sweeps each target alone, picks per target the strongest value within
    the budget, evaluates the composed recipe once and writes it (atomic;
    replays with ``weightlab apply``). Prints per target the chosen value and
    its single drop, their sum and the real joint drop. Ctrl+C: the plan of
    the points so far is printed, not evaluated, no recipe written; status 130.
    """
    import weightlab
    from weightlab.core.recipe import save_recipe

    if not (math.isfinite(args.budget) and args.budget >= 0):
        raise WeightLabError(f"--budget: expected a finite number of percentage points >= 0; got {args.budget:g}")
    _check_outputs(args, [("-o", args.output), ("--log", args.log)])
    kw = _sweep_arguments(args)
    options = _engine_options(args)
    with _CtrlC() as ctrl_c:
        try:
            chosen = _interruptible(
                lambda: weightlab.plan(
                    args.path, args.data, budget_pp=args.budget, should_stop=ctrl_c.should_stop, **kw, **options
                ), ctrl_c,
            )  # fmt: skip
        except WeightLabError as e:
            raise _flag_error(e) from None
    if chosen is None:
        return _interrupted(args, "no point was measured; no recipe written")
    written = None
    if chosen.joint is not None:
        session = _open(args.path)
        try:
            recipe = chosen.recipe(session.model, session, source_name=Path(args.path).name)
        finally:
            session.model.close()
        try:
            save_recipe(recipe, args.output)
        except OSError as e:
            raise WeightLabError(f"-o {args.output}: cannot write: {e.strerror or e}") from None
        written = args.output
    data = {**chosen.to_json(), "recipe": None if written is None else str(written)}
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        unit = "pp" if chosen.metric == "accuracy" else "pp (agreement)"
        what = f"{chosen.spec.op}.{chosen.spec.param}"
        print(f"plan {what} within {chosen.budget_pp:g} {unit} per target, of {args.path}")
        rows = [
            (
                c.target,
                "unedited" if c.value is None else f"{c.value:.6g}" + (" (interpolated)" if c.interpolated else ""),
                _pp(c.single_drop_pp),
            )
            for c in chosen.choices
        ]
        _table(("target", "value", "single drop pp"), rows, left=2)
        print(f"sum of single drops: {chosen.sum_single_drops_pp:+.2f} pp")
        if chosen.joint is not None:
            j = chosen.joint
            print(
                f"joint drop (all together, measured): {_pp(chosen.joint_drop_pp)} pp "
                f"(interaction {_pp(chosen.interaction_pp)} pp); accuracy {_pct(j.accuracy)} {_ci(j.accuracy_ci)}"
            )
        print(f"wrote {written}" if written is not None else "not evaluated (stopped early): no recipe written")
    if ctrl_c.pressed.is_set():
        what = "the plan was not evaluated" if written is None else "stopped after the joint evaluation"
        return _interrupted(args, what)
    return 0


# -- fine-tuning and prune-and-retrain (issue 12) -------------------------------------------

_TRAINING_EPILOG = """\
-o OUT is the trained model, in the input's format (written atomically, never over an
input). Beside it, OUT's recipe (OUT without its suffix + .recipe.json): the recipe's
edits, then the training as one "trained" step whose arrays are in a sidecar .npz
(checked by hash), so `weightlab apply MODEL OUT.recipe.json -o ...` replays it and the
window shows it as one history step (--no-recipe: not written; not with --new-head,
whose model has another structure).

Schedules (--schedule) are KIND:KEY=VALUE,... with Keras' names: exponential_decay,
piecewise_constant_decay (lists with '/': boundaries=100/200,values=0.1/0.01/0.001),
cosine_decay, polynomial_decay. --pruning is polynomial_decay:initial_sparsity=0.3,
final_sparsity=0.7,begin_step=0,end_step=1000 or constant_sparsity:target_sparsity=0.5
(TensorFlow Model Optimization's schedules; the result carries no wrappers).
Ctrl+C stops after the current batch, keeps the best (--on-cancel) epoch's weights,
writes them and exits with status 130. See docs/training.md.
"""

#: Spec fields of :mod:`weightlab.core.training` -> the flags that set them (error messages name the flag).
_TRAINING_FLAGS = {
    "train": "--train", "val": "--val", "val_split": "--val-split", "heldout": "--data", "epochs": "--epochs",
    "batch_size": "--batch-size", "lr": "--lr", "optimizer": "--optimizer", "momentum": "--momentum",
    "schedule": "--schedule", "keep_masks": "--keep-masks", "freeze": "--freeze", "train_last": "--train-last",
    "regularizers": "--l1/--l2", "constraints": "--constraint", "clip_weights": "--clip-weights",
    "early_stopping": "--early-stopping", "reduce_lr": "--reduce-lr", "pruning": "--pruning",
    "new_head": "--new-head", "output": "-o", "seed": "--seed", "on_cancel": "--on-cancel", "rounds": "--rounds",
    "threshold": "--threshold", "factor": "--factor", "sparsities": "--sparsity", "target": "--target",
    "scope": "--scope", "budget_pp": "--budget",
}  # fmt: skip


def _training_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    from weightlab.core.training import MONITORS, OPTIMIZERS

    def options(s: argparse.ArgumentParser) -> None:
        s.add_argument("path", type=Path, help="the model: .keras, or .h5 with its architecture; never changed")
        s.add_argument(
            "--train", type=Path, required=True, metavar="TRAIN.npz",
            help="training data: .npz with arrays x and y (class indices), or an image folder (a subfolder per class)",
        )  # fmt: skip
        v = s.add_mutually_exclusive_group(required=True)
        v.add_argument("--val", type=Path, metavar="VAL.npz", help="validation data (.npz or image folder)")
        v.add_argument("--val-split", type=float, metavar="F", help="hold back the last fraction F of TRAIN")
        s.add_argument("--epochs", type=int, required=True, metavar="N", help="epochs (per round for prune-retrain)")
        s.add_argument(
            "--data", type=Path, metavar="HELDOUT.npz", help="held-out set: accuracy after each epoch and at the end"
        )
        s.add_argument("--recipe", type=Path, metavar="R.json", help="apply this recipe first (training starts there)")
        s.add_argument("--batch-size", type=int, default=32, metavar="B", help="samples per step (default: 32)")
        s.add_argument("--lr", type=float, metavar="LR", help="learning rate (default: the compile config's, else 0.001)")
        s.add_argument("--optimizer", choices=OPTIMIZERS, default="auto",
                       help="default auto: the compile config's, else adam")  # fmt: skip
        s.add_argument("--momentum", type=float, default=0.9, help="SGD's momentum (default: 0.9)")
        s.add_argument("--freeze", action="append", metavar="GLOB", help="layers not trained (repeatable)")
        s.add_argument("--train-last", type=int, metavar="N", help="freeze all but the last N layers with weights")
        s.add_argument("--seed", type=int, default=0, metavar="S", help="seed (deterministic on CPU; default: 0)")
        s.add_argument(
            "--gpus", type=int, metavar="N",
            help="0: train on the CPU; 1: on one GPU; N >= 2: on the first N GPUs with "
            "tf.distribute.MirroredStrategy (default: TensorFlow's placement, the first GPU when there is one)",
        )  # fmt: skip
        s.add_argument("--trust", action="store_true", help="allow code in the file (Lambda layers): trusted files only")
        s.add_argument("-o", "--output", type=Path, required=True, metavar="OUT", help="the trained model to write")
        s.add_argument("--no-recipe", action="store_true", help="do not write OUT's recipe and its sidecar")
        s.add_argument("--json", action="store_true", help="print the result as JSON")

    s = sub.add_parser(
        "finetune", parents=[common], one_line_errors=True, epilog=_TRAINING_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="fine-tune the (edited) model; pruned weights stay at zero (imports TensorFlow)",
    )  # fmt: skip
    options(s)
    s.add_argument("--schedule", metavar="SPEC", help="learning-rate schedule, e.g. cosine_decay:decay_steps=1000")
    s.add_argument("--keep-masks", action=argparse.BooleanOptionalAction, default=True,
                   help="weights zeroed by the recipe's edits stay exactly 0 (default: kept)")  # fmt: skip
    s.add_argument("--l1", type=float, default=0.0, metavar="F", help="L1 kernel regularizer factor")
    s.add_argument("--l2", type=float, default=0.0, metavar="F", help="L2 kernel regularizer factor")
    s.add_argument("--regularize", metavar="GLOB", default="*", help="layers --l1/--l2 apply to (default: all)")
    s.add_argument(
        "--constraint", action="append", metavar="KIND[:K=V,...][@GLOB]",
        help="after every update: max_norm:max_value=2, non_neg, unit_norm, min_max_norm:..., clip:value=0.5",
    )  # fmt: skip
    s.add_argument("--clip-weights", type=float, metavar="C", help="clip every kernel to [-C, C] after each epoch")
    s.add_argument("--early-stopping", type=int, metavar="PATIENCE", help="stop after PATIENCE epochs without gain")
    s.add_argument("--monitor", choices=MONITORS, default="val_loss", help="early stopping's quantity (default: val_loss)")
    s.add_argument("--min-delta", type=float, default=0.0, help="early stopping: smallest change counted as a gain")
    s.add_argument("--start-from-epoch", type=int, default=0, help="early stopping: epochs before it watches")
    s.add_argument("--restore-best", action=argparse.BooleanOptionalAction, default=True,
                   help="early stopping: keep the best epoch's weights, also without stopping (default: yes)")  # fmt: skip
    s.add_argument("--reduce-lr", type=int, metavar="PATIENCE", help="halve the rate after PATIENCE epochs without gain")
    s.add_argument("--pruning", metavar="SPEC", help="gradual magnitude pruning while training (see below)")
    s.add_argument("--pruning-layers", metavar="GLOB", default="*", help="layers pruned by --pruning (default: all)")
    s.add_argument("--pruning-scope", choices=("layer", "global"), default="layer",
                   help="--pruning ranks weights per layer or over all pruned layers together")
    s.add_argument("--new-head", type=int, metavar="K", help="replace the output layer by a fresh Dense(K); OUT is .keras")
    s.add_argument("--on-cancel", choices=("best", "last"), default="best", help="weights kept on Ctrl+C")
    s.set_defaults(func=cmd_finetune)

    s = sub.add_parser(
        "prune-retrain", parents=[common], one_line_errors=True, epilog=_TRAINING_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="rounds of magnitude pruning, each followed by a fine-tune with masks kept (imports TensorFlow)",
    )  # fmt: skip
    options(s)
    s.add_argument("--rounds", type=int, required=True, metavar="R",
                   help="rounds of pruning, each followed by --epochs of fine-tuning")
    how = s.add_mutually_exclusive_group(required=True)
    how.add_argument("--threshold", type=float, metavar="T", help="round 1 prunes |w| < T, then T x FACTOR each round")
    how.add_argument("--sparsity", metavar="S1,S2,...", help="or a target sparsity per round")
    s.add_argument("--factor", type=float, metavar="F", help="the threshold's factor per round (default: 0.8)")
    s.add_argument("--target", default="*/kernel", metavar="GLOB", help="tensors pruned (default: */kernel)")
    s.add_argument("--scope", choices=("tensor", "global"), default="tensor", help="rank per tensor or globally")
    s.add_argument("--budget", type=float, metavar="PP",
                   help="stop at a round more than PP points below the unpruned accuracy and keep the round "
                        "before it (round 1: nothing is written, exit status 3; needs --data)")  # fmt: skip
    s.set_defaults(func=cmd_prune_retrain)


def _training_error(e: WeightLabError) -> WeightLabError:
    """A spec error named by its flag (``--val-split: ...``) rather than its field."""
    import re

    text = str(e)
    m = re.match(r"^(?:prune_retrain spec: )?(?:finetune|prune_retrain) spec: field '(\w+)': (.*)$", text, re.S)
    if m and m.group(1) in _TRAINING_FLAGS:
        return type(e)(f"{_TRAINING_FLAGS[m.group(1)]}: {m.group(2)}")
    m = re.match(r"^(schedule|pruning|constraint|sparsities|early_stopping|reduce_lr): (.*)$", text, re.S)
    if m:  # weightlab.training's argument errors
        flag = {"constraint": "constraints", "sparsities": "sparsities"}.get(m.group(1), m.group(1))
        return type(e)(f"{_TRAINING_FLAGS[flag]}: {m.group(2)}")
    return e


def _check_training_outputs(args: argparse.Namespace) -> None:
    """Refuse, before any work, a ``-o`` (or the recipe beside it) over an input, in a missing folder, or in
    another format than the model's (a new-head model: ``.keras``)."""
    from weightlab.training import recipe_path

    out: Path = args.output
    outputs = [out]
    if not args.no_recipe and getattr(args, "new_head", None) is None:
        outputs.append(recipe_path(out))
    inputs = [("model file", args.path), ("training data", args.train), ("validation data", args.val),
              ("held-out file", args.data), ("recipe", args.recipe)]  # fmt: skip
    for target in outputs:
        for what, given in inputs:
            if given is not None and (_same_path(target, given) or target.resolve() == Path(given).resolve()):
                raise WeightLabError(f"-o {out}: refusing to write over the {what} ({given})")
    if out.is_dir():
        raise WeightLabError(f"-o {out}: is a folder; give a file name")
    if not out.parent.is_dir():
        raise WeightLabError(f"-o {out}: the folder {out.parent} does not exist")
    if getattr(args, "new_head", None) is not None:
        want, why = ".keras", "a new-head model is saved as .keras"
    else:
        want, why = Path(args.path).suffix.lower(), "the trained model is written in the input's format"
    if want in (".keras", ".h5") and out.suffix.lower() != want:
        raise WeightLabError(f"-o {out}: expected a {want} file name ({why})")


def _training_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of :func:`weightlab.training.finetune_spec` both commands share."""
    return {
        "val": args.val, "val_split": args.val_split, "data": args.data, "epochs": args.epochs,
        "batch_size": args.batch_size, "lr": args.lr, "optimizer": args.optimizer, "momentum": args.momentum,
        "freeze": args.freeze, "train_last": args.train_last, "seed": args.seed,
    }  # fmt: skip


class _TrainingProgress:
    """Per-batch and per-epoch progress on stderr, only when it is a terminal.

    Called as the engine's ``on_progress(fraction, message, partial)`` with the
    job's partial dicts (:mod:`weightlab.core.training`): batches overwrite one
    line, epochs and rounds each leave a line.
    """

    def __init__(self, err: Any, epochs: int) -> None:
        try:
            self.on = bool(err.isatty())
        except (AttributeError, OSError, ValueError):
            self.on = False
        self.err, self.epochs = err, epochs

    def __call__(self, fraction: float | None, message: str, partial: Any) -> None:
        if not self.on or not isinstance(partial, Mapping):
            return
        kind = partial.get("type")
        where = f"round {partial['round']}, " if kind != "round" and partial.get("round") else ""
        if kind == "batch":
            line = (f"{where}epoch {partial.get('epoch')}/{self.epochs}  batch {partial.get('batch')}/"
                    f"{partial.get('batches')}  loss {_loss4(partial.get('loss'))}")  # fmt: skip
            self._write("\r" + line.ljust(72))
        elif kind == "epoch":
            eta = partial.get("eta_s")
            line = (f"{where}epoch {partial.get('epoch')}/{self.epochs}  loss {_loss4(partial.get('loss'))}  "
                    f"val_loss {_loss4(partial.get('val_loss'))}  val_accuracy {_pct(partial.get('val_accuracy'))}"
                    + ("" if eta is None else f"  ETA {eta:.0f} s"))  # fmt: skip
            self._write("\r" + line.ljust(72) + "\n")
        elif kind == "round":
            what = "baseline" if partial.get("round") == 0 else f"round {partial.get('round')}"
            self._write(f"\r{what}: sparsity {_pct(partial.get('sparsity'))}  "
                        f"held-out accuracy {_pct(partial.get('accuracy'))}\n")  # fmt: skip
        elif kind == "sparsity":
            self._write(f"\r{where}step {partial.get('step')}: pruned to sparsity {_pct(partial.get('sparsity'))}"
                        .ljust(72))  # fmt: skip

    def _write(self, text: str) -> None:
        try:
            self.err.write(text)
            self.err.flush()
        except (OSError, ValueError):
            self.on = False


def _loss4(v: float | None) -> str:
    """A loss with 4 decimals (``0.1120``), so that a column of them lines up; ``-`` when not measured."""
    return "-" if v is None or not math.isfinite(v) else f"{v:.4f}"


def _column(values: Sequence[float | None], digits: int = 3) -> list[str]:
    """Positive numbers of very different sizes (learning rates, thresholds) printed alike down a column.

    Fixed notation with one number of decimals for the column: the fewest
    that show every value exactly, at most ``digits`` significant digits
    (``0.001``; ``0.00100``, ``0.00081``), or, when that needs more than 6
    decimals, scientific notation for every value (``1.00e-07``); ``-`` for None.
    """

    def needed(v: float) -> int:
        most = digits - 1 - math.floor(math.log10(v))
        return next((d for d in range(max(most, 0)) if abs(round(v, d) - v) <= 1e-6 * v), most)  # float32

    finite = [abs(v) for v in values if v is not None and math.isfinite(v) and v != 0]
    decimals = max((needed(v) for v in finite), default=0)
    if decimals > 6:
        return ["-" if v is None else f"{v:.{digits - 1}e}" for v in values]
    return ["-" if v is None else f"{v:.{max(decimals, 0)}f}" for v in values]


def _print_history(result: Any) -> None:
    lrs = _column([r.lr for r in result.history])
    rows = [
        (
            str(r.epoch), _loss4(r.loss), _pct(r.accuracy), _loss4(r.val_loss), _pct(r.val_accuracy),
            _pct(r.heldout_accuracy), lr, f"{r.seconds:.2f}",
        )
        for r, lr in zip(result.history, lrs)
    ]  # fmt: skip
    _table(("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "held-out", "lr", "seconds"), rows, left=1)


def _print_savings(session: Any, args: argparse.Namespace) -> None:
    """The "what it bought" table: sparsity, gzip-compressed size and inference time, stored model -> trained."""
    from weightlab._tf.headless import inference_seconds
    from weightlab.core.savings import savings
    from weightlab.formats import save_model

    model, trained = session.model, session.edited_arrays()
    report = savings(model, None, trained, saver=save_model)
    print(f"what it bought ({Path(model.path).name} as stored -> trained):")
    print(report.table())
    if args.data is not None:
        t0 = inference_seconds(model.path, args.data, None, trust=args.trust)
        t1 = inference_seconds(model.path, args.data, trained, trust=args.trust)
        print(f"inference on {args.data.name}: {1000 * t0:.1f} ms -> {1000 * t1:.1f} ms per pass (median of 5)")


def _run_training(args: argparse.Namespace, kind: str) -> int:
    from weightlab import training

    _check_training_outputs(args)
    if args.gpus is not None and args.gpus < 0:
        raise WeightLabError(f"--gpus: expected a number of GPUs >= 0; got {args.gpus}")
    try:
        if kind == "finetune":
            spec_options = {
                **_training_options(args), "schedule": args.schedule, "keep_masks": args.keep_masks,
                "l1": args.l1, "l2": args.l2, "regularize": args.regularize, "constraints": args.constraint or (),
                "clip_weights": args.clip_weights, "early_stopping": args.early_stopping, "monitor": args.monitor,
                "min_delta": args.min_delta, "start_from_epoch": args.start_from_epoch,
                "restore_best_weights": args.restore_best, "reduce_lr": args.reduce_lr, "pruning": args.pruning,
                "pruning_layers": args.pruning_layers, "pruning_scope": args.pruning_scope,
                "new_head": args.new_head, "on_cancel": args.on_cancel,
            }  # fmt: skip
            if args.new_head is not None:
                spec_options["output"] = args.output
            spec = training.finetune_spec(args.train, **spec_options)
            epochs = spec.epochs
        else:
            if args.factor is not None and args.threshold is None:
                raise WeightLabError("--factor: goes with --threshold (each round multiplies it); not with --sparsity")
            if args.budget is not None and args.data is None:
                raise WeightLabError("--budget: needs --data HELDOUT.npz (the accuracy it is measured on)")
            spec = training.prune_retrain_spec(
                args.train, rounds=args.rounds, threshold=args.threshold,
                factor=0.8 if args.factor is None else args.factor, sparsities=args.sparsity, target=args.target,
                scope=args.scope, budget_pp=args.budget, **_training_options(args),
            )  # fmt: skip
            epochs = args.epochs
    except WeightLabError as e:
        raise _training_error(e) from None
    session = training.open_model(args.path, args.recipe)
    session.history_budget_bytes = 0
    try:
        training.check_training(session, spec)
        engine: dict[str, Any] = {"trust": args.trust, "gpus": args.gpus}
        progress = _TrainingProgress(getattr(args, "stderr", sys.stderr), epochs)
        from weightlab._tf import headless

        run = headless.finetune if kind == "finetune" else headless.prune_retrain
        with _CtrlC() as ctrl_c, headless.run_errors(args.path):
            result = _interruptible(
                lambda: run(args.path, spec, session.edited_arrays() or None, on_progress=progress,
                            should_stop=ctrl_c.should_stop, **engine), ctrl_c,
            )  # fmt: skip
        if result is None or not (result.history if kind == "finetune" else result.rounds):
            return _interrupted(args, "stopped before anything was trained; nothing written")
        if kind == "prune_retrain" and result.kept_round == 0 and not ctrl_c.pressed.is_set():
            # round 1 already fell past the budget: the rounds are shown, no model is written
            if args.json:
                print(json.dumps(result.to_json(), indent=2))
            else:
                _print_result(result, kind, args)
            _say(getattr(args, "stderr", sys.stderr), f"weightlab: nothing written to {args.output}: {result.stopped}")
            return EXIT_NOTHING_KEPT
        written: list[Path] = []
        if kind == "finetune" and args.new_head is not None:
            written = [Path(result.saved)] if result.saved else []
        else:
            out = training.write_outputs(session, result.arrays, result.label, args.output, spec=spec.to_dict(),
                                         recipe=not args.no_recipe)  # fmt: skip
            written = [out.model] + ([out.recipe] if out.recipe is not None else [])
        if args.json:
            print(json.dumps(result.to_json(), indent=2))
        else:
            _print_result(result, kind, args)
            if kind != "finetune" or args.new_head is None:
                _print_savings(session, args)
            for path in written:
                print(f"wrote {path}")
    finally:
        session.model.close()
    if ctrl_c.pressed.is_set():
        kept = "best" if getattr(result, "kept", "") == "best" else "last"
        return _interrupted(args, f"stopped early; wrote the {kept} epoch's weights")
    return 0


def _print_result(result: Any, kind: str, args: argparse.Namespace) -> None:
    if kind == "finetune":
        print(f"{result.label}: {args.path} on {result.device}, {result.seconds:.1f} s")
        _print_history(result)
        if result.best_epoch is not None:
            why = "stopped early" if result.stopped_early else ("cancelled" if result.cancelled else "best")
            print(f"kept epoch {result.best_epoch} ({why}); {result.masked_entries:,} masked entries kept at 0")
        elif result.masked_entries:
            print(f"{result.masked_entries:,} masked entries kept at 0")
        if result.final is not None:
            print(f"held-out: accuracy {_pct(result.final.get('accuracy'))}  loss {_loss4(result.final.get('loss'))}")
        return
    print(f"{result.label}: {args.path}")
    if result.baseline is not None:
        print(f"baseline (unpruned): accuracy {_pct(result.baseline.get('accuracy'))}  "
              f"loss {_loss4(result.baseline.get('loss'))}")  # fmt: skip
    thresholds = _column([r.threshold for r in result.rounds])
    rows = [(str(r.round), t, _pct(r.sparsity), _pct(r.accuracy), _loss4(r.loss), "yes" if r.kept else "no")
            for r, t in zip(result.rounds, thresholds)]  # fmt: skip
    _table(("round", "threshold", "sparsity", "held-out accuracy", "loss", "kept"), rows, left=1)
    if result.stopped:
        print(f"stopped: {result.stopped}")


def cmd_finetune(args: argparse.Namespace) -> int:
    """``weightlab finetune PATH --train TRAIN.npz (--val VAL.npz | --val-split F) --epochs N ... -o OUT``.

    Trains the model (with ``--recipe``'s edits; entries they zeroed stay 0
    unless ``--no-keep-masks``), writes the trained model and its recipe,
    prints a per-epoch table and what it bought (sparsity, gzip-compressed
    size and inference time before and after); ``--json``:
    :meth:`FinetuneResult.to_json` (``final`` on ``--data``).
    """
    return _run_training(args, "finetune")


def cmd_prune_retrain(args: argparse.Namespace) -> int:
    """``weightlab prune-retrain PATH --train TRAIN.npz ... --rounds R (--threshold T --factor F | --sparsity ...)``.

    Each round prunes by magnitude, then fine-tunes ``--epochs`` epochs with
    masks kept; prints sparsity and held-out accuracy per round
    (``--json``: :meth:`PruneRetrainResult.to_json`).
    """
    return _run_training(args, "prune_retrain")


def _metrics_dict(m: Any) -> dict[str, Any]:
    return {
        "accuracy": _finite_or_none(m.accuracy),
        "loss": _finite_or_none(m.loss),
        "per_class": [_finite_or_none(v) for v in m.per_class],
        "num_samples": m.num_samples,
        "seconds": m.seconds,
        "device": m.device,
        "mode": m.mode,
        "cut": m.cut,
        "layers_run": m.layers_run,
        "layers_total": m.layers_total,
        "batch_size": m.batch_size,
        "labels": m.labels,
        "agreement": m.agreement,
        "mean_abs_change": m.mean_abs_change,
        "outputs": m.outputs,
    }


def _finite_or_none(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _g(v: float | None) -> str:
    return "-" if v is None else f"{v:.4g}"


if __name__ == "__main__":
    raise SystemExit(main())
