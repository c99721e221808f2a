"""The Gradio web app: each tab a module, the page that holds them, and the launch (app.py at the repository's
root calls charrnn.app.launch.main). Handlers are thin: each calls one function of charrnn.service and turns a
CharRNNError into a message on the page.

    texts.py          the page's words and CSS
    handlers.py       what every handler shares: messages for bad input, long inputs forgotten, plots
    generate_tab.py   Generate
    compare_tab.py    Compare cells
    inside_tab.py     Inside (surprise, neurons, gradient flow, gates, memory test)
    train_tab.py      Train
    agents.py         the tools agents see over MCP, each answering in plain text
    page.py           build_app: the four tabs on one library and one training manager
    launch.py         main: the sampler process, the queue, the launch (with or without MCP), the warm-up
"""
