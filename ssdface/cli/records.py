"""The output formats of ``ssdface detect``, and its progress bar."""

from __future__ import annotations

import csv
import json
import sys
from typing import Any, TextIO

CSV_FIELDS = ("image", "width", "height", "face", "score", "xmin", "ymin", "xmax", "ymax",
              "error")


class RecordWriter:
    """Writes the records in one of the formats; all but json as they come."""

    def __init__(self, fmt: str, out: TextIO, err: TextIO) -> None:
        self.fmt, self.out, self.err = fmt, out, err
        self.records: list[dict[str, Any]] = []
        self.csv: Any = None

    def write(self, record: dict[str, Any]) -> None:
        """Write one record (json: keep it for :meth:`close`)."""
        fmt, out = self.fmt, self.out
        if fmt == "json":
            self.records.append(record)
            return
        if fmt == "jsonl":
            out.write(json.dumps(record) + "\n")
        elif fmt == "csv":
            if self.csv is None:
                self.csv = csv.writer(out, lineterminator="\n")
                self.csv.writerow(CSV_FIELDS)
            head = [record["image"], record.get("width", ""), record.get("height", "")]
            faces = record.get("faces", [])
            for i, face in enumerate(faces):
                self.csv.writerow([*head, i, face["score"], *face["box"],
                                   record.get("error", "")])
            if not faces:
                self.csv.writerow([*head, "", "", "", "", "", "", record.get("error", "")])
        else:
            path = record["image"]
            for face in record.get("faces", []):
                x0, y0, x1, y1 = face["box"]
                out.write(f"{path}\t{face['score']:.3f}\t{x0:.1f}\t{y0:.1f}\t{x1:.1f}\t{y1:.1f}\n")
            if "faces" in record and not record["faces"]:
                out.write(f"{path}\tno faces\n")
            if "error" in record:
                out.flush()
                self.err.write(f"ssdface: error: {record['error']}\n")
                self.err.flush()
        out.flush()

    def close(self) -> None:
        """Finish the output: the json list, or a lone csv header."""
        if self.fmt == "json":
            json.dump(self.records, self.out, indent=2)
            self.out.write("\n")
        elif self.fmt == "csv" and self.csv is None:  # no image at all: the header still
            csv.writer(self.out, lineterminator="\n").writerow(CSV_FIELDS)
        self.out.flush()


class Progress:
    """A tqdm bar on stderr, or nothing (no terminal, --quiet, no tqdm)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.bar: Any = None
        self.stdout_is_terminal = sys.stdout.isatty()
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:  # the bar is a nicety: pip install 'ssdface[cli]'
                return
            self.bar = tqdm(total=total, unit="img", file=sys.stderr, dynamic_ncols=True,
                            leave=False, smoothing=0.1)

    def writing(self, to_stderr: bool) -> Any:
        """Context for writing a record without garbling the bar: it is
        cleared when the record goes to the terminal (stdout is one, or an
        error line goes to stderr)."""
        if self.bar is None or not (self.stdout_is_terminal or to_stderr):
            import contextlib

            return contextlib.nullcontext()
        return self.bar.external_write_mode(file=sys.stdout)

    def update(self) -> None:
        """One more image done."""
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        """Remove the bar."""
        if self.bar is not None:
            self.bar.close()


def plural(n: int, word: str) -> str:
    """``1 image``, ``2 images``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
