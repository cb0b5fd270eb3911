"""Dataset audit, perceptual hashes, hash cache and the leak-free split, on planted phantoms."""
from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from brainmri.cli.main import main
from brainmri.config import DataConfig
from brainmri.data import hashing
from brainmri.data.audit import (
    DEFAULT_THRESHOLD,
    audit_index,
    find_test_leaks,
    leak_free_split,
    leak_free_test_mask,
    near_duplicate_groups,
    nearest_train_distances,
    write_montage,
)
from brainmri.data.datasets import DatasetIndex, Sample, load_dataset
from brainmri.data.hashing import (
    HashCache,
    connected_groups,
    hamming,
    hash_samples,
    near_duplicate_pairs,
    nearest_neighbours,
    phash,
)
from brainmri.data.synthetic import make_phantom, make_phantom_dataset

THRESHOLD = 16  # distinct 64 px phantoms are >= 28 bits apart; planted copies <= 12


def _first(folder: Path) -> Path:
    return sorted(folder.glob("*.png"))[0]


def _brighten(src: Path, dst: Path, factor: float = 1.06) -> None:
    arr = np.asarray(Image.open(src).convert("L"), dtype=np.float32)
    Image.fromarray(np.clip(arr * factor + 3, 0, 255).astype(np.uint8)).save(dst)


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A split phantom set with planted copies (paths in the returned dict)."""
    root = make_phantom_dataset(tmp_path_factory.mktemp("planted") / "ds", layout="split", n_per_class=8,
                                test_per_class=3, size=64, seed=3)
    tr, te = root / "Training", root / "Testing"
    plant = {"root": root}
    # exact: a byte copy within Training/glioma
    plant["exact"] = (_first(tr / "glioma"), tr / "glioma" / "copy_of_first.png")
    shutil.copy(*plant["exact"])
    # cross-split near-duplicates, same label
    src = sorted((tr / "meningioma").glob("*.png"))[1]
    plant["bright"] = te / "meningioma" / "bright.png"
    _brighten(src, plant["bright"])
    src = sorted((tr / "pituitary").glob("*.png"))[1]
    plant["jpeg"] = te / "pituitary" / "recompressed.jpg"
    Image.open(src).convert("L").save(plant["jpeg"], quality=85)
    src = sorted((tr / "notumor").glob("*.png"))[1]
    plant["resized"] = te / "notumor" / "resized.png"
    Image.open(src).convert("L").resize((48, 48), Image.BICUBIC).save(plant["resized"])
    # label conflict: a brightened glioma filed under notumor (within Training)
    plant["conflict"] = (sorted((tr / "glioma").glob("*.png"))[2], tr / "notumor" / "mislabelled.png")
    _brighten(*plant["conflict"], factor=1.04)
    # unreadable files: random bytes and a truncated PNG
    (tr / "pituitary" / "garbage.png").write_bytes(b"this is not an image" * 10)
    data = _first(tr / "meningioma").read_bytes()
    (tr / "meningioma" / "truncated.png").write_bytes(data[: len(data) // 2])
    plant["unreadable"] = {str(tr / "pituitary" / "garbage.png"), str(tr / "meningioma" / "truncated.png")}
    plant["index"] = load_dataset(DataConfig(root=str(root)))
    plant["cache"] = tmp_path_factory.mktemp("hash_cache")
    plant["report"] = audit_index(plant["index"], THRESHOLD, cache_dir=plant["cache"])
    return plant


# ---------------------------------------------------------------------------------------------- hashes


def test_phash_is_robust_to_copies_and_separates_distinct_phantoms() -> None:
    rng = np.random.default_rng(0)
    img = make_phantom(1, 96, rng, class_name="meningioma")
    other = make_phantom(1, 96, rng, class_name="meningioma")
    h = np.array([hashing.phash(x) for x in (img, other)])
    assert len(h[0]) == 64  # 256 bits as hex

    def dist(a: str, b: str) -> int:
        return bin(int(a, 16) ^ int(b, 16)).count("1")

    bright = np.clip(img.astype(np.float32) * 1.1, 0, 255).astype(np.uint8)
    half = np.asarray(Image.fromarray(img).resize((48, 48), Image.BILINEAR))
    assert phash(img) == phash(img.copy())
    assert dist(phash(img), phash(bright)) <= DEFAULT_THRESHOLD
    assert dist(phash(img), phash(half)) <= DEFAULT_THRESHOLD
    assert dist(h[0], h[1]) > DEFAULT_THRESHOLD


def test_pair_search_matches_brute_force_across_chunks() -> None:
    rng = np.random.default_rng(1)
    base = rng.integers(0, 2**63, size=(40, 4), dtype=np.uint64)
    flips = rng.integers(0, 2**63, size=(40, 4), dtype=np.uint64) & rng.integers(0, 2**63, size=(40, 4), dtype=np.uint64)
    h = np.concatenate([base, base ^ (flips & np.uint64(0xF0F))])  # near copies of each row
    full = hamming(h[:, None, :], h[None, :, :]).astype(int)
    want = {(i, j) for i in range(len(h)) for j in range(i + 1, len(h)) if full[i, j] <= 20}
    i, j, d = near_duplicate_pairs(h, 20, chunk=7)  # small chunks exercise the offsets
    assert set(zip(i.tolist(), j.tolist())) == want and len(i) == len(want) >= 40
    assert all(full[a, b] == c for a, b, c in zip(i, j, d))
    dist, pos = nearest_neighbours(h[:40], h[40:], chunk=9)
    assert np.array_equal(dist, full[:40, 40:].min(axis=1)) and np.array_equal(full[np.arange(40), 40 + pos], dist)


def test_connected_groups_are_transitive_and_deterministic() -> None:
    g = connected_groups(6, np.array([4, 1, 2]), np.array([5, 2, 3]))
    assert g.tolist() == [0, 1, 1, 1, 4, 4]


def test_hash_cache_reuses_entries_and_notices_edits(tmp_path: Path, monkeypatch) -> None:
    root = make_phantom_dataset(tmp_path / "ds", layout="flat", n_per_class=3, size=32, seed=0)
    index = load_dataset(DataConfig(root=str(root)))
    first = hash_samples(index, cache_dir=tmp_path / "cache")
    assert (tmp_path / "cache" / hashing.CACHE_FILE).is_file()
    assert not list((tmp_path / "cache").glob("*.tmp"))  # atomic write leaves no temp file
    calls = []
    real = hashing.hash_file
    monkeypatch.setattr(hashing, "hash_file", lambda p, *a: calls.append(p) or real(p, *a))
    assert hash_samples(index, cache_dir=tmp_path / "cache") == first and calls == []
    edited = Path(index.samples[0].path)
    Image.fromarray(np.full((32, 32), 200, np.uint8)).save(edited)  # new size/mtime -> recomputed
    again = hash_samples(index, cache_dir=tmp_path / "cache")
    assert calls == [index.samples[0].path] and again[0] != first[0] and again[1:] == first[1:]


def test_corrupt_hash_cache_is_ignored(tmp_path: Path) -> None:
    root = make_phantom_dataset(tmp_path / "ds", layout="flat", n_per_class=2, size=32, seed=0)
    index = load_dataset(DataConfig(root=str(root)))
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / hashing.CACHE_FILE).write_text("{not json")
    hashes = hash_samples(index, cache_dir=tmp_path / "cache")
    assert all(h.ok for h in hashes)
    assert len(HashCache(tmp_path / "cache").entries) == len(index.samples)


# ---------------------------------------------------------------------------------------------- audit


def test_audit_counts_and_json_keys(planted: dict) -> None:
    r, index = planted["report"], planted["index"]
    assert r["images"] == len(index.samples) == 4 * 11 + 7
    assert r["counts"] == index.counts() and sum(r["splits"].values()) == r["images"]
    assert r["threshold"] == THRESHOLD
    for key in ("test_images", "test_images_with_train_near_duplicate", "by_class"):
        assert key in r["cross_split"]
    assert r["cross_split"]["test_images"] == 4 * 3 + 3
    assert r["readable"] == r["images"] - 2 and r["sizes"]["64x64"] >= 40 and r["sizes"]["48x48"] == 1
    assert r["formats"] == {"PNG": r["readable"] - 1, "JPEG": 1}
    json.dumps(r)  # JSON-able


def test_audit_reports_unreadable_files_and_continues(planted: dict) -> None:
    bad = {u["path"]: u["reason"] for u in planted["report"]["unreadable"]}
    assert set(bad) == planted["unreadable"]
    assert all(reason for reason in bad.values())


def test_audit_finds_the_planted_exact_duplicate(planted: dict) -> None:
    exact = planted["report"]["exact_duplicates"]
    assert planted["report"]["exact_duplicate_groups"] == exact["pixels"]["groups"] == 1
    assert exact["file_bytes"]["groups"] == 1
    (group,) = exact["file_bytes"]["examples"]
    assert sorted(g.rsplit(":", 1)[1] for g in group) == sorted(str(p) for p in planted["exact"])


def test_audit_finds_cross_split_near_duplicates_by_class(planted: dict) -> None:
    cross = planted["report"]["cross_split"]
    assert cross["test_images_with_train_near_duplicate"] == 3
    assert cross["by_class"] == {"glioma": 0, "meningioma": 1, "notumor": 1, "pituitary": 1}
    leaked = {p["a"] for p in cross["closest_pairs"][:3]}
    assert leaked == {str(planted[k]) for k in ("bright", "jpeg", "resized")}
    assert all(p["a_split"] == "test" and p["b_split"] != "test" for p in cross["closest_pairs"])
    assert sum(cross["nearest_train_distance_histogram"].values()) == cross["test_images"]


def test_audit_finds_label_conflicts(planted: dict) -> None:
    r = planted["report"]
    assert r["label_conflicts"] == 1
    (pair,) = r["near_duplicates"]["label_conflict_examples"]
    assert {pair["a"], pair["b"]} == {str(p) for p in planted["conflict"]}
    assert {pair["a_label"], pair["b_label"]} == {"glioma", "notumor"}


def test_montage_png_is_written(planted: dict, tmp_path: Path) -> None:
    out = write_montage(planted["index"], planted["report"]["cross_split"]["closest_pairs"], tmp_path / "m.png", 4)
    with Image.open(out) as img:
        assert img.format == "PNG" and img.width > 400 and img.height > 200


def test_npz_members_are_hashed_and_duplicates_found(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    arrays = np.stack([make_phantom(k % 2, 48, rng) for k in range(6)])
    arrays[5] = arrays[0]  # exact copy, other split
    samples = [Sample("set.npz", k % 2, "test" if k >= 4 else "train", index=k) for k in range(6)]
    index = DatasetIndex(str(tmp_path), ["a", "b"], samples, arrays=arrays)
    r = audit_index(index, THRESHOLD, use_cache=False)
    assert r["readable"] == 6 and r["modes"] == {"array": 6}
    assert r["exact_duplicate_groups"] == 1 and r["exact_duplicates"]["file_bytes"]["groups"] == 0
    assert r["cross_split"]["test_images_with_train_near_duplicate"] == 1
    assert find_test_leaks(index, THRESHOLD) == {"set.npz#5": 0}
    assert leak_free_test_mask(index, THRESHOLD) == [True, False]


# ---------------------------------------------------------------------------------------------- leak-free


def test_test_leak_helpers_agree(planted: dict) -> None:
    index, cache = planted["index"], planted["cache"]
    dists = nearest_train_distances(index, cache_dir=cache)
    assert set(dists) == {s.path for s in index.split("test")}
    leaks = find_test_leaks(index, THRESHOLD, cache_dir=cache)
    assert set(leaks) == {str(planted[k]) for k in ("bright", "jpeg", "resized")}
    mask = leak_free_test_mask(index, THRESHOLD, cache_dir=cache)
    assert len(mask) == len(index.split("test")) and mask.count(False) == 3
    assert all(ok == (s.path not in leaks) for s, ok in zip(index.split("test"), mask))


def test_leak_free_split_keeps_groups_together(planted: dict) -> None:
    index, cache = planted["index"], planted["cache"]
    new = leak_free_split(index, THRESHOLD, val_ratio=0.15, test_ratio=0.2, seed=1, cache_dir=cache)
    assert [(s.path, s.label) for s in new.samples] == [(s.path, s.label) for s in index.samples]
    assert new.class_names == index.class_names and not new.official_split
    groups = near_duplicate_groups(index, THRESHOLD, cache_dir=cache)
    split_of_group: dict[int, set] = {}
    for g, s in zip(groups.tolist(), new.samples):
        split_of_group.setdefault(g, set()).add(s.split)
    assert all(len(v) == 1 for v in split_of_group.values())
    assert sum(Counter(groups.tolist())[g] > 1 for g in split_of_group) == 5  # planted groups
    n = Counter(s.split for s in new.samples)
    assert abs(n["test"] / len(new.samples) - 0.2) < 0.08 and abs(n["val"] / len(new.samples) - 0.15) < 0.08
    for split in ("train", "val", "test"):
        assert {s.label for s in new.samples if s.split == split} == {0, 1, 2, 3}
    r = audit_index(new, THRESHOLD, cache_dir=cache)
    assert r["cross_split"]["test_images_with_train_near_duplicate"] == 0


def test_leak_free_split_is_deterministic_by_seed(planted: dict) -> None:
    index, cache = planted["index"], planted["cache"]
    a, b, c = (leak_free_split(index, THRESHOLD, 0.1, 0.2, seed=s, cache_dir=cache) for s in (7, 7, 8))
    splits = [[s.split for s in x.samples] for x in (a, b, c)]
    assert splits[0] == splits[1] and splits[0] != splits[2]


# ---------------------------------------------------------------------------------------------- CLI


def test_cli_writes_json_and_montage(planted: dict, tmp_path: Path, capsys) -> None:
    out, png = tmp_path / "audit.json", tmp_path / "pairs.png"
    rc = main(["data", "audit", str(planted["root"]), "--json", str(out), "--montage", str(png),
               "--threshold", str(THRESHOLD), "--cache-dir", str(tmp_path / "c"), "--montage-pairs", "3"])
    assert rc == 0
    report = json.loads(out.read_text())
    assert report["images"] == planted["report"]["images"] and report["label_conflicts"] == 1
    assert report["cross_split"]["test_images_with_train_near_duplicate"] == 3
    assert png.stat().st_size > 1000
    text = capsys.readouterr().out
    assert "test images with a near-duplicate in train/val: 3 of 15" in text and "garbage.png" in text


def test_cli_refuses_bad_threshold_and_missing_folder(tmp_path: Path, capsys) -> None:
    assert main(["data", "audit", str(tmp_path), "--threshold", "999"]) == 2
    assert "--threshold" in capsys.readouterr().err
    assert main(["data", "audit", str(tmp_path / "missing"), "--no-cache"]) == 2
    assert "missing" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- real data


@pytest.mark.realdata
@pytest.mark.slow
def test_audit_on_the_real_tumor_set(real_datasets: Path, tmp_path: Path) -> None:
    root = real_datasets / "brain-tumor-mri"
    if not root.is_dir():
        pytest.skip(f"{root} not found")
    index = load_dataset(DataConfig(root=str(root)))
    r = audit_index(index, cache_dir=tmp_path)
    assert r["images"] == 7023 and r["readable"] == 7023 and r["unreadable"] == []
    assert r["cross_split"]["test_images"] == 1311
    assert r["exact_duplicate_groups"] > 0 and r["cross_split"]["test_images_with_train_near_duplicate"] > 0
    assert len(r["extension_mismatch"]) == 5  # PNG files named .jpg
    assert r["label_conflicts"] == 0  # no cross-label pair within the default threshold (checked by eye)


def test_a_symlink_loop_is_skipped_by_name_not_a_crash(tmp_path, capsys):
    from brainmri.cli.main import main
    from brainmri.data.synthetic import make_phantom_dataset

    root = make_phantom_dataset(tmp_path / "ds", layout="split", n_per_class=3, test_per_class=2, size=32, seed=0)
    folder = root / "Training" / "glioma"
    (folder / "loop1.png").symlink_to(folder / "loop2.png")
    (folder / "loop2.png").symlink_to(folder / "loop1.png")
    assert main(["data", "audit", str(root), "--json", str(tmp_path / "a.json")]) == 0  # the hash cache used to raise RuntimeError
    captured = capsys.readouterr()
    assert "internal error" not in captured.err and "loop1.png" in captured.out + captured.err
