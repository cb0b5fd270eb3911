"""Extra tumor-presence training sources (``data.extra_train``) and synthetic lesions in a run."""
from __future__ import annotations

from pathlib import Path

import pytest

from brainmri.checkpoint import load_checkpoint
from brainmri.data.presence import load_extra_sources, parse_spec
from brainmri.data.sampling import balanced_sampler
from brainmri.data.synthetic import make_phantom_dataset
from brainmri.errors import ConfigError
from brainmri.evaluation.cross_source import evaluate_tumor_presence, summary_lines
from brainmri.preprocess.lesion import PRESENCE
from brainmri.training import run_training

TUMOR4 = ["glioma", "meningioma", "notumor", "pituitary"]


def test_parse_spec():
    assert parse_spec("data/yes_no") == ("data/yes_no", None)
    assert parse_spec("data/alz=notumor") == ("data/alz", "notumor")
    assert parse_spec("x=tumor") == ("x", "tumor")
    with pytest.raises(ConfigError, match="must be one of"):
        parse_spec("data/alz=healthy")


def test_yes_no_folders_become_presence_and_healthy_labels(tmp_path):
    yn = make_phantom_dataset(tmp_path / "yn", layout="flat", class_names=("no", "yes"), n_per_class=3, size=32, seed=1)
    alz = make_phantom_dataset(tmp_path / "alz", layout="flat", class_names=("Mild", "Non"), n_per_class=2, size=32, seed=2)
    samples, summary = load_extra_sources([str(yn), f"{alz}=notumor"], TUMOR4)
    labels = sorted(s.label for s in samples)
    assert labels == [PRESENCE] * 3 + [2] * 7  # 3 yes -> presence; 3 no + 4 Alzheimer -> notumor
    assert all(s.split == "train" for s in samples)
    assert [{k: v for k, v in e.items() if k not in ("files", "phashes")} for e in summary] == [
        {"source": str(yn), "label": "folders", "n_tumor": 3, "n_notumor": 3, "repeat": 1},
        {"source": str(alz), "label": "notumor", "n_tumor": 0, "n_notumor": 4, "repeat": 1},
    ]
    assert len(summary[1]["files"]) == 4 and summary[1]["files"][0].startswith("alz/")
    assert len(summary[1]["phashes"]) == 4 and all(len(h) == 64 for h in summary[1]["phashes"])  # 256-bit pHashes


def test_extra_sources_can_be_capped_per_source(tmp_path):
    alz = make_phantom_dataset(tmp_path / "alz", layout="flat", class_names=("Mild", "Non"), n_per_class=10, size=32, seed=2)
    a, summary = load_extra_sources([f"{alz}=notumor"], TUMOR4, seed=1, max_per_source=7)
    b, _ = load_extra_sources([f"{alz}=notumor"], TUMOR4, seed=1, max_per_source=7)
    assert len(a) == 7 and summary[0]["n_notumor"] == 7
    assert [s.path for s in a] == [s.path for s in b]  # seeded
    assert len({s.path for s in a}) == 7


def test_extra_sources_repeat_each_image_and_read_a_csv_of_one_fold(tmp_path):
    yn = make_phantom_dataset(tmp_path / "yn", layout="flat", class_names=("no", "yes"), n_per_class=4, size=32, seed=3)
    picked = sorted((yn / "yes").iterdir())[:2]
    csv = tmp_path / "fold.csv"
    csv.write_text("Image,Class\n" + "".join(f"{p.resolve()},yes\n" for p in picked))
    samples, summary = load_extra_sources([f"{csv}=tumor"], TUMOR4, repeat=3)
    assert sorted(Path(s.path).name for s in samples) == sorted([p.name for p in picked] * 3)
    assert {s.label for s in samples} == {PRESENCE}
    assert summary[0]["n_tumor"] == 2 and summary[0]["repeat"] == 3  # counted once, drawn three times
    with pytest.raises(ConfigError, match="extra_repeat"):
        load_extra_sources([f"{csv}=tumor"], TUMOR4, repeat=0)


def test_extra_sources_need_a_notumor_class_and_an_existing_folder(tmp_path):
    with pytest.raises(ConfigError, match="notumor"):
        load_extra_sources([str(tmp_path)], ["Mild", "Non"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_extra_sources([str(tmp_path / "missing")], TUMOR4)


def test_an_extra_source_must_be_another_set_given_once(tmp_path):
    main = make_phantom_dataset(tmp_path / "main", layout="split", n_per_class=2, test_per_class=1, size=32)
    yn = make_phantom_dataset(tmp_path / "yn", layout="flat", class_names=("no", "yes"), n_per_class=2, size=32)
    for spec, message in ((str(main), "is the training dataset"), (f"{main / 'Testing'}=tumor", "overlaps the training dataset"),
                          (str(tmp_path), "overlaps the training dataset"), ("=tumor", "the path is empty")):
        with pytest.raises(ConfigError, match=message):
            load_extra_sources([spec], TUMOR4, main_root=str(main))
    csv = tmp_path / "list.csv"
    test_image = next((main / "Testing" / "glioma").iterdir())
    csv.write_text(f"Image,Class\n{test_image.resolve()},yes\n")
    with pytest.raises(ConfigError, match=r"lists .*glioma.*, an image of the training dataset"):
        load_extra_sources([f"{csv}=tumor"], TUMOR4, main_root=str(main))
    with pytest.raises(ConfigError, match="the same source as"):
        load_extra_sources([str(yn), str(tmp_path / "." / "yn")], TUMOR4, main_root=str(main))
    samples, _ = load_extra_sources([str(yn)], TUMOR4, main_root=str(main))
    assert len(samples) == 4


def test_balanced_sampler_accepts_presence_rows():
    sampler = balanced_sampler([0, 0, 0, 1, PRESENCE], num_samples=4000, seed=0)
    drawn = list(sampler)
    assert sum(i == 4 for i in drawn) == pytest.approx(4000 / 3, rel=0.15)  # its own group, a third of the draws


def test_run_with_extra_source_and_lesions_records_them_and_flags_the_source(tiny_run_config, tmp_path):
    yn = make_phantom_dataset(tmp_path / "yn", layout="flat", class_names=("no", "yes"), n_per_class=6, size=48, seed=4)
    cfg = tiny_run_config(epochs=1)
    cfg.data.extra_train = [str(yn)]
    cfg.data.balanced_sampler = True
    cfg.augment.lesion = 0.5
    cfg.data.extra_lesions = False
    result = run_training(cfg, progress=False)
    _, meta = load_checkpoint(result.checkpoint)
    assert meta.data["extra_lesions"] is False
    (recorded,) = meta.data["extra_train"]
    assert {k: v for k, v in recorded.items() if k not in ("files", "phashes")} == {"source": str(yn), "label": "folders", "n_tumor": 6, "n_notumor": 6, "repeat": 1}
    assert len(recorded["files"]) == 12 and all(f.startswith("yn/") for f in recorded["files"])  # dataset/class/file
    assert meta.train["augment"]["lesion"] == 0.5
    r = evaluate_tumor_presence(result.checkpoint, yn, cache_dir=None)
    assert "not a cross-source test" in r["warning"]
    assert summary_lines(r)[0].startswith("WARNING")
    other = make_phantom_dataset(tmp_path / "other", layout="flat", class_names=("no", "yes"), n_per_class=2, size=48, seed=5)
    assert "warning" not in evaluate_tumor_presence(result.checkpoint, other, cache_dir=None)


def test_exclude_trained_scores_only_the_images_a_run_never_saw(tiny_run_config, tmp_path):
    healthy = make_phantom_dataset(tmp_path / "healthy", layout="flat", class_names=("no", "yes"), n_per_class=5, size=48, seed=6) / "no"
    picked = sorted(healthy.iterdir())[:2]
    csv = tmp_path / "pick.csv"
    csv.write_text("Image,Class\n" + "".join(f"{p.resolve()},no\n" for p in picked))
    cfg = tiny_run_config(epochs=1)
    cfg.data.extra_train = [f"{csv}=notumor"]
    ckpt = run_training(cfg, progress=False).checkpoint
    r = evaluate_tumor_presence(ckpt, healthy, assume_label="notumor", cache_dir=None)
    assert r["n"] == 5 and "trained on 2 of these 5 images" in r["warning"] and "--exclude-trained" in r["warning"]
    r = evaluate_tumor_presence(ckpt, healthy, assume_label="notumor", cache_dir=None, exclude_trained=True)
    assert r["n"] == 3 and r["excluded_seen"]["n_excluded_trained"] == 2
    assert not {Path(p).name for p in r["paths"]} & {p.name for p in picked}
    assert "other images of this source" in r["warning"]  # held out, yet not another source
    assert "left out 2 image(s) the model was trained on (data.extra_train)" in "\n".join(summary_lines(r))
    only = tmp_path / "copy" / "healthy" / "no"  # the same dataset/class/file names on another machine
    only.mkdir(parents=True)
    for p in picked:
        (only / p.name).write_bytes(p.read_bytes())
    with pytest.raises(ConfigError, match="trained on every image here"):
        evaluate_tumor_presence(ckpt, only, assume_label="notumor", cache_dir=None, exclude_trained=True)


def test_exclude_trained_knows_a_trained_image_renamed_or_re_encoded(tiny_run_config, tmp_path):
    from PIL import Image

    healthy = make_phantom_dataset(tmp_path / "healthy", layout="flat", class_names=("no", "yes"), n_per_class=5, size=48, seed=6) / "no"
    picked = sorted(healthy.iterdir())[:2]
    cfg = tiny_run_config(epochs=1)
    cfg.data.extra_train = [f"{healthy}=notumor"]
    cfg.data.extra_max_per_source = 2
    ckpt = run_training(cfg, progress=False).checkpoint
    _, meta = load_checkpoint(ckpt)
    trained = {Path(f).name for f in meta.data["extra_train"][0]["files"]}
    site = tmp_path / "site" / "scans"  # another site's folder: its own names, one copy re-saved as JPEG
    site.mkdir(parents=True)
    fresh = [p for p in sorted(healthy.iterdir()) if p.name not in trained]
    for i, p in enumerate(fresh):
        (site / f"unseen_{i}.png").write_bytes(p.read_bytes())
    copies = [p for p in sorted(healthy.iterdir()) if p.name in trained]
    (site / "renamed.png").write_bytes(copies[0].read_bytes())
    Image.open(copies[1]).convert("L").save(site / "re_encoded.jpg", quality=70)
    r = evaluate_tumor_presence(ckpt, site, assume_label="notumor", cache_dir=None)
    assert r["n"] == 5 and "trained on 2 of these 5 images under other names" in r["warning"]
    r = evaluate_tumor_presence(ckpt, site, assume_label="notumor", cache_dir=None, exclude_trained=True)
    assert sorted(Path(p).name for p in r["paths"]) == [f"unseen_{i}.png" for i in range(3)]
    assert r["excluded_seen"]["n_excluded_trained"] == 2 and r["excluded_seen"]["n_excluded_trained_copies"] == 2
    assert "left out 2 image(s) the model was trained on (data.extra_train, 2 of them copies under other names)" in "\n".join(summary_lines(r))
    assert "warning" not in r  # what is left is a fair test


def test_exclude_trained_says_when_a_checkpoint_can_match_names_only():
    r = {"data": "d", "n": 3, "assume_label": "notumor", "predicted": {}, "excluded_seen": {"n_excluded_trained": 0, "trained_hashes": False}}
    assert "matched by file name only: this checkpoint records no image hashes" in "\n".join(summary_lines(r))


def test_a_fold_of_a_trained_source_is_flagged_by_file_names_not_only_by_folder(tmp_path):
    from types import SimpleNamespace

    from brainmri.evaluation.cross_source import _trained_on_warning

    trained = [f"/data/brain-mri-yes-no/yes/Y{i}.jpg" for i in range(4)]
    meta = SimpleNamespace(data={"extra_train": [{"source": "runs/folds/train_except0.csv", "files": ["brain-mri-yes-no/yes/Y0.jpg", "brain-mri-yes-no/yes/Y1.jpg"]}]})
    w = _trained_on_warning("m.safetensors", meta, "/elsewhere/fold.csv", trained)  # another machine, same files
    assert "trained on 2 of these 4 images" in w
    held_out = ["/x/brain-mri-yes-no/yes/Y7.jpg", "/x/brain-mri-yes-no/yes/Y8.jpg"]
    assert "other images of this source" in _trained_on_warning("m.safetensors", meta, "fold0.csv", held_out)
    other_source = ["/x/another-set/yes/Y7.jpg"]
    assert _trained_on_warning("m.safetensors", meta, "other", other_source) is None
    assert _trained_on_warning("m.safetensors", SimpleNamespace(data={}), "other", held_out) is None
    # a volume whose slices (scripts/volume_slices.py) were trained on; another volume is not flagged
    meta = SimpleNamespace(data={"extra_train": [{"source": "~/.cache/brainmri/slices/M2307_T2",
                                                  "files": ["slices/M2307_T2/M2307_T2_axial_016.png", "slices/M2307_T2/M2307_T2_axial_017.png"]}]})
    vol = "/data/nifti/M2307_T2.nii.gz"
    assert "trained on 2 slices of this volume" in _trained_on_warning("m.safetensors", meta, vol, [vol] * 80)
    assert _trained_on_warning("m.safetensors", meta, "/data/nifti/T1.nii.gz", ["/data/nifti/T1.nii.gz"] * 80) is None


def test_a_labelled_flat_folder_is_every_image_below_it(tmp_path, monkeypatch):
    # e.g. the slices scripts/volume_slices.py writes: no class folders, no CSV
    src = make_phantom_dataset(tmp_path / "src", layout="flat", class_names=("a",), n_per_class=3, size=32, seed=4,
                              formats=("png",)) / "a"
    flat = tmp_path / "home" / "slices" / "vol"
    flat.mkdir(parents=True)
    for i, p in enumerate(sorted(src.iterdir())):
        (flat / f"vol_axial_{i:03d}{p.suffix}").write_bytes(p.read_bytes())
    (flat / "notes.txt").write_text("not an image")
    (flat / ".hidden.png").write_bytes(b"junk")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    samples, summary = load_extra_sources(["~/slices/vol=notumor"], TUMOR4, repeat=2)
    assert len(samples) == 6 and {s.label for s in samples} == {TUMOR4.index("notumor")}
    assert summary[0]["source"] == str(flat) and summary[0]["n_notumor"] == 3
    assert summary[0]["files"] == [f"slices/vol/vol_axial_{i:03d}.png" for i in range(3)]
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.md").write_text("x")
    with pytest.raises(ConfigError, match="no image files under"):
        load_extra_sources([f"{empty}=notumor"], TUMOR4)


def test_skull_strip_skip_must_name_classes_of_the_dataset(tiny_run_config):
    cfg = tiny_run_config(epochs=1)
    cfg.augment.skull_strip = 0.5
    cfg.augment.skull_strip_skip = ["pituitry"]
    with pytest.raises(ConfigError, match=r"skull_strip_skip names \['pituitry'\]"):
        run_training(cfg, progress=False)
