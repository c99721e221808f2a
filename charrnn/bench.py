"""Speed benchmark: prints its figures, measured in one run on this machine.

    python -m charrnn.bench            # ~3 minutes on 2 cores
    python -m charrnn.bench --quick    # fewer repetitions

Training: chars/s of the default 2x512 LSTM training step (fp32 and bf16 autocast) beside a plain fp32
embedding + nn.LSTM + linear loop at the same shapes. Sampling: batch-1 chars/s of charrnn's streaming
sampler beside a naive loop that calls the nn.LSTM module once per character. Also the matmul ceiling, and,
when the shipped checkpoints are present, batch-1 sampling of each shipped model and the three Compare streams
running at the same time, as the app runs them.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn as nn

from charrnn import service
from charrnn.config import ModelConfig, TrainConfig
from charrnn.device import bf16_supported
from charrnn.model import CharRNN
from charrnn.sample import SamplingSettings, stream
from charrnn.tokenizer import CharTokenizer
from charrnn.train import make_optimizer, train_step

VOCAB = 66  # Tiny Shakespeare's 65 characters + the unknown id


def timed(fn, repeats: int, warmup: int = 3) -> float:
    """Seconds per call, after warm-up calls (oneDNN prepares its bf16 kernels on the first few)."""
    for _ in range(warmup):
        fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def default_model() -> CharRNN:
    cfg = TrainConfig()
    return CharRNN(ModelConfig(vocab_size=VOCAB, cell=cfg.cell, embedding_size=cfg.embedding,
                               hidden_size=cfg.hidden, num_layers=cfg.layers, dropout=cfg.dropout))


def charrnn_training(amp_dtype, repeats: int) -> float:
    cfg = TrainConfig()
    torch.manual_seed(0)
    model = default_model().train()
    optimizer = make_optimizer(model, cfg)
    x = torch.randint(0, VOCAB, (cfg.batch_size, cfg.seq_len))
    y = torch.randint(0, VOCAB, (cfg.batch_size, cfg.seq_len))
    state = {"hidden": None}

    def step():
        _, _, state["hidden"] = train_step(model, optimizer, x, y, state["hidden"], amp_dtype, cfg.clip)

    return x.numel() / timed(step, repeats)


def plain_training(repeats: int) -> float:
    """The loop a tutorial writes: fp32, nn.LSTM, Adam, no autocast."""
    cfg = TrainConfig()
    torch.manual_seed(0)
    embedding, lstm = nn.Embedding(VOCAB, cfg.embedding), nn.LSTM(cfg.embedding, cfg.hidden, cfg.layers, batch_first=True)
    head = nn.Linear(cfg.hidden, VOCAB)
    params = [*embedding.parameters(), *lstm.parameters(), *head.parameters()]
    optimizer = torch.optim.Adam(params, lr=cfg.lr)
    x = torch.randint(0, VOCAB, (cfg.batch_size, cfg.seq_len))
    y = torch.randint(0, VOCAB, (cfg.batch_size, cfg.seq_len))

    def step():
        out, _ = lstm(embedding(x))
        loss = nn.functional.cross_entropy(head(out).flatten(0, 1), y.flatten())
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.clip)
        optimizer.step()

    return x.numel() / timed(step, repeats)


def charrnn_sampling(model: CharRNN, tokenizer, chars: int) -> float:
    settings = SamplingSettings(temperature=0.8)
    for _ in stream(model, tokenizer, "ROMEO:", 200, settings, seed=0):  # warm-up
        pass
    start = time.perf_counter()
    for _ in stream(model, tokenizer, "ROMEO:", chars, settings, seed=0):
        pass
    return chars / (time.perf_counter() - start)


@torch.no_grad()
def naive_sampling(model: CharRNN, chars: int) -> float:
    """Call the fused nn.LSTM module once per character, as most char-rnn ports do."""
    model.eval()
    token, hidden = torch.tensor([[1]]), None
    generator = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for _ in range(chars):
        logits, hidden, _ = model(token, hidden)
        probs = torch.softmax(logits[0, -1] / 0.8, dim=-1)
        token = torch.multinomial(probs, 1, generator=generator)[None]
    return chars / (time.perf_counter() - start)


def matmul_ceiling(dtype: torch.dtype, n: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    return 2 * n**3 / timed(lambda: a @ b, repeats) / 1e12


def shipped_sampling(library: service.ModelLibrary, names: list[str], chars: int) -> dict:
    """Batch-1 chars/s of each shipped checkpoint, through the app's model library."""
    speeds = {}
    for name in names:
        loaded = library.load(name)
        speeds[name] = round(charrnn_sampling(loaded.checkpoint.model, loaded.checkpoint.tokenizer, chars))
    return speeds


def compare_streams(library: service.ModelLibrary, available: list[str], chars: int) -> dict | None:
    """The app's Compare tab, as it runs there: the shipped RNN, GRU and LSTM writing at the same time."""
    names = list(service.COMPARE_DEFAULT)
    if not set(names) <= set(available):
        return None
    for _ in service.compare_stream(library, names, "ROMEO:", 100):  # load and warm up
        pass
    for _, speeds in service.compare_stream(library, names, "ROMEO:", chars):
        pass
    return {name: round(speed) for name, speed in zip(names, speeds)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="charrnn bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (noisier figures)")
    args = parser.parse_args(argv)
    repeats, chars = (5, 1000) if args.quick else (30, 4000)
    results = {"torch_threads": torch.get_num_threads()}
    results["matmul_tflops_fp32"] = round(matmul_ceiling(torch.float32), 3)
    if bf16_supported(torch.device("cpu")):
        results["matmul_tflops_bf16"] = round(matmul_ceiling(torch.bfloat16), 3)
    print(f"matmul ceiling: {results['matmul_tflops_fp32']} TFLOP/s fp32, "
          f"{results.get('matmul_tflops_bf16', 'n/a')} TFLOP/s bf16", flush=True)

    plain = plain_training(repeats)
    fp32 = charrnn_training(None, repeats)
    results.update(train_plain_fp32_chars_s=round(plain), train_charrnn_fp32_chars_s=round(fp32))
    if bf16_supported(torch.device("cpu")):
        bf16 = charrnn_training(torch.bfloat16, repeats)
        results["train_charrnn_bf16_chars_s"] = round(bf16)
        results["train_speedup_bf16_vs_plain"] = round(bf16 / plain, 2)
    print(f"training 2x512 LSTM, batch {TrainConfig().batch_size} x {TrainConfig().seq_len}: plain fp32 loop "
          f"{plain:,.0f} chars/s, charrnn fp32 {fp32:,.0f}, charrnn bf16 "
          f"{results.get('train_charrnn_bf16_chars_s', 'n/a')} (x{results.get('train_speedup_bf16_vs_plain')})",
          flush=True)

    model = default_model().eval()
    tokenizer = CharTokenizer("".join(chr(32 + i) for i in range(VOCAB - 2)) + "\n")
    fast = charrnn_sampling(model, tokenizer, chars)
    naive = naive_sampling(model, chars // 4)
    results.update(sample_charrnn_chars_s=round(fast), sample_naive_chars_s=round(naive),
                   sample_speedup=round(fast / naive, 1))
    print(f"batch-1 sampling 2x512 LSTM: charrnn {fast:,.0f} chars/s, naive nn.LSTM loop {naive:,.0f} chars/s "
          f"(x{fast / naive:.1f})", flush=True)

    library = service.ModelLibrary()
    available = library.names()
    shipped = shipped_sampling(library, available, chars // 2)
    if shipped:
        results["sample_shipped_chars_s"] = shipped
        print(f"batch-1 sampling of the shipped models: {shipped} chars/s", flush=True)
    compare = compare_streams(library, available, chars // 2)
    if compare:
        results["compare_streams_chars_s_each"] = compare
        print(f"Compare tab, three shipped models at the same time: {compare} chars/s each", flush=True)
    print(json.dumps(results))
    return results


if __name__ == "__main__":
    main()
