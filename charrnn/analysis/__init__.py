"""Looking inside the cells: surprisal, neuron activations, gates, gradient flow, and a memory test.

Each function takes a model (and text) and returns plain data (arrays, DataFrames, dicts) with no UI.
"""
