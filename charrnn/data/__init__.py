"""Text in, token ids out, for corpora larger than memory: load_corpus reads and encodes them in chunks.

    sources.py   a --dataset argument as a Source: a preset, text files, data files, a dataset folder, a Hub id
    loading.py   the `datasets` side: a builder, its splits streamed as rows, the text column, a fingerprint
    reading.py   a source's text in chunks: text files decoded block by block, rows joined batch by batch
    tables.py    the text column of one uploaded .csv, .jsonl or .parquet file, a batch of rows at a time
    encoding.py  the character census, tokenizer training, ids written to .npy files chunk by chunk
    cache.py     the encoded-corpus cache (load_corpus): found without reading the text, opened as memory maps
    batching.py  StreamBatcher: batches for truncated backpropagation through time

Sources, in the order they are tried:
  - a preset name from charrnn/presets.json (tiny_shakespeare, wikitext2, ...),
  - one or more text files (read exactly as UTF-8; the last --val-fraction becomes validation),
  - one or more data files of one kind (.parquet, .csv, .json/.jsonl, .arrow), read by datasets' builder for
    that kind, the text taken from their text column (the last --val-fraction becomes validation),
  - a local dataset folder (parquet/arrow/json/csv/txt) or a Hub id, both through datasets' builders, streamed.
"""

from charrnn.data.bptt import StreamBatcher
from charrnn.data.cache import CACHE_VERSION, Corpus, load_corpus
from charrnn.data.reading import held_out_text, read_text_file
from charrnn.data.sources import DATA_FILE_BUILDERS, Source, load_presets, resolve_source

__all__ = ["CACHE_VERSION", "DATA_FILE_BUILDERS", "Corpus", "Source", "StreamBatcher", "held_out_text",
           "load_corpus", "load_presets", "read_text_file", "resolve_source"]
