"""charrnn's web app, the Hugging Face Space's entry point: generate text with character-level RNN / GRU / LSTM
models, compare the cells, look inside them and train your own (the page itself: charrnn/app/).

    python app.py        # then open http://127.0.0.1:7860

Host and port come from GRADIO_SERVER_NAME / GRADIO_SERVER_PORT, as on Hugging Face Spaces.
"""

from charrnn.app.launch import main

if __name__ == "__main__":
    main()
