"""Output paths are checked before the work (brainmri.cli.outputs), and OS errors are one line, exit 2."""
from __future__ import annotations

import numpy as np
import pytest

from brainmri.cli import main as cli_main
from brainmri.cli.outputs import OutputPathError, check_output_dir, check_output_file


def test_output_file_checks_name_the_flag_and_the_problem(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    check_output_file(tmp_path / "new" / "deeper" / "x.json", "--json")  # creatable: fine
    assert not (tmp_path / "new").exists()  # and nothing was created by checking
    with pytest.raises(OutputPathError, match=r"^--json .*: is a folder"):
        check_output_file(tmp_path, "--json")
    with pytest.raises(OutputPathError, match=r"afile is a file, not a folder"):
        check_output_file(afile / "x.json", "--json")
    with pytest.raises(OutputPathError, match=r"^-o .*: is the input file"):
        check_output_file(afile, "-o", not_same_as=[str(afile)])
    with pytest.raises(OutputPathError, match=r"cannot write in /proc"):
        check_output_file("/proc/nope/x.json", "--json")


def test_an_output_never_replaces_a_scan_of_the_dataset_or_a_device(tmp_path, phantom_split, capsys):
    scan = next((phantom_split / "Testing" / "glioma").iterdir())
    before = scan.read_bytes()
    with pytest.raises(OutputPathError, match=r"^--json .*glioma.*: is an existing file inside the dataset .*; writing there would destroy it"):
        check_output_file(scan, "--json", not_same_as=[phantom_split])
    with pytest.raises(OutputPathError, match=r"^--montage .*pairs.png: is an image name inside the dataset .*add it to the dataset as a scan"):
        check_output_file(phantom_split / "Training" / "pairs.png", "--montage", not_same_as=[phantom_split])
    check_output_file(phantom_split / "summary.json", "--json", not_same_as=[phantom_split])  # a new non-image file there: fine
    check_output_file(tmp_path / "scan.png", "--montage", not_same_as=[phantom_split])  # outside: fine
    with pytest.raises(OutputPathError, match=r"^--json /dev/full: is not a regular file"):
        check_output_file("/dev/full", "--json")
    assert cli_main.main(["data", "audit", str(phantom_split), "--json", str(scan)]) == 2
    assert "inside the dataset" in capsys.readouterr().err and scan.read_bytes() == before


def test_output_dir_checks(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    check_output_dir(tmp_path / "new", "--out")
    with pytest.raises(OutputPathError, match=r"^--out .*afile: is a file, not a folder"):
        check_output_dir(afile, "--out")
    with pytest.raises(OutputPathError, match=r"afile is a file, not a folder"):
        check_output_dir(afile / "sub", "--out")


def test_an_os_error_in_a_command_is_one_line_exit_2(monkeypatch, capsys):
    def boom(args):
        raise IsADirectoryError(21, "Is a directory", "some/out")

    parser = cli_main.build_parser
    monkeypatch.setattr(cli_main, "build_parser", lambda: _with_func(parser(), boom))
    assert cli_main.main(["info"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "brainmri info: error: some/out: Is a directory"


def _with_func(parser, func):
    orig = parser.parse_args

    def parse(argv=None):
        ns = orig(argv)
        ns.func = func
        return ns

    parser.parse_args = parse
    return parser


def test_compare_and_train_outputs_never_go_inside_the_dataset(tmp_path, capsys):
    main = cli_main.main
    from brainmri.data.synthetic import make_phantom_dataset

    data = make_phantom_dataset(tmp_path / "syn", layout="split", n_per_class=4, test_per_class=2, size=32, seed=0)
    before = sorted(str(p) for p in data.rglob("*"))
    assert main(["compare", "--data", str(data), "--models", "seed002_cnn", "--epochs", "1", "--out", str(data / "Training" / "glioma")]) == 2
    assert "lies inside the dataset" in capsys.readouterr().err
    assert main(["train", "--data", str(data), "--model", "seed002_cnn", "--epochs", "1", "--output-dir", str(data / "runs"), "--dry-run"]) == 2
    assert "--output-dir" in capsys.readouterr().err
    assert sorted(str(p) for p in data.rglob("*")) == before


def test_outputs_never_replace_a_scan_beside_a_csv_dataset_or_its_labels_csv(tmp_path, capsys):
    from brainmri.data.synthetic import make_phantom_dataset

    main = cli_main.main
    root = make_phantom_dataset(tmp_path / "csvset", layout="csv", n_per_class=3, size=32, seed=0)
    csv_file = root / "labels.csv"
    scan = next(p for p in root.rglob("*.png"))
    before = scan.read_bytes()
    assert main(["data", "audit", str(csv_file), "--montage", str(scan), "--force"]) == 2
    assert "beside the dataset file" in capsys.readouterr().err and scan.read_bytes() == before
    labels = csv_file.read_bytes()
    assert main(["data", "audit", str(root), "--csv", "labels.csv", "--json", str(csv_file), "--force"]) == 2
    assert "writing there would destroy it" in capsys.readouterr().err and csv_file.read_bytes() == labels


def _scans(folder, n=3):
    from PIL import Image

    from brainmri.data.synthetic import make_phantom

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(make_phantom(0, 32, np.random.default_rng(i), class_name="glioma")).save(folder / f"s{i}.png")
    return folder


@pytest.mark.parametrize("flag, value", [("--csv", "new.png"), ("--csv", "s0.png"), ("--explain", "cams"), ("--json", "s1.png")])
def test_predict_writes_nothing_into_an_input_folder_it_was_given(flag, value, tmp_path, ckpt32, cli):
    ds = _scans(tmp_path / "ds")
    before = sorted((p.name, p.read_bytes()) for p in ds.rglob("*") if p.is_file())
    for spec in (str(ds), str(ds / "**" / "*.png")):  # a folder, or a recursive glob below it
        code, text = cli("predict", spec, "-c", ckpt32, flag, ds / value)
        assert code == 2 and "inside the dataset" in text, text
    assert sorted((p.name, p.read_bytes()) for p in ds.rglob("*") if p.is_file()) == before


def test_predict_explain_overlays_are_marked_and_a_folder_of_scans_is_refused(tmp_path, ckpt32, cli):
    from brainmri.outputs import written_by_brainmri

    ds, out = _scans(tmp_path / "ds"), tmp_path / "maps"
    code, _ = cli("predict", ds, "-c", ckpt32, "--explain", out)
    assert code == 0 and (maps := sorted(out.iterdir())) and all(written_by_brainmri(m) for m in maps)
    assert cli("predict", ds, "-c", ckpt32, "--explain", out)[0] == 0  # a rerun replaces its own overlays
    other = _scans(tmp_path / "other_scans")
    code, text = cli("predict", ds, "-c", ckpt32, "--explain", other)
    assert code == 2 and "holds 3 image(s) brainmri did not write" in text


def test_explain_out_inside_an_input_folder_is_refused(tmp_path, ckpt32, cli):
    ds = _scans(tmp_path / "ds")
    code, text = cli("explain", ckpt32, ds, "--out", ds / "maps")
    assert code == 2 and "inside the dataset" in text and not (ds / "maps").exists()


def test_explain_names_keep_letters_of_any_script(tmp_path, ckpt32, cli):
    from PIL import Image

    from brainmri.data.synthetic import make_phantom

    ds = tmp_path / "ds"
    ds.mkdir()
    for i, name in enumerate(("患者甲.png", "患者乙.png")):
        Image.fromarray(make_phantom(0, 32, np.random.default_rng(i), class_name="glioma")).save(ds / name)
    assert cli("explain", ckpt32, ds, "--out", tmp_path / "maps")[0] == 0
    names = {p.name for p in (tmp_path / "maps").iterdir()}
    assert {"患者甲_overlay.png", "患者乙_overlay.png"} <= names


def test_a_plain_glob_guards_its_own_folder_not_its_subfolders(tmp_path, ckpt32, cli):
    ds = _scans(tmp_path / "ds")
    code, text = cli("predict", ds / "*.png", "-c", ckpt32, "--csv", ds / "out.png")  # the glob would read it next time
    assert code == 2 and "inside the dataset" in text
    assert cli("predict", ds / "*.png", "-c", ckpt32, "--explain", ds / "maps")[0] == 0  # ds/*.png never reads ds/maps
