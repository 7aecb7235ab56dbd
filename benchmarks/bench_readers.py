"""Reader throughput: the project's one reader vs pyarrow's CSV scanner on a 204k-row CSV.

RT's 12,752 texts are written 16 times (each copy made distinct) as a text,label CSV. The project's
reader (``pipeline.store.stream.iter_text_batches``: Python's csv module, line by line, with every check) is
timed beside ``pyarrow.dataset``'s CSV scan of the text column (what ``embed`` streamed through
before the readers were unified, without those checks). Prints texts/s of each and the ratio.

Run:  .venv/bin/python benchmarks/bench_readers.py
"""

from __future__ import annotations

import csv
import os
import tempfile
import time
import warnings
from pathlib import Path

COPIES = 16


def _pyarrow_scan(path: Path) -> int:
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.dataset as ds

    fmt = ds.CsvFileFormat(parse_options=pcsv.ParseOptions(newlines_in_values=True),
                           convert_options=pcsv.ConvertOptions(column_types={"text": pa.string()}))
    return sum(len([t for t in b.column(0).to_pylist() if t.strip()])
               for b in ds.dataset(path, format=fmt).to_batches(columns=["text"], batch_size=50_000))


def main() -> None:
    from pipeline.data.dataset import load
    from pipeline.data.readers import DataWarning
    from pipeline.store.stream import iter_text_batches

    warnings.simplefilter("ignore", DataWarning)  # RT's texts with line breaks
    texts = load("rt").texts
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.csv"
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["text", "label"])
            for k in range(COPIES):
                w.writerows([f"{t} #{k}", "fresh"] for t in texts)
        rates = {}
        for name, read in (("readers", lambda: sum(len(b) for b in iter_text_batches(path))),
                           ("pyarrow", lambda: _pyarrow_scan(path))):
            start = time.perf_counter()
            n = read()
            rates[name] = n / (time.perf_counter() - start)
            print(f"{name:<8} {n:,} texts  {rates[name]:>10,.0f} texts/s")
    print(f"pyarrow / readers: {rates['pyarrow'] / rates['readers']:.1f}x   (load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
