"""`camcount model export`: argument parsing and the errors that come before any export.
None of this imports torch or ultralytics."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from camcount import model_export

HINT = "pip install -e '.[ultralytics]'"


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="camcount")
    model_export.add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    args = parse("model", "export", *argv)
    code: int = args.func(args)
    return code, capsys.readouterr().err


def test_defaults_give_a_dynamic_fp32_640_export() -> None:
    args = parse("model", "export", "--source", "yolov8n.yaml", "--out", "models/y.onnx")
    assert (args.command, args.model_command) == ("model", "export")
    assert args.source == "yolov8n.yaml" and args.out == Path("models/y.onnx")
    assert (args.imgsz, args.static, args.half, args.opset) == (640, False, False, None)
    assert callable(args.func)


def test_every_option_is_parsed() -> None:
    args = parse("model", "export", "--source", "best.pt", "--out", "m.onnx", "--imgsz", "320",
                 "--static", "--half", "--opset", "17")
    assert (args.imgsz, args.static, args.half, args.opset) == (320, True, True, 17)


@pytest.mark.parametrize("argv", [
    ["model"],  # the sub-command is required
    ["model", "export", "--out", "m.onnx"],  # --source is required
    ["model", "export", "--source", "yolov8n.yaml"],  # --out is required
    ["model", "export", "--source", "yolov8n.yaml", "--out", "m.onnx", "--imgsz", "big"],
])
def test_incomplete_commands_are_usage_errors(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse(*argv)
    assert exit_info.value.code == 2


@pytest.mark.parametrize(("argv", "message"), [
    (["--source", "missing.pt"], "source model missing.pt not found"),
    (["--source", "some/dir/yolov8n.yaml"], "source model some/dir/yolov8n.yaml not found"),
    (["--source", "model.onnx"], "must be a .pt checkpoint or a model .yaml"),
    (["--source", "yolov8n.yaml", "--imgsz", "100"], "multiple of 32"),
    (["--source", "yolov8n.yaml", "--imgsz", "0"], "multiple of 32"),
    (["--source", "yolov8n.yaml", "--opset", "8"], "opset must be at least 9"),
])
def test_bad_requests_fail_clearly_before_any_export(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    out = tmp_path / "out" / "m.onnx"
    code, err = run(capsys, *argv, "--out", str(out))
    assert code == 1
    assert err.startswith("camcount model export: error: ") and message in err
    assert not out.parent.exists()  # nothing written, not even the folder


def test_out_must_be_an_onnx_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(capsys, "--source", "yolov8n.yaml", "--out", str(tmp_path / "m.pt"))
    assert code == 1 and "--out must name an .onnx file" in err


def test_missing_ultralytics_names_the_extra(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ultralytics", None)  # `import ultralytics` now fails
    for switch in ("YOLO_OFFLINE", "YOLO_AUTOINSTALL"):  # restored afterwards
        monkeypatch.delenv(switch, raising=False)
    checkpoint = tmp_path / "best.pt"
    checkpoint.write_bytes(b"not read")
    for source in (str(checkpoint), "yolov8n.yaml"):
        code, err = run(capsys, "--source", source, "--out", str(tmp_path / "m.onnx"))
        assert code == 1
        assert "install the ultralytics extra" in err and HINT in err, err


def test_importing_the_exporter_and_the_detector_loads_no_torch() -> None:
    probe = ("import sys, camcount.model_export, workers.ultralytics_detector; "
             "print(sorted({'torch', 'ultralytics'} & set(sys.modules)))")
    found = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                           check=True, timeout=60)
    assert found.stdout.strip() == "[]"
