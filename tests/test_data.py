"""Data layer: the registry's guarantees (checksums, mirror, atomic downloads) and the corpora's statistics."""
from __future__ import annotations

import builtins
import errno
import fcntl
import functools
import hashlib
import http.server
import os
import threading
from pathlib import Path

import pytest
import torch

from sequnet.cli import main
from sequnet.data import music, registry, text
from sequnet.data.registry import DataError, DataFile


@pytest.fixture(scope="module")
def words(data_root, data_mirror):
    return text.load_ptb_words(root=data_root, mirror=data_mirror)


@pytest.fixture(scope="module")
def chars(data_root, data_mirror):
    return text.load_ptb_chars(root=data_root, mirror=data_mirror)


# --- registry ---

def test_manifest_matches_mirror(data_root, data_mirror):
    registry.fetch(["all"], root=data_root, mirror=data_mirror)
    assert all(row.status == "ok" for row in registry.verify(root=data_root))
    for entry in registry.MANIFEST.values():
        assert (data_mirror / entry.path).stat().st_size == entry.bytes
        # a file with no public copy of its bytes says so instead of pretending to have a URL
        assert (entry.url is None) == entry.path.startswith("piano/"), entry.path


def _fresh_copy(tmp_path, data_mirror, relpath):
    return registry.ensure(relpath, root=tmp_path, mirror=data_mirror)


def test_mirror_copy_is_verified_and_complete(tmp_path, data_mirror):
    path = _fresh_copy(tmp_path, data_mirror, "music/JSB_Chorales.mat")
    assert path == tmp_path / "music" / "JSB_Chorales.mat"
    assert registry.sha256_of(path) == registry.MANIFEST["music/JSB_Chorales.mat"].sha256
    assert [p.name for p in path.parent.iterdir()] == ["JSB_Chorales.mat"]  # no temporary file left over


def test_corrupt_file_names_file_checksums_and_fix(tmp_path, data_mirror):
    entry = registry.MANIFEST["ptb/ptb.valid.txt"]
    path = _fresh_copy(tmp_path, data_mirror, entry.path)
    data = bytearray(path.read_bytes())
    data[1000] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(DataError) as err:
        registry.ensure(entry.path, root=tmp_path, mirror=data_mirror)
    message = str(err.value)
    actual = registry.sha256_of(path)
    for part in (entry.path, entry.sha256, actual, "python -m sequnet data fetch", entry.url):
        assert part in message
    # fetch is the advertised fix: it replaces the bad copy
    registry.fetch([entry.path], root=tmp_path, mirror=data_mirror)
    assert registry.sha256_of(path) == entry.sha256


def test_mirror_without_the_file_does_not_download(tmp_path):
    with pytest.raises(DataError, match="missing from the data root and from the mirror"):
        registry.ensure("ptb/ptb.test.txt", root=tmp_path / "root", mirror=tmp_path / "empty-mirror")
    assert not (tmp_path / "root").exists()


def test_verification_is_cached_until_the_file_changes(tmp_path, data_mirror, monkeypatch):
    path = _fresh_copy(tmp_path, data_mirror, "music/JSB_Chorales.mat")
    calls = []
    real = registry.sha256_of
    monkeypatch.setattr(registry, "sha256_of", lambda p: calls.append(p) or real(p))
    registry.ensure("music/JSB_Chorales.mat", root=tmp_path)
    assert calls == []
    path.write_bytes(path.read_bytes()[:-1] + b"\x00")
    with pytest.raises(DataError, match="corrupt"):
        registry.ensure("music/JSB_Chorales.mat", root=tmp_path)


@pytest.fixture
def http_dir(tmp_path, monkeypatch):
    """A folder served over HTTP on 127.0.0.1 (never the internet); yields (folder, base URL)."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(var, raising=False)
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _register(monkeypatch, content: bytes, url: str) -> DataFile:
    entry = DataFile("test/file.bin", len(content), hashlib.sha256(content).hexdigest(), "test", url, "a test file")
    monkeypatch.setitem(registry.MANIFEST, entry.path, entry)
    monkeypatch.delenv(registry.ENV_MIRROR, raising=False)
    return entry


def test_download_verifies_and_installs(tmp_path, http_dir, monkeypatch):
    served, base = http_dir
    (served / "good.bin").write_bytes(b"the right bytes" * 1000)
    entry = _register(monkeypatch, b"the right bytes" * 1000, f"{base}/good.bin")
    path = registry.ensure(entry.path, root=tmp_path / "root")
    assert path.read_bytes() == b"the right bytes" * 1000
    assert [p.name for p in path.parent.iterdir()] == ["file.bin"]


@pytest.mark.parametrize("served_name", ["wrong.bin", "absent.bin"])
def test_failed_download_leaves_no_partial_file(tmp_path, http_dir, monkeypatch, served_name):
    served, base = http_dir
    (served / "wrong.bin").write_bytes(b"not the right bytes" * 1000)
    entry = _register(monkeypatch, b"the right bytes", f"{base}/{served_name}")
    with pytest.raises(DataError) as err:
        registry.ensure(entry.path, root=tmp_path / "root")
    assert entry.path in str(err.value) and entry.url in str(err.value)
    folder = tmp_path / "root" / "test"
    assert not folder.exists() or list(folder.iterdir()) == []


def test_cli_verify_exit_codes(tmp_path, data_root, data_mirror, capsys):
    assert main(["data", "verify", "--root", str(tmp_path)]) == 1
    assert "not fetched" in capsys.readouterr().out
    registry.fetch(None, root=data_root, mirror=data_mirror)
    assert main(["data", "verify", "--root", str(data_root)]) == 0
    table = capsys.readouterr().out
    assert all(f"{path} " in table for path in registry.MANIFEST)


def test_cli_fetch_from_mirror(tmp_path, data_mirror):
    assert main(["data", "fetch", "music", "--root", str(tmp_path), "--mirror", str(data_mirror)]) == 0
    assert sorted(p.name for p in (tmp_path / "music").iterdir()) == sorted(
        p.split("/")[-1] for p in registry.GROUPS["music"])
    assert main(["data", "fetch", "nonsense", "--root", str(tmp_path)]) == 1


# --- what is found on disk: directories, unreadable files, leftovers of interrupted runs ---
# Tests may run as root, which reads a chmod-000 file anyway, so an unreadable file is simulated by making open()
# raise PermissionError for that one path (every read of the registry goes through open()); a directory in a
# file's place and a file in a folder's place are the real thing.

@pytest.fixture
def unreadable(monkeypatch):
    """A set: open() raises PermissionError for every path added to it."""
    blocked = set()
    real_open = builtins.open

    def guarded(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and Path(file).absolute() in blocked:
            raise PermissionError(errno.EACCES, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded)
    return blocked


def test_a_directory_in_a_files_place_is_explained_and_kept(tmp_path, data_mirror):
    entry = registry.MANIFEST["ptb/ptb.valid.txt"]
    target = tmp_path / entry.path
    target.mkdir(parents=True)
    (target / "mine.txt").write_text("keep me")
    for call in (registry.ensure, lambda p, **kw: registry.fetch([p], **kw)):
        with pytest.raises(DataError, match="is a directory") as err:
            call(entry.path, root=tmp_path, mirror=data_mirror)
        assert str(target) in str(err.value) and "Move that directory away" in str(err.value)
    assert (target / "mine.txt").read_text() == "keep me"


def test_an_unreadable_file_is_explained_and_fetch_replaces_it(tmp_path, data_mirror, unreadable):
    entry = registry.MANIFEST["ptb/ptb.valid.txt"]
    target = tmp_path / entry.path
    target.parent.mkdir(parents=True)
    target.write_bytes(b"whatever")
    unreadable.add(target)
    with pytest.raises(DataError, match="unreadable") as err:
        registry.ensure(entry.path, root=tmp_path, mirror=data_mirror)
    assert f"cannot read {target}: Permission denied" in str(err.value) and f"chmod a+r {target}" in str(err.value)
    registry.fetch([entry.path], root=tmp_path, mirror=data_mirror)
    unreadable.clear()
    assert registry.sha256_of(target) == entry.sha256


def test_a_file_in_a_folders_place_is_explained(tmp_path, data_mirror):
    root = tmp_path / "root"
    root.write_text("not a folder")
    with pytest.raises(DataError, match="folder on the way") as err:
        registry.ensure("ptb/ptb.test.txt", root=root, mirror=data_mirror)
    assert str(root / "ptb" / "ptb.test.txt") in str(err.value)
    with pytest.raises(DataError, match=f"cannot write to {root / 'ptb'}"):
        registry.fetch(["ptb/ptb.test.txt"], root=root, mirror=data_mirror)


def test_cli_verify_reports_every_kind_of_problem_in_its_table(tmp_path, data_mirror, unreadable, capsys):
    corrupt = _fresh_copy(tmp_path, data_mirror, "ptb/ptb.valid.txt")
    corrupt.write_bytes(corrupt.read_bytes()[:-1])
    locked = _fresh_copy(tmp_path, data_mirror, "ptb/ptb.test.txt")
    unreadable.add(locked)
    (tmp_path / "music" / "JSB_Chorales.mat").mkdir(parents=True)
    assert main(["data", "verify", "--root", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    rows = {line.split()[0]: line for line in captured.out.splitlines()[2:]}
    assert set(rows) == set(registry.MANIFEST)
    def status_and_detail(path):
        return rows[path][len(path):].split(None, 1) if "not fetched" not in rows[path] else ["not fetched"]

    assert status_and_detail("ptb/ptb.valid.txt")[0] == "corrupt"
    assert status_and_detail("ptb/ptb.test.txt") == ["unreadable", f"cannot read {locked}: Permission denied"]
    assert status_and_detail("music/JSB_Chorales.mat")[0] == "unreadable"
    assert "is a directory" in rows["music/JSB_Chorales.mat"]
    assert "  not fetched  not at" in rows["ptb/ptb.train.txt"]
    n_absent = len(registry.MANIFEST) - 3
    for line in (f"{n_absent} file(s) not fetched", "1 file(s) corrupt", "2 file(s) unreadable"):
        assert line in captured.err


def test_fetch_keeps_a_corrupt_copy_until_a_verified_one_is_in_hand(tmp_path, data_mirror, monkeypatch):
    entry = registry.MANIFEST["ptb/ptb.valid.txt"]
    path = _fresh_copy(tmp_path, data_mirror, entry.path)
    bad = path.read_bytes()[:-1] + b"?"
    path.write_bytes(bad)
    with pytest.raises(DataError, match="left as it is"):                   # no replacement to be had
        registry.fetch([entry.path], root=tmp_path, mirror=tmp_path / "empty-mirror")
    assert path.read_bytes() == bad
    seen = []
    real_copy = registry.shutil.copyfile
    monkeypatch.setattr(registry.shutil, "copyfile", lambda src, dst: seen.append(path.read_bytes()) or
                        real_copy(src, dst))
    registry.fetch([entry.path], root=tmp_path, mirror=data_mirror)
    assert seen == [bad]                     # while the new copy was written, the old one was still in place
    assert registry.sha256_of(path) == entry.sha256
    assert sorted(p.name for p in path.parent.iterdir()) == ["ptb.valid.txt"]


def test_leftovers_of_interrupted_runs_are_removed_but_not_a_running_writers(tmp_path, data_mirror):
    path = _fresh_copy(tmp_path, data_mirror, "music/JSB_Chorales.mat")
    stale = [path.parent / ".JSB_Chorales.mat.k2j3x.partial", path.parent / ".JSB_Chorales.mat.a8.tmp"]
    for leftover in stale:
        leftover.write_bytes(b"half a file")
    others = [path.parent / ".JSB_Chorales.mat.live.partial", path.parent / "notes.tmp"]
    for other in others:
        other.write_bytes(b"not ours to delete")
    with open(others[0], "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)     # a concurrent writer (another DataLoader worker or DDP rank)
        assert registry.fetch(["music/JSB_Chorales.mat"], root=tmp_path, mirror=data_mirror) == [path]
    assert not any(leftover.exists() for leftover in stale)
    assert all(other.exists() for other in others)
    # ensure() cleans the same way when it writes a file
    missing = tmp_path / "music" / "Nottingham.mat"
    leftover = missing.parent / ".Nottingham.mat.zz9.partial"
    leftover.write_bytes(b"half")
    registry.ensure("music/Nottingham.mat", root=tmp_path, mirror=data_mirror)
    assert not leftover.exists() and missing.is_file()


# --- PTB ---

def test_ptb_words(words):
    assert [len(words.split(s)) for s in text.SPLITS] == [929_589, 73_760, 82_430]
    assert len(words.vocab) == 10_000 and "<eos>" in words.vocab
    assert words.train.dtype == torch.long
    assert words.streams("train").shape == (16, 929_589 // 16)
    assert words.streams("valid").shape == (16, 73_760 // 16)  # the word scripts batchify valid/test too


def test_ptb_chars(chars, data_mirror):
    assert [len(chars.split(s)) for s in text.SPLITS] == [5_269_890, 413_262, 464_989]
    assert len(chars.vocab) == 49
    assert set(chars.vocab) == set(" #$&'*-./0123456789<>N\\abcdefghijklmnopqrstuvwxyz")
    assert chars.vocab[0] == " "  # first-occurrence order: every PTB line starts with a space
    raw = (data_mirror / "ptb" / "ptb.test.txt").read_text()[:300]
    assert chars.decode(chars.test[:len(raw.replace("\n", "<eos>"))]) == raw.replace("\n", "<eos>")
    assert chars.streams("train").shape == (16, 329_368)
    assert chars.streams("test").shape == (1, 464_989)  # char valid/test are one stream


def test_window_positions():
    assert text.windows(10, 4, 2) == [0, 2, 4]  # 6 + 4 = 10 is not < 10
    streams = text.batchify(torch.arange(2 * 23), 2)
    starts = text.windows(23, 7, 3)
    assert starts == list(range(0, 16, 3))
    for start in starts:
        inputs, targets = text.get_window(streams, start, 7, 3)
        assert inputs.shape == (2, 7) and targets.shape == (2, 3)
        assert torch.equal(targets, inputs[:, -3:] + 1)  # the next token after each scored position
        assert int(targets.max()) < 23 * 2


def test_window_counts_of_the_paper_configs(words, chars):
    assert len(text.windows(chars.streams("train").shape[1], 397, 325)) == 1013
    assert len(text.windows(words.streams("train").shape[1], 117, 45)) == 1289


def test_shuffled_windows_are_a_reproducible_permutation():
    streams = text.batchify(torch.arange(200), 4)

    def epoch(seed):
        gen = torch.Generator().manual_seed(seed)
        return [int(inputs[0, 0]) for inputs, _ in text.iterate_windows(streams, 8, 4, shuffle=True, generator=gen)]

    plain = [int(inputs[0, 0]) for inputs, _ in text.iterate_windows(streams, 8, 4)]
    assert epoch(3) == epoch(3) and sorted(epoch(3)) == plain and epoch(3) != plain


def test_batchify_drops_the_remainder():
    assert text.batchify(torch.arange(10), 3).tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    with pytest.raises(ValueError):
        text.batchify(torch.arange(2), 3)


# --- polyphonic music ---

MUSIC_COUNTS = {"jsb": (229, 76, 77), "nottingham": (694, 173, 170), "muse": (524, 135, 124),
                "piano_midi": (87, 12, 25)}
MUSIC_FRAMES = {"jsb": (13_807, 4_602, 4_725), "piano_midi": (75_911, 8_540, 19_036)}


@pytest.mark.parametrize("name", sorted(MUSIC_COUNTS))
def test_music_sequence_counts(name, data_root, data_mirror):
    rolls = music.load_music(name, root=data_root, mirror=data_mirror)
    splits = (rolls.train, rolls.valid, rolls.test)
    assert tuple(map(len, splits)) == MUSIC_COUNTS[name]
    if name in MUSIC_FRAMES:
        assert tuple(sum(r.shape[1] for r in s) for s in splits) == MUSIC_FRAMES[name]
    roll = rolls.train[0]
    assert roll.dtype == torch.float32 and roll.shape[0] == 88 and set(roll.unique().tolist()) <= {0.0, 1.0}
    inputs, targets = music.next_step(roll)
    assert torch.equal(inputs[:, 1:], targets[:, :-1])


def test_jsb_occupies_its_documented_keys(data_root, data_mirror):
    rolls = music.load_music("jsb", root=data_root, mirror=data_mirror)
    used = torch.cat(rolls.train + rolls.valid + rolls.test, dim=1).sum(dim=1).nonzero().flatten()
    assert (int(used.min()) + music.LOWEST_MIDI_NOTE, int(used.max()) + music.LOWEST_MIDI_NOTE) == (43, 96)


def test_unknown_music_dataset():
    with pytest.raises(ValueError, match="jsb, nottingham, muse, piano_midi"):
        music.load_music("bach")
