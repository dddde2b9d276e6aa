"""What a user expects of the command line: --version, -v after the sub-command, a generate
progress that moves per image (with --no-progress to hide it), and no pybullet banner."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from oddsuite import __version__
from oddsuite.cli import COMMANDS, build_parser

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}


def test_version():
    out = subprocess.run([sys.executable, "-m", "oddsuite.cli", "--version"], capture_output=True, text=True,
                         env=ENV, check=True)
    assert out.stdout.strip() == f"oddsuite {__version__}"


def test_verbose_before_or_after_the_command():
    p = build_parser()
    assert p.parse_args(["-v", "verify", "S"]).verbose is True
    assert p.parse_args(["verify", "S", "-v"]).verbose is True
    assert p.parse_args(["verify", "-v", "S"]).verbose is True
    assert p.parse_args(["verify", "S"]).verbose is False
    for name in COMMANDS:  # every sub-command takes it
        action = next(a for a in p._subparsers._group_actions[0].choices[name]._actions if "-v" in a.option_strings)
        assert action.dest == "verbose"


def test_no_pybullet_banner_when_scenes_are_imported():
    """pybullet's C module prints its build time on import; oddsuite imports it silenced."""
    for target in ("oddsuite.scenes.scene", "pybullet"):
        out = subprocess.run([sys.executable, "-c", f"import {target}; print('imported')"], capture_output=True,
                             text=True, env=ENV, check=True)
        banner = "pybullet build time" in out.stdout + out.stderr
        assert banner == (target == "pybullet"), out  # the check can see it when it is there
        assert out.stdout.strip().endswith("imported")


def test_the_image_counter_counts_finished_images_only(tmp_path):
    from oddsuite.suite.progress import ImageCounter

    c = ImageCounter(tmp_path)
    assert c.count() == 0
    (tmp_path / "images" / "000000").mkdir(parents=True)
    for name in ("base_full_all.png", "base_remove_s0.png", ".base_remove_s1.png.x1y2.tmp", "notes.txt"):
        (tmp_path / "images" / "000000" / name).write_bytes(b"x")
    assert c.count() == 2
    (tmp_path / "images" / "000001").mkdir()
    (tmp_path / "images" / "000001" / "base_full_all.png").write_bytes(b"x")
    os.replace(tmp_path / "images" / "000000" / ".base_remove_s1.png.x1y2.tmp",
               tmp_path / "images" / "000000" / "base_remove_s1.png")
    assert c.count() == 4


def test_the_image_watcher_reports_each_image_as_it_is_written(tmp_path):
    """The watcher calls back while the block runs, not only at its end: each image, written
    atomically as a scene writer writes it, is reported before the next is written (a handshake,
    so the test does not depend on how fast the machine renders)."""
    import threading

    from oddsuite.fileio import atomic_write_bytes
    from oddsuite.suite.progress import watch_images

    seen: list[int] = []
    moved = threading.Condition()

    def on_image(n: int) -> None:
        with moved:
            seen.append(n)
            moved.notify_all()

    folder = tmp_path / "images" / "000000"
    folder.mkdir(parents=True)
    with watch_images(tmp_path, on_image, interval_s=0.05):
        for i in range(1, 4):
            atomic_write_bytes(folder / f"base_remove_s{i}.png", b"x")
            with moved:
                assert moved.wait_for(lambda: seen and seen[-1] == i, timeout=30), seen
        inside = list(seen)
    assert inside == [0, 1, 2, 3]
    assert seen == inside  # the final count at the end is not reported twice


def test_generate_reports_progress_per_image(tiny_spec, tmp_path):
    """generate_suite reports images through the watcher: counts only grow, start at 0 and end
    at the suite's image total (how many counts lie between depends on the render speed; the
    watcher's per-image reports are tested above)."""
    from oddsuite.suite import generate_suite

    seen: list[int] = []
    res = generate_suite(tiny_spec, tmp_path / "s", scenes=1, seed=3, plan="full", on_image=seen.append)
    assert seen == sorted(set(seen)) and seen[0] == 0 and seen[-1] == res.images > 2


def test_generate_no_progress_prints_no_bar(tiny_spec, tmp_path):
    out = subprocess.run([sys.executable, "-m", "oddsuite.cli", "generate", str(tiny_spec), "--out",
                          str(tmp_path / "s"), "--scenes", "1", "--seed", "3", "--plan", "full", "--modes", "remove",
                          "--no-progress", "-v"],
                         capture_output=True, text=True, env={**ENV, "PYOPENGL_PLATFORM": "egl"}, check=True)
    assert "rendering" not in out.stderr and "img/s" not in out.stderr
    assert "pybullet build time" not in out.stdout + out.stderr
    assert "DEBUG" in out.stderr  # -v after the sub-command took effect
    assert out.stdout.splitlines()[-1].startswith("suite written:")


@pytest.mark.parametrize("argv", [["generate", "--help"], ["evaluate", "--help"], ["convert", "--help"]])
def test_help_lists_the_new_options(argv, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(argv)
    text = capsys.readouterr().out
    assert "-v, --verbose" in text
    if argv[0] == "generate":
        assert "--no-progress" in text
    if argv[0] == "evaluate":
        assert "torchvision:NAME" in text and "--weights" in text and "--model-arg" in text


def test_report_refuses_a_folder_without_results(tmp_path, capsys):
    """A suite (or any folder) given where a results folder belongs: exit 2, nothing written."""
    from oddsuite import cli

    (tmp_path / "a.txt").write_text("x")
    assert cli.main(["report", str(tmp_path)]) == 2
    assert "a report needs a results folder" in capsys.readouterr().err
    assert not (tmp_path / "report.html").exists()


def test_a_folder_given_as_the_spec_is_named_as_such(tmp_path, capsys):
    from oddsuite import cli

    assert cli.main(["generate", str(tmp_path), "--out", str(tmp_path / "s"), "--scenes", "1"]) == 2
    assert "a folder, not a spec file" in capsys.readouterr().err


def test_a_closed_pipe_is_not_a_traceback():
    """`oddsuite verify DIR | head -1`: the reader leaves before the command writes; it ends quietly."""
    p = subprocess.Popen([sys.executable, "-m", "oddsuite.cli", "--version"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    p.stdout.close()  # before the command has printed anything (it is still importing)
    err = p.stderr.read().decode()
    assert p.wait(timeout=60) == 0
    assert "Traceback" not in err and "BrokenPipe" not in err, err
