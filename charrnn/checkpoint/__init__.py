"""Checkpoints: a folder with model.safetensors and config.json (the model's shape, its tokenizer, how it was
trained), and for --resume training_state.pt.

    folder.py   the folder format: names, reading and checking config.json, finding checkpoint folders (no torch,
                so the web app lists and describes its models before it imports torch)
    saving.py   saving and loading the model with its tokenizer (atomic, pickle-free, checked before allocating)

Nothing is imported here, so that `charrnn.checkpoint.folder` stays free of torch.
"""
