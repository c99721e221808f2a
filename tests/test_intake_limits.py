"""A training text is read only up to the host's character limit: a small file that unpacks to a huge text (a
compressed parquet file, a long csv) costs the characters kept, not the whole text, and the preview says it was cut.
"""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from charrnn.errors import CharRNNError
from charrnn.service.training import TrainLimits, read_upload
from charrnn.service.training.intake import gather
from tests.conftest import ROOT, TINY_TEXT

ROW = "x" * 3_999 + "\n"  # the rows of the compressed file: 100,000 of them make 400M characters


def compressed_parquet(path, rows: int = 100_000, row: str = ROW):
    """`rows` copies of one row, zstd-compressed and dictionary-encoded: a file of tens of kB. The schema is not
    stored, so a reader sees plain strings, as it would in a file written by any other tool."""
    column = pa.DictionaryArray.from_arrays(pa.array(np.zeros(rows, dtype=np.int32)), pa.array([row]))
    pq.write_table(pa.table({"text": column}), path, compression="zstd", use_dictionary=True, store_schema=False)
    return path


def long_csv(path, rows: int):
    with open(path, "w", encoding="utf-8") as f:
        f.write("id,text\n")
        for i in range(rows):
            f.write(f"{i},{'lorem ipsum ' * 333}\n")
    return path


# Reads each case in a fresh interpreter, after reading a small file of each kind (so that imports and first-use
# allocations are not counted), and prints how far the peak resident memory rose: pyarrow's allocations are
# outside tracemalloc's view, so the process's own peak is the honest measure.
MEASURE = """
import json, resource, sys
from charrnn.service.training import intake
from charrnn.service.training.limits import TrainLimits

limits = TrainLimits(max_chars=1_000_000, local_paths=True, upload_mb=50)
warm_up, cases = json.loads(sys.argv[1])

def read(path, how):
    return intake.gather(limits, **{how: [path] if how == "files" else path}, batch_size=4, seq_len=16)

for path, how in warm_up:
    read(path, how)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux
results = []
for path, how in cases:
    text = read(path, how)
    results.append({"chars": len(text.text), "sources": text.sources, "notes": text.preview["notes"],
                    "peak_growth_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024})
print(json.dumps(results))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in kB on Linux")
def test_a_small_file_that_unpacks_to_400m_characters_costs_only_the_characters_kept(tmp_path):
    bomb = compressed_parquet(tmp_path / "bomb.parquet")
    csv = long_csv(tmp_path / "long.csv", 10_000)  # 40 MB of text
    assert bomb.stat().st_size < 200_000
    small = tmp_path / "small.parquet"
    compressed_parquet(small, 300, "small row\n")
    pd.DataFrame({"id": range(300), "text": ["small row"] * 300}).to_csv(tmp_path / "small.csv", index=False)
    warm_up = [[str(small), "files"], [str(tmp_path / "small.csv"), "files"], [str(small), "dataset"]]
    cases = [[str(bomb), "files"], [str(bomb), "dataset"], [str(csv), "files"]]
    done = subprocess.run([sys.executable, "-c", MEASURE, json.dumps([warm_up, cases])], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.splitlines()[-1])
    # Whole, the parquet text alone is 400M characters: well over 400 MB in any form.
    assert results[-1]["peak_growth_mb"] < 100, results
    for (path, how), result in zip(cases, results):
        name = path if how == "dataset" else path.rsplit("/", 1)[1]
        assert 500_000 <= result["chars"] <= 1_000_000
        assert result["sources"] == [f"{name} (its first {result['chars']:,} characters)"]
        assert result["notes"] == [f"the text may be at most 1,000,000 characters on this host, so only the first "
                                   f"{result['chars']:,} characters of {name} are used (up to the end of a line)"]


@pytest.mark.parametrize("suffix", [".txt", ".csv", ".jsonl", ".parquet"])
def test_each_kind_of_file_is_cut_at_the_limit_at_the_end_of_a_line(tmp_path, suffix):
    lines = TINY_TEXT.splitlines()
    path = tmp_path / f"play{suffix}"
    frame = pd.DataFrame({"n": range(len(lines)), "text": lines})
    if suffix == ".txt":
        path.write_text(TINY_TEXT, encoding="utf-8")
    elif suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path)
    whole, cut = read_upload(path)
    assert not cut and whole.startswith("First Citizen:\nBefore we proceed")
    kept, cut = read_upload(path, limit=1_000)
    assert cut and 500 <= len(kept) <= 1_000 and whole.startswith(kept) and whole[len(kept)] == "\n"


def test_one_row_longer_than_the_limit_is_cut_inside_it(tmp_path, monkeypatch):
    from charrnn.data import reading

    monkeypatch.setattr(reading, "CHUNK_SIZE", 7)  # the row is decoded in pieces, which split its characters
    row = "\u00e9t\u00e9 \u2603 " * 1_000
    compressed_parquet(tmp_path / "one.parquet", 1, row)
    kept, cut = read_upload(tmp_path / "one.parquet", limit=1_001)
    assert cut and kept == row[:1_001]
    assert read_upload(tmp_path / "one.parquet") == (row, False)


def test_files_past_the_limit_are_named_in_the_message(tmp_path):
    (tmp_path / "a.txt").write_text(TINY_TEXT, encoding="utf-8")
    (tmp_path / "b.txt").write_text(TINY_TEXT, encoding="utf-8")
    limits = TrainLimits(max_chars=len(TINY_TEXT) + 1)
    text = gather(limits, files=[tmp_path / "a.txt"], batch_size=4, seq_len=16)
    assert text.sources == ["a.txt"] and text.preview["notes"] == []
    with pytest.raises(CharRNNError, match="already hold the .* characters this host accepts; leave out b.txt"):
        gather(limits, files=[tmp_path / "a.txt", tmp_path / "b.txt"], batch_size=4, seq_len=16)


def test_a_damaged_file_is_named_as_the_person_named_it(tmp_path):
    upload = tmp_path / "gradio" / "0f3a9c"  # where the server keeps it
    upload.mkdir(parents=True)
    (upload / "data.parquet").write_bytes(b"PAR1 not really parquet")
    (upload / "data.jsonl").write_text('{"text": "a line"}\n{"text": \n', encoding="utf-8")
    for kind in ("parquet", "jsonl"):
        with pytest.raises(CharRNNError) as raised:
            read_upload(upload / f"data.{kind}", f"notes.{kind}")
        assert str(raised.value).startswith(f"notes.{kind} could not be read as {kind} (")
        assert str(upload) not in str(raised.value) and "data." not in str(raised.value)


def test_a_dataset_name_too_long_for_a_file_is_answered_with_what_a_dataset_name_is():
    with pytest.raises(CharRNNError, match=r"no such file or folder, preset or Hub id \(user/name, at most 96"):
        gather(TrainLimits(), dataset="x" * 300)
