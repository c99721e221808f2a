"""Train the tiny memory-test models (rainy-days task) and save them under checkpoints/memory/.

    python -m tools.train_memory
"""

import json

from charrnn.analysis import memory
from charrnn.checkpoint.saving import save_checkpoint
from charrnn.paths import MEMORY_DIR



def main() -> None:
    settings = memory.MemorySettings()
    models = memory.train_models(settings, progress=lambda f, m: print(f"{f:.0%} {m}", flush=True))
    for name, model in models.items():
        accuracy = memory.accuracy_after_gap(model, memory.GAPS)
        save_checkpoint(MEMORY_DIR / name, model, memory.TOKENIZER, task="memory",
                        training={"settings": settings.__dict__, "cell": model.config.cell},
                        metrics={"accuracy_after_gap": accuracy},
                        command="python -m tools.train_memory")
    table = memory.accuracy_table(models, memory.GAPS)
    print(table.pivot(index="gap (rainy days)", columns="model", values="accuracy").to_string())
    print(json.dumps({"saved": str(MEMORY_DIR)}))


if __name__ == "__main__":
    main()
