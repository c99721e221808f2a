"""Train the tiny memory-test models (rainy-days task) and save them under checkpoints/memory/.

    python -m charrnn.analysis.train_memory
"""

import json

from charrnn.analysis.views import MEMORY_DIR, memory_test, train_memory_models


def main() -> None:
    models = train_memory_models(save_to=MEMORY_DIR, progress=lambda f, m: print(f"{f:.0%} {m}", flush=True))
    table = memory_test(models)
    print(table.pivot(index="gap (rainy days)", columns="model", values="accuracy").to_string())
    print(json.dumps({"saved": str(MEMORY_DIR)}))


if __name__ == "__main__":
    main()
