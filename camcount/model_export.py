"""`camcount model export`: a YOLO .pt checkpoint or model yaml to the ONNX file OnnxDetector
serves, offline.

A yaml ("yolov8n.yaml", one of ultralytics' bundled configs) builds a model with random
weights: useless for counting, but with the real compute, so it serves throughput tests where
no weights can be downloaded. Needs the `ultralytics` extra (torch); importing this module does
not.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHECKPOINT_SUFFIXES = frozenset({".pt"})
YAML_SUFFIXES = frozenset({".yaml", ".yml"})
STRIDE = 32
MIN_OPSET = 9


class ExportError(RuntimeError):
    """The export cannot be done; the message says why and what to do."""


def export_onnx(
    source: Path | str,
    out: Path,
    *,
    imgsz: int = 640,
    dynamic: bool = True,
    half: bool = False,
    opset: int | None = None,
) -> Path:
    """Export `source` to `out` (written atomically) and return `out`.

    The input is imgsz x imgsz; with `dynamic` only its batch dimension is dynamic: ultralytics
    also frees height and width, which would make OnnxDetector run it at its own `input_size`
    rather than the size it was exported for, so both are pinned back to imgsz. An 80-class
    model whose names are ultralytics' placeholders ('0'..'79', any yaml) gets the COCO names,
    so class filters such as "person" work on throughput-test models too.
    """
    out = Path(out)
    if imgsz < STRIDE or imgsz % STRIDE:
        raise ExportError(f"--imgsz must be a positive multiple of {STRIDE}, got {imgsz}")
    if out.suffix.lower() != ".onnx":
        raise ExportError(f"--out must name an .onnx file, got {out}")
    if opset is not None and opset < MIN_OPSET:
        raise ExportError(f"--opset must be at least {MIN_OPSET} (YOLO's nearest-neighbour "
                          f"upsampling), got {opset}")
    spec = _model_spec(source)

    from workers.ultralytics_detector import import_ultralytics

    try:
        ultralytics = import_ultralytics()
    except ImportError as exc:
        raise ExportError(str(exc)) from exc
    with _quiet(logging.getLogger("ultralytics")):
        return _export(ultralytics, spec, out, imgsz=imgsz, dynamic=dynamic, half=half,
                       opset=opset)


def _export(ultralytics: Any, spec: str, out: Path, *, imgsz: int, dynamic: bool, half: bool,
            opset: int | None) -> Path:
    from workers.ultralytics_detector import INSTALL_HINT, class_names_of

    try:
        model = ultralytics.YOLO(spec, task="detect")
    except FileNotFoundError as exc:
        raise ExportError(f"model {spec!r} is neither a file nor one of ultralytics' bundled "
                          f"model yamls ({exc})") from exc
    if model.task != "detect":
        raise ExportError(f"{spec} is a {model.task!r} model; only detection models export "
                          "to what OnnxDetector serves")
    model.model.names = dict(enumerate(class_names_of(model.model.names)))

    out.parent.mkdir(parents=True, exist_ok=True)
    # Beside `out`, so the final rename is atomic; and ultralytics names its output after the
    # checkpoint (`pt_path`), writing beside it or into the working directory otherwise.
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".export-") as scratch:
        model.model.pt_path = str(Path(scratch) / "model.pt")
        precision = _precision_args(half)
        try:
            exported = model.export(format="onnx", imgsz=imgsz, dynamic=dynamic, simplify=True,
                                    opset=opset, batch=1, **precision)
        except ImportError as exc:  # onnx or onnxslim: installed by the extra, never at run time
            raise ExportError(f"the ONNX export needs {exc.name or exc}; {INSTALL_HINT}") from exc
        if not exported or not Path(exported).is_file():
            raise ExportError(f"ultralytics reported no ONNX file for {spec} (got {exported!r})")
        if dynamic:
            _pin_image_size(Path(exported), imgsz)
        Path(exported).replace(out)
    return out


@contextlib.contextmanager
def _quiet(logger: logging.Logger) -> Iterator[None]:
    """Warnings and errors only: ultralytics' export log ends with `yolo predict` hints that name
    the scratch file, gone by the time anyone reads them."""
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _model_spec(source: Path | str) -> str:
    """What to hand ultralytics: an existing .pt or yaml, or a bare yaml name it ships."""
    path = Path(source)
    suffix = path.suffix.lower()
    if suffix in CHECKPOINT_SUFFIXES:
        if not path.is_file():
            raise ExportError(f"source model {path} not found")
        return str(path)
    if suffix in YAML_SUFFIXES:
        if path.is_file():
            return str(path)
        if path.name != str(source):
            # A path with folders is meant as a file here, never as a bundled config.
            raise ExportError(f"source model {path} not found")
        return path.name
    raise ExportError(f"--source must be a .pt checkpoint or a model .yaml, got {source}")


def _precision_args(half: bool) -> dict[str, Any]:
    # ultralytics 8.4 replaced `half` with `quantize` (and warns on `half`); 8.3 knows only half.
    if not half:
        return {}
    from ultralytics.utils import DEFAULT_CFG_DICT

    return {"quantize": 16} if "quantize" in DEFAULT_CFG_DICT else {"half": True}


def _pin_image_size(path: Path, imgsz: int) -> None:
    import onnx

    model = onnx.load(str(path))
    for dim in model.graph.input[0].type.tensor_type.shape.dim[2:]:
        dim.dim_value = imgsz  # replaces the dim_param ("height", "width"): a oneof field
    onnx.save(model, str(path))


def _cli(args: argparse.Namespace) -> int:
    try:
        out = export_onnx(args.source, args.out, imgsz=args.imgsz, dynamic=not args.static,
                          half=args.half, opset=args.opset)
    except ExportError as exc:
        print(f"camcount model export: error: {exc}", file=sys.stderr)
        return 1
    batch = "1 (static)" if args.static else "dynamic"
    print(f"exported {args.source} to {out} ({args.imgsz}x{args.imgsz}, batch {batch}"
          f"{', fp16' if args.half else ''})")
    return 0


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    model = subparsers.add_parser("model", help="detection model tools (ultralytics extra)")
    commands = model.add_subparsers(dest="model_command", required=True)
    export = commands.add_parser(
        "export",
        help="export a YOLO .pt or model yaml to ONNX for the onnx detector",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    export.add_argument("--source", required=True,
                        help="a .pt checkpoint, a model yaml file, or the name of one that "
                        "ultralytics ships (e.g. yolov8n.yaml: random weights)")
    export.add_argument("--out", required=True, type=Path, help="the .onnx file to write")
    export.add_argument("--imgsz", type=int, default=640, help="input side in pixels")
    export.add_argument("--static", action="store_true",
                        help="a fixed batch of 1 (default: a dynamic batch)")
    export.add_argument("--half", action="store_true", help="fp16 weights (inputs stay fp32)")
    export.add_argument("--opset", type=int, default=None, help="ONNX opset (default: newest "
                        "the installed onnx and torch support)")
    export.set_defaults(func=_cli)
