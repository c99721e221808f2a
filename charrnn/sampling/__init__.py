"""Sampling: text from a model, one token at a time, for one caller or many at once.

    generate.py   the front door: SamplingSettings, stream() (a generator of each sample's new text), generate()
    beam.py       beam_search(): the likeliest continuations instead of samples, with a repetition guard
    stepper.py    one step of the model outside torch, on the compiled kernels (float32, half or bfloat16 weights)
    kernels.py    the compiled cell step (numba) and the per-row token draw
    tiles.py      matrix products in tiles, summed in an order that does not depend on the batch (float32, half)
    bf16.py       the bfloat16 dot product on those tiles, for CPUs with AVX512-BF16
    engine.py     SamplingEngine: callers of one model stepped together in one batch (continuous batching)
    process.py    the engine in a child process of its own, so the web server's work never holds up sampling

The layers above (the service, the app, the Hub's model card, the `charrnn sample` command) call generate.py, beam.py
or the engine; nothing here imports them. Nothing is imported here either, so that naming a module of this folder
does not compile kernels.
"""
