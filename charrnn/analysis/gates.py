"""Gate activity: how open the LSTM's input/forget/output gates (or the GRU's reset/update gates) are."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from charrnn.cells import cell_info

if TYPE_CHECKING:
    from charrnn.analysis.trace import Trace

# The 'cell' / 'new' entries are candidate values, not gates: they are left out of the summaries.
MEAN_COLUMNS = ["layer", "gate", "mean", "share of text open (above 0.9)", "share of text shut (below 0.1)"]


def gate_means(trace: Trace, cell: str) -> pd.DataFrame:
    """Mean activation of each gate in each layer over the text (0 = closed, 1 = open)."""
    rows = []
    for layer, gates in enumerate(trace.gates):
        for name in cell_info(cell).gates:
            values = gates[name]
            rows.append({"layer": layer, "gate": name, "mean": round(float(values.mean()), 4),
                         "share of text open (above 0.9)": round(float((values > 0.9).float().mean()), 4),
                         "share of text shut (below 0.1)": round(float((values < 0.1).float().mean()), 4)})
    return pd.DataFrame(rows, columns=MEAN_COLUMNS)

