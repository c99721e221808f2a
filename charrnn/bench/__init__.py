"""Speed measurements behind `charrnn bench` (charrnn.cli.bench): charrnn's training step and sampler beside
plain PyTorch loops at the same shapes and precision.

    tables.py     which shapes and precisions a device gets; the rows printed
    training.py   charrnn's training step and a plain nn.LSTM loop
    sampling.py   charrnn's sampler, a naive loop, the shipped models, the Compare streams
    timing.py     timing helpers and the matmul ceiling
    corpus.py     the training-quality probe on a corpus
    visitors.py   the sampling engine against one loop per visitor
"""
