"""Evidence integrity (#12): a suite is what its manifest says, and the manifest is what its
author made. Identity, manifest checks, signatures, extension, the lock, orphan workers,
a full disk and file modes, each on real suites and real processes."""
from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oddsuite.errors import OddsuiteError, SuiteError
from oddsuite.fileio import json_bytes, write_json
from oddsuite.suite import SuiteLock, generate_key, generate_suite, sign_folder, verify_folder
from oddsuite.suite.generate import plan_suite
from oddsuite.suite.layout import FORMAT, MANIFEST, SIGNATURE
from oddsuite.suite.manifest import identity_of

#: a cheap plan: per scene and variant, the full image and its remove-mode twin
CHEAP = {"plan": "full", "modes": ("remove",)}
CHEAP_CLI = ["--plan", "full", "--modes", "remove"]


def _cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "oddsuite.cli", *args], capture_output=True, text=True, **kw)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _copy(suite: Path, dst: Path) -> Path:
    shutil.copytree(suite, dst, symlinks=True)
    return dst


def _folder(root: Path, files: dict[str, bytes], listed: dict | None = None, **fields) -> Path:
    """A folder holding ``files`` and a suite manifest listing ``listed`` (default: those files)."""
    root.mkdir(parents=True, exist_ok=True)
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    write_json(root / MANIFEST, {"format": FORMAT, "files": listed if listed is not None
                                 else {k: _sha(v) for k, v in files.items()}, **fields})
    return root


# --------------------------------------------------------------------------- identity


def test_identity_is_the_sha256_of_the_canonical_manifest_and_verify_prints_it(tiny_suite, tmp_path):
    man_bytes = (tiny_suite / MANIFEST).read_bytes()
    ident = _sha(man_bytes)  # generate writes the canonical form
    assert identity_of(json.loads(man_bytes)) == ident
    assert verify_folder(tiny_suite).identity == ident
    r = _cli("verify", str(tiny_suite))
    assert r.returncode == 0 and f"identity: {ident} (suite)" in r.stdout
    # the identity names the content, not the formatting: a re-indented manifest keeps it
    s = _copy(tiny_suite, tmp_path / "s")
    (s / MANIFEST).write_text(json.dumps(json.loads(man_bytes), indent=4))
    rep = verify_folder(s)
    assert rep.ok and rep.identity == ident


# --------------------------------------------------------------------------- malformed manifests


@pytest.mark.parametrize("bad", ["../outside.png", "/etc/passwd", "images/../../x.png", "images\\x.png", "C:/x.png",
                                 "", "images//x.png", "./x.png", ".state/job.json", "manifest.json", "a\x00b"])
def test_manifest_naming_a_path_outside_the_folder_is_refused(tmp_path, bad):
    (tmp_path / "outside.png").write_bytes(b"secret")
    root = _folder(tmp_path / "s", {"x.png": b"x"}, listed={"x.png": _sha(b"x"), bad: _sha(b"secret")})
    with pytest.raises(SuiteError, match=r"manifest.json: files"):
        verify_folder(root)


def test_cli_refuses_a_manifest_with_parent_paths_cleanly(tmp_path):
    root = _folder(tmp_path / "s", {"x.png": b"x"}, listed={"../../etc/passwd": "0" * 64})
    r = _cli("verify", str(root))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "../../etc/passwd" in r.stderr and "inside the folder" in r.stderr


def test_listed_files_that_are_not_regular_are_reported_and_never_opened(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.png").write_bytes(b"other bytes")
    root = _folder(tmp_path / "s", {"ok.png": b"fine", "real/x.png": b"x"})
    (root / "link.png").symlink_to(outside / "x.png")
    (root / "dir.png").mkdir()
    os.mkfifo(root / "fifo.png")  # opening it for reading would block forever
    (root / "via").symlink_to(outside, target_is_directory=True)
    listed = {"ok.png": _sha(b"fine"), "real/x.png": _sha(b"x"), "link.png": _sha(b"other bytes"),
              "dir.png": "0" * 64, "fifo.png": "0" * 64, "via/x.png": _sha(b"other bytes")}
    write_json(root / MANIFEST, {"format": FORMAT, "files": listed})
    rep = verify_folder(root)
    assert rep.not_regular == ["dir.png", "fifo.png", "link.png", "via/x.png"]
    assert not rep.ok and rep.missing == [] and rep.altered == []
    # an unlisted symbolic link is unexpected
    write_json(root / MANIFEST, {"format": FORMAT, "files": {"ok.png": _sha(b"fine"), "real/x.png": _sha(b"x")}})
    (root / "dir.png").rmdir()
    (root / "fifo.png").unlink()
    assert verify_folder(root).unexpected == ["link.png", "via"]


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                     lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                     max_leaves=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(
    st.binary(max_size=200),
    _json.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(st.text(max_size=30), st.one_of(st.text(max_size=70), _json), max_size=4).map(
        lambda files: json.dumps({"format": FORMAT, "files": files}).encode()),
    st.fixed_dictionaries({"format": st.sampled_from([FORMAT, "oddsuite-folder/1", 3]), "files": _json,
                           "kind": _json, "seed": _json, "spec": _json}).map(lambda d: json.dumps(d).encode()),
))
def test_fuzzed_manifests_give_a_clean_error_or_a_report(tmp_path, data):
    root = tmp_path / "fuzz"
    root.mkdir(exist_ok=True)
    (root / "a.png").write_bytes(b"a")
    (root / MANIFEST).write_bytes(data)
    try:
        rep = verify_folder(root)
    except SuiteError:
        return
    assert isinstance(rep.ok, bool)


@pytest.mark.parametrize("text", ["[" * 100000, '{"format": "%s", "files": {}, "files": {}}' % FORMAT,
                                  '{"format": "%s", "files": {"a.png": "%s"}, "seed": NaN}' % (FORMAT, "0" * 64),
                                  '{"format": "%s", "files": {"a.png": 1e999}}' % FORMAT, "\udcff"])
def test_hostile_manifest_texts_are_clean_errors(tmp_path, text):
    root = _folder(tmp_path / "s", {"a.png": b"a"})
    (root / MANIFEST).write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(SuiteError, match="manifest.json"):
        verify_folder(root)


# --------------------------------------------------------------------------- signatures


def test_a_forged_manifest_with_recomputed_hashes_is_caught_by_the_signature(tiny_suite, tmp_path):
    key, pub, fp = generate_key(tmp_path / "keys" / "author")
    other_key, other_pub, _ = generate_key(tmp_path / "keys" / "other")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    s = _copy(tiny_suite, tmp_path / "s")
    r = _cli("sign", str(s), "--key", str(key))
    assert r.returncode == 0, r.stderr
    assert (s / SIGNATURE).is_file() and fp in r.stdout
    r = _cli("verify", str(s), "--pubkey", str(pub))
    assert r.returncode == 0 and "signature: valid" in r.stdout, r.stdout + r.stderr

    # the adversary swaps an image and recomputes its hash in the manifest: the hashes agree ...
    img = sorted((s / "images").rglob("*.png"))[0]
    img.write_bytes((tiny_suite / "images" / img.relative_to(s / "images")).read_bytes()[::-1])
    man = json.loads((s / MANIFEST).read_text())
    man["files"][img.relative_to(s).as_posix()] = _sha(img.read_bytes())
    (s / MANIFEST).write_bytes(json_bytes(man))
    assert verify_folder(s).ok  # hashes alone cannot tell
    # ... but not with the author's signature
    rep = verify_folder(s, pub)
    assert not rep.ok and "changed after it was signed" in rep.signature
    r = _cli("verify", str(s), "--pubkey", str(pub))
    assert r.returncode == 1 and "signature not valid" in r.stdout
    # re-signed with the adversary's own key: still not the author's
    sign_folder(s, other_key)
    assert "another key" in verify_folder(s, pub).signature
    assert verify_folder(s, other_pub).ok
    # no signature at all
    (s / SIGNATURE).unlink()
    assert verify_folder(s, pub).signature.startswith("not signed")


def test_signing_a_folder_that_changed_since_its_manifest_is_refused(tiny_suite, tmp_path):
    key, _, _ = generate_key(tmp_path / "k")
    s = _copy(tiny_suite, tmp_path / "s")
    (s / "images" / "extra.png").write_bytes(b"x")
    with pytest.raises(SuiteError, match="does not match its manifest"):
        sign_folder(s, key)
    with pytest.raises(SuiteError, match="never rehashed"):
        sign_folder(s, key, rehash=True)
    assert not (s / SIGNATURE).exists()


def test_results_and_model_folders_get_a_manifest_and_a_signature(tmp_path):
    key, pub, _ = generate_key(tmp_path / "k")
    res = tmp_path / "results"
    for name, data in {"run.json": b"{}", "metrics.json": b'{"map": 1}', "predictions.json": b"[]",
                       "trace/trace.json": b"{}", ".state/key.json": b"{}"}.items():
        (res / name).parent.mkdir(parents=True, exist_ok=True)
        (res / name).write_bytes(data)
    r = _cli("sign", str(res), "--key", str(key))
    assert r.returncode == 0 and "wrote" in r.stdout and "(results)" in r.stdout, r.stderr
    man = json.loads((res / MANIFEST).read_text())
    assert man["kind"] == "results" and sorted(man["files"]) == ["metrics.json", "predictions.json", "run.json",
                                                                   "trace/trace.json"]
    rep = verify_folder(res, pub)
    assert rep.ok and rep.kind == "results" and rep.identity == _sha((res / MANIFEST).read_bytes())
    (res / "metrics.json").write_bytes(b'{"map": 0.99}')
    assert verify_folder(res, pub).altered == ["metrics.json"]
    (res / "report.html").write_text("later")
    with pytest.raises(SuiteError, match="--rehash"):
        sign_folder(res, key)
    sign_folder(res, key, rehash=True)  # the owner lists the folder as it is now
    assert verify_folder(res, pub).ok

    model = tmp_path / "model"
    model.mkdir()
    (model / "model.json").write_text('{"weights": "model.safetensors"}')
    (model / "model.safetensors").write_bytes(os.urandom(1000))
    assert sign_folder(model, key).kind == "model"
    r = _cli("verify", str(model), "--pubkey", str(pub))
    assert r.returncode == 0 and "(model)" in r.stdout
    # a symbolic link cannot be listed: a manifest names bytes
    (tmp_path / "elsewhere").write_bytes(b"x")
    (model / "extra.bin").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(SuiteError, match="not a regular file"):
        sign_folder(model, key, rehash=True)


def test_keys_are_never_overwritten_and_wrong_keys_are_clean_errors(tmp_path):
    key, pub, _ = generate_key(tmp_path / "k")
    r = _cli("keygen", "--out", str(key))
    assert r.returncode == 2 and "never overwritten" in r.stderr
    root = _folder(tmp_path / "s", {"a.png": b"a"})
    with pytest.raises(SuiteError, match="not a PEM private key"):
        sign_folder(root, pub)
    with pytest.raises(SuiteError, match="not a PEM public key"):
        verify_folder(root, key)


# --------------------------------------------------------------------------- generate: extend, refuse, lock


def test_extension_with_more_scenes_verifies_and_equals_a_fresh_suite(tiny_spec, tmp_path):
    old = os.umask(0o022)  # output files must get the user's umask: 0644 here
    try:
        out = tmp_path / "s"
        generate_suite(tiny_spec, out, scenes=1, seed=4, **CHEAP)
        key, pub, _ = generate_key(tmp_path / "k")
        sign_folder(out, key)
        first = verify_folder(out).identity
        res = generate_suite(tiny_spec, out, scenes=1, seed=4, **CHEAP)
        assert res.status == "unchanged" and verify_folder(out, pub).ok  # the same run again: nothing to do

        res = generate_suite(tiny_spec, out, scenes=2, seed=4, **CHEAP)
        assert res.status == "extended" and res.resumed == 1 and res.images == 8
        assert not (out / SIGNATURE).exists()  # the old signature vouched for the old manifest
        rep = verify_folder(out)
        assert rep.ok and rep.identity != first
        # fewer scenes than the finished suite holds: refused, the suite untouched (today's bug left it broken)
        r = _cli("generate", str(tiny_spec), "--out", str(out), "--scenes", "1", "--seed", "4", *CHEAP_CLI)
        assert r.returncode == 2 and "finished suite of 2 scenes; --scenes 1 would shrink it" in r.stderr, r.stderr
        r = _cli("generate", str(tiny_spec), "--out", str(out), "--scenes", "2", "--seed", "5", *CHEAP_CLI)
        assert r.returncode == 2 and "finished suite of another spec, seed or plan" in r.stderr, r.stderr
        assert "unfinished" not in r.stderr and "Traceback" not in r.stderr
        assert verify_folder(out).identity == rep.identity

        fresh = tmp_path / "fresh"
        generate_suite(tiny_spec, fresh, scenes=2, seed=4, **CHEAP)
        files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and ".state" not in p.parts)
        assert files == sorted(p.relative_to(fresh).as_posix() for p in fresh.rglob("*")
                               if p.is_file() and ".state" not in p.parts)
        assert all((out / f).read_bytes() == (fresh / f).read_bytes() for f in files)
        modes = {p.relative_to(out).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in out.rglob("*") if p.is_file()}
        assert set(modes.values()) == {0o644}, {k: oct(v) for k, v in modes.items() if v != 0o644}
    finally:
        os.umask(old)


class _FailOn:
    """Runs scenes in-process and fails one (a crash in the middle of a run)."""

    def __init__(self, bad: int):
        self.bad = bad

    def map(self, fn, items, key=lambda x: x):
        from oddsuite.run import TaskFailure

        for it in items:
            yield (it, TaskFailure(key(it), "RuntimeError: node lost", 1)) if key(it) == self.bad else (it, fn(it))


def test_an_interrupted_extension_is_unfinished_then_resumes(tiny_spec, tmp_path):
    out = tmp_path / "s"
    generate_suite(tiny_spec, out, scenes=1, seed=6, **CHEAP)
    with pytest.raises(SuiteError, match="scene 2: RuntimeError: node lost"):
        generate_suite(tiny_spec, out, scenes=3, seed=6, executor=_FailOn(2), **CHEAP)
    with pytest.raises(SuiteError, match="no manifest.json"):  # never the old manifest over new files
        verify_folder(out)
    with pytest.raises(SuiteError, match="unfinished suite of 3 scenes; --scenes 1 is fewer"):
        generate_suite(tiny_spec, out, scenes=1, seed=6, **CHEAP)
    res = generate_suite(tiny_spec, out, scenes=3, seed=6, **CHEAP)
    assert res.status == "resumed" and res.resumed == 2 and verify_folder(out).ok


def test_a_run_that_finishes_no_scene_leaves_no_folder_behind(tiny_spec, tmp_path):
    with pytest.raises(SuiteError, match="scene 0: RuntimeError: node lost"):
        generate_suite(tiny_spec, tmp_path / "new", scenes=1, seed=1, executor=_FailOn(0), **CHEAP)
    assert not (tmp_path / "new").exists()
    (tmp_path / "empty").mkdir()  # a folder the user made: kept, and left as empty as it was
    with pytest.raises(SuiteError):
        generate_suite(tiny_spec, tmp_path / "empty", scenes=1, seed=1, executor=_FailOn(0), **CHEAP)
    assert list((tmp_path / "empty").iterdir()) == []


def test_a_second_run_on_a_locked_folder_is_refused(tiny_spec, tmp_path):
    out = tmp_path / "s"
    with SuiteLock(out):
        with pytest.raises(SuiteError, match=r"locked by another generate run \(pid %d" % os.getpid()):
            generate_suite(tiny_spec, out, scenes=1, seed=1, **CHEAP)
        r = _cli("generate", str(tiny_spec), "--out", str(out), "--scenes", "1", *CHEAP_CLI)
        assert r.returncode == 2 and "locked by another generate run" in r.stderr and "Traceback" not in r.stderr
    # a holder killed with SIGKILL leaves its lock file, never a lock
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from oddsuite.suite import SuiteLock; "
                               "SuiteLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(600)", str(out)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(SuiteError, match="locked"):
            SuiteLock(out).acquire()
    finally:
        holder.kill()
        holder.wait()
    assert json.loads((out / ".state" / "lock").read_text())["pid"] == holder.pid
    with SuiteLock(out):
        pass


# --------------------------------------------------------------------------- sizes


def test_scene_count_and_seed_are_bounded_and_planning_samples_nothing(tiny_spec, tmp_path, monkeypatch):
    from oddsuite.odd import load_spec
    from oddsuite.suite import generate as gen
    from oddsuite.suite.generate import PlanOptions

    calls = []
    real = gen.sample_scene
    monkeypatch.setattr(gen, "sample_scene", lambda *a: calls.append(a[2]) or real(*a))
    spec = load_spec(tiny_spec)
    plan = plan_suite(spec, 0, 1_000_000, PlanOptions.from_spec(spec))
    assert calls == []  # a plan of a million scenes samples none up front
    assert [n for _, n in plan.image_counts(0, 2)] == [plan.images_of(0), plan.images_of(1)] and calls

    class Started(Exception):
        pass

    def on_start(p):
        raise Started(p.scenes)

    calls.clear()
    with pytest.raises(Started):
        generate_suite(tiny_spec, tmp_path / "big", scenes=1_000_000, seed=1, on_start=on_start)
    assert calls == [0]  # the first scene is checked before a folder exists; no other is sampled to start

    for scenes, seed, what in ((10**9, 1, "--scenes"), (0, 1, "--scenes"), (2, -1, "--seed"), (2, 2**64, "--seed")):
        with pytest.raises(OddsuiteError, match=what):
            generate_suite(tiny_spec, tmp_path / "x", scenes=scenes, seed=seed)
    for scenes, seed, what in ((10**9, 1, "--scenes"), (2, -1, "--seed")):
        r = _cli("generate", str(tiny_spec), "--out", str(tmp_path / "x"), "--scenes", str(scenes), "--seed", str(seed))
        assert r.returncode == 2 and what in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "x").exists()


# --------------------------------------------------------------------------- processes


def _descendants(pid: int) -> list[int]:
    try:
        import psutil

        return [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except ImportError:  # /proc: every process whose parent chain reaches pid
        parent = {}
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    parent[int(d)] = int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    pass
        out, frontier = [], [pid]
        while frontier:
            kids = [p for p, pp in parent.items() if pp in frontier]
            out += kids
            frontier = kids
        return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
    except OSError:
        return ""


def _running(pid: int) -> bool:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return text.rsplit(")", 1)[1].split()[0] not in ("Z", "X")  # a zombie has ended


def _wait_for(cond, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = cond()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc (Linux) to list processes")
def test_no_worker_outlives_a_driver_killed_with_sigkill(tiny_spec, tmp_path):
    out = tmp_path / "s"
    args = ["generate", str(tiny_spec), "--out", str(out), "--scenes", "3", "--seed", "8", *CHEAP_CLI]
    driver = subprocess.Popen([sys.executable, "-m", "oddsuite.cli", *args, "--workers", "2"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kids: list[int] = []
    try:
        _wait_for(lambda: len([p for p in _descendants(driver.pid) if "spawn_main" in _cmdline(p)]) >= 2,
                  300, "two pool workers")
        _wait_for(lambda: list((out / ".state").glob("scene_*.json")), 300, "a finished scene (workers busy)")
        kids = _descendants(driver.pid)
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        _wait_for(lambda: not any(_running(p) for p in kids), 30, f"workers {kids} to end after the driver died")
    finally:
        driver.kill()
        for p in kids:
            if _running(p):
                os.kill(p, signal.SIGKILL)
    # the killed run's lock is gone with it; the same command resumes and the suite verifies
    r = _cli(*args, "--workers", "1")
    assert r.returncode == 0 and "kept from an earlier run" in r.stdout, r.stderr
    assert verify_folder(out).ok


# --------------------------------------------------------------------------- a full disk


def _fsize_limited(limit: int):
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)

    class _Limit:
        def __enter__(self):
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))

        def __exit__(self, *exc):
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))

    return _Limit()


def test_file_size_limit_while_rendering_is_a_clean_error_and_no_suite(tiny_spec, tmp_path):
    out = tmp_path / "s"
    with _fsize_limited(400):  # the lock and job records fit; no image does (EFBIG, as a full disk gives ENOSPC)
        with pytest.raises(SuiteError, match="disk full .* while rendering scene 0"):
            generate_suite(tiny_spec, out, scenes=2, seed=1, **CHEAP)
    with pytest.raises(SuiteError, match="no manifest.json"):
        verify_folder(out)
    assert not out.exists()  # no scene was finished: nothing is left behind
    res = generate_suite(tiny_spec, out, scenes=2, seed=1, **CHEAP)  # space again: the same call resumes
    assert res.images == 8 and verify_folder(out).ok


def test_file_size_limit_while_writing_the_tables_is_a_clean_error_and_no_suite(tiny_suite, tiny_spec, tmp_path):
    s = _copy(tiny_suite, tmp_path / "s")
    (s / MANIFEST).unlink()  # unfinished: every scene is done, only the tables and manifest are left to write
    with _fsize_limited(4000):
        with pytest.raises(SuiteError, match="disk full .* while writing the suite's tables"):
            generate_suite(tiny_spec, s, scenes=3, seed=11)
    assert not (s / MANIFEST).exists() and not list(s.glob(".*.tmp"))
    with pytest.raises(SuiteError, match="no manifest.json"):
        verify_folder(s)


@pytest.mark.slow
def test_cli_disk_full_on_a_small_tmpfs(tiny_spec, tmp_path):
    """A real full disk: tmpfs mounts in a private mount namespace (``unshare -rm``). The
    suite is generated once on a roomy tmpfs to measure it, then on one 8 KiB too small
    (the disk fills while the last tables or the manifest are written)."""
    unshare = shutil.which("unshare")
    probe = tmp_path / "probe"
    probe.mkdir()
    if unshare is None or subprocess.run([unshare, "-rm", "mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs",
                                          str(probe)], capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs unshare and unprivileged user namespaces, or root)")
    big, tight = tmp_path / "big", tmp_path / "tight"
    for d in (big, tight):
        d.mkdir()
    gen = f'"{sys.executable}" -m oddsuite.cli generate "{tiny_spec}" --scenes 1 --seed 2 {" ".join(CHEAP_CLI)}'
    ver = f'"{sys.executable}" -m oddsuite.cli verify'
    script = f"""
set -u
mount -t tmpfs -o size=64m tmpfs "{big}" && {gen} --out "{big}/s" >/dev/null 2>&1 || exit 90
used=$(df -k --output=used "{big}" | tail -1)
echo "used=$used"
mount -t tmpfs -o size=$((used - 8))k tmpfs "{tight}" || exit 91
{gen} --out "{tight}/s" > "{tmp_path}/tight.out" 2>&1; echo "tight_rc=$?"
{ver} "{tight}/s" >/dev/null 2>&1; echo "tight_verify_rc=$?"
"""
    r = subprocess.run([unshare, "-rm", "sh", "-c", script], capture_output=True, text=True)
    got = dict(line.split("=", 1) for line in r.stdout.split() if "=" in line)
    assert r.returncode == 0 and "used" in got, r.stdout + r.stderr
    err = (tmp_path / "tight.out").read_text()
    assert got["tight_rc"] == "2" and "disk full" in err and "Traceback" not in err, err
    assert got["tight_verify_rc"] != "0"  # nothing verify accepts
