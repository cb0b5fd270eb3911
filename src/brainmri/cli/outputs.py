"""Output paths checked before the work starts: a command that would run for minutes and then
fail to write its ``--json`` / ``--report`` / ``--out`` must fail in a second instead, naming the
flag, the path and the problem (never a traceback after the work, never lost work)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from brainmri.errors import BrainMRIError
from brainmri.outputs import written_by_brainmri


class OutputPathError(BrainMRIError):
    """An output path cannot be written (a folder where a file is wanted, a read-only place...)."""


def _creatable_dir(d: Path, flag: str, path: str | Path) -> None:
    """``d`` is, or can be made, a writable folder (checked without creating anything)."""
    probe = d
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise OutputPathError(f"{flag} {path}: {probe} is a file, not a folder")
    try:  # a real probe: permission bits say nothing for root or on /proc-like file systems
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        raise OutputPathError(f"{flag} {path}: cannot write in {probe} ({exc.strerror or exc})") from None


def check_output_file(path: str | Path | None, flag: str, *, not_same_as: list[str | Path] = (), force: bool | None = None) -> None:
    """Refuse ``path`` as an output *file* if it is a folder, not a regular file (a device, FIFO),
    lies under a file or in a place that cannot be written, is one of the inputs in
    ``not_same_as`` (writing would destroy it), or lies inside an input *folder* there (a dataset)
    as an existing file or an image name (it would replace a scan, or join the dataset as one).

    With ``force`` given (a command's ``--force``), an existing file is replaced only if brainmri
    wrote it (:func:`brainmri.outputs.written_by_brainmri`: a rerun replaces its own output) or
    ``force`` is true; ``None`` leaves existing files to the caller's own rule."""
    from brainmri.data.io import is_image_name

    if path is None:
        return
    p = Path(path).expanduser()
    if p.is_dir():
        raise OutputPathError(f"{flag} {path}: is a folder; give a file name")
    if p.exists() and not p.is_file():
        raise OutputPathError(f"{flag} {path}: is not a regular file (a device or FIFO); give a file name")
    for src in not_same_as:
        data_file = Path(src).expanduser()
        if data_file.is_file() and data_file.suffix.lower() in (".csv", ".npz") and _under(p, data_file.parent) and is_image_name(p):
            raise OutputPathError(f"{flag} {path}: is an image name beside the dataset file {src}, where its scans live; writing there "
                                  f"would {'destroy a scan' if p.exists() else 'add it to the dataset as a scan'}; write outside it")
    for src in not_same_as:
        folder = Path(src).expanduser()
        if folder.is_dir() and _under(p, folder) and (p.exists() or is_image_name(p)):
            what = "an existing file" if p.exists() else "an image name"
            raise OutputPathError(f"{flag} {path}: is {what} inside the dataset {src}; writing there would "
                                  f"{'destroy it' if p.exists() else 'add it to the dataset as a scan'}; write outside it")
    for src in not_same_as:
        try:
            same = p.exists() and Path(src).exists() and os.path.samefile(p, src)  # symlinks and hard links too
        except OSError:
            continue
        if same:
            raise OutputPathError(f"{flag} {path}: is the input file {src}; writing there would destroy it")
    if force is False and p.is_file() and not written_by_brainmri(p):
        raise OutputPathError(f"{flag} {path}: the file exists and brainmri did not write it; pass --force to replace it, "
                              "or give another name")
    if p.exists() and not os.access(p, os.W_OK):
        raise OutputPathError(f"{flag} {path}: the file is read-only")
    _creatable_dir(p.parent if str(p.parent) else Path("."), flag, path)


def check_distinct_outputs(*outputs: tuple[str, str | Path | None]) -> None:
    """Refuse two output flags naming one file (the second would silently replace the first)."""
    seen: dict[Path, str] = {}
    for flag, path in outputs:
        if path is None:
            continue
        key = Path(path).expanduser().resolve()
        if key in seen:
            raise OutputPathError(f"{seen[key]} and {flag} name the same file {path}; give two files")
        seen[key] = flag


def _under(p: Path, folder: Path) -> bool:
    try:
        return p.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError):
        return False


def check_not_inside(p: Path, flag: str, folders, shown: str | Path | None = None) -> None:
    """Refuse an output folder ``p`` that is or lies inside one of the dataset ``folders`` (its
    figures would join the dataset as scans, its folders as classes)."""
    for data in folders:
        folder = Path(data).expanduser()
        if folder.is_dir() and _under(Path(p).expanduser(), folder):  # (a CSV's folder may be a project folder: not refused)
            raise OutputPathError(f"{flag} {shown or p}: lies inside the dataset {data}; its files would join the dataset "
                                  "(figures as scans, folders as classes); write outside it")


def input_folders(specs, subfolders: bool = False) -> list[Path]:
    """The folders among a command's input arguments, a glob's fixed leading folder included
    (``ds/*.png`` -> ``ds``): an output written inside one would be read as input next time.
    ``subfolders``: only folders whose subfolders are read too (for an output *folder*): a
    glob's folder only when the pattern is recursive (``ds/**/*.png``)."""
    import glob as globmod

    out = []
    for spec in specs:
        p = Path(str(spec)).expanduser()
        if globmod.has_magic(str(spec)):
            if subfolders and "**" not in str(spec):
                continue
            parts = []
            for part in p.parts:
                if globmod.has_magic(part):
                    break
                parts.append(part)
            p = Path(*parts) if parts else Path(".")
        if p.is_dir():
            out.append(p)
    return out


def check_no_foreign_images(out: str | Path | None, flag: str, force: bool) -> None:
    """Refuse (unless ``force``) an output folder that holds images brainmri did not write (a
    dataset's class folder: figures there would join it as scans)."""
    from brainmri.data.io import is_image_name
    from brainmri.outputs import written_by_brainmri

    if out is None or force or not Path(out).expanduser().is_dir():
        return
    inside = sorted(f for f in Path(out).expanduser().iterdir() if f.is_file() and is_image_name(f) and not written_by_brainmri(f))
    if inside:
        raise OutputPathError(f"{flag} {out}: the folder holds {len(inside)} image(s) brainmri did not write (e.g. {inside[0].name}); "
                              "heat maps there would join them as scans. Give another folder, or --force")


def check_output_dir(path: str | Path | None, flag: str, not_inside: list[str | Path] = ()) -> None:
    """Refuse ``path`` as an output *folder* if it is a file or cannot be created or written, or
    if it is or lies inside one of the dataset folders ``not_inside`` (its figures would join the
    dataset as scans, its folders as classes)."""
    if path is None:
        return
    p = Path(path).expanduser()
    check_not_inside(p, flag, not_inside, path)
    if p.exists() and not p.is_dir():
        raise OutputPathError(f"{flag} {path}: is a file, not a folder")
    _creatable_dir(p, flag, path)
