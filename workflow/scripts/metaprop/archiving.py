"""A byte-reproducible tar.gz of results and sources, with a SHA-256 manifest.

Hand-written because `snakemake --archive` packs only the workflow (not results) and stamps
files with their modification times; here every time, owner and mode is fixed.
"""

import gzip
import io
import tarfile

from .reporting import sha256


def manifest(paths):
    """'<sha256>  <path>' lines, as `sha256sum -c` reads them."""
    return "".join(f"{sha256(path)}  {path}\n" for path in sorted(paths))


def _add(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def write_archive(paths, manifest_text, out_path, root="meta-analysis"):
    """Files (relative paths) under `root/`, plus root/MANIFEST.sha256; identical inputs give identical bytes."""
    with (
        open(out_path, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar,
    ):
        for path in sorted(paths):
            with open(path, "rb") as handle:
                _add(tar, f"{root}/{path}", handle.read())
        _add(tar, f"{root}/MANIFEST.sha256", manifest_text.encode("utf-8"))


def read_member(archive_path, path, root="meta-analysis"):
    """Text of `path` inside an archive written by write_archive, or None if there is no such archive or file."""
    try:
        with tarfile.open(archive_path) as tar:
            return tar.extractfile(f"{root}/{path}").read().decode("utf-8")
    except (FileNotFoundError, KeyError, tarfile.TarError):
        return None
