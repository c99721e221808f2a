"""The Write tab: the visitor and a model write one text in turns. The model's likeliest next words and characters
are buttons under the text; a click appends one, typing adds the visitor's own, and the model proposes again.

Keyboard: Tab in the text takes the best suggestion, Alt+1 to Alt+8 the words in order (a page script installed
when the text box first gets focus: Gradio has no key events of its own). Undo steps back through a stack of the
texts before each change (a suggestion taken, an undo's own change excluded, or a burst of typing).
"""

from __future__ import annotations

import gradio as gr

from charrnn.app.handlers import user_errors
from charrnn.app.session import PageSession
from charrnn.service.writing import MAX_SUGGESTIONS, WritingDesk

UNDO_DEPTH = 200  # texts kept to go back to, per visitor

# Tab takes the best suggestion and Alt+digit a word, instead of moving the focus or typing the digit.
KEYS_JS = """() => {
  const box = document.querySelector('#write-text textarea');
  if (!box || box.dataset.writeKeys) return;
  box.dataset.writeKeys = '1';
  box.addEventListener('keydown', (event) => {
    let target = null;
    if (event.key === 'Tab' && !event.shiftKey) target = '#write-best';
    else if (event.altKey && /^[1-8]$/.test(event.key)) target = '#write-word-' + event.key;
    const button = target && document.querySelector(target);
    if (button) { event.preventDefault(); button.click(); }
  });
}"""


def label(suggestion) -> str:
    """A button's label: the text with its spaces and newlines visible, and its probability."""
    shown = suggestion.text.replace(" ", "␣").replace("\n", "↵")
    chance = f"{suggestion.probability:.0%}" if suggestion.probability >= 0.01 else "<1%"
    return f"{shown}  {chance}"


def suggest_api(session: PageSession, names: list[str], desk: WritingDesk) -> None:
    """The `suggest` endpoint, for scripts and agents; registered outside the tabs (a gr.Tabs holds only tabs)."""
    default_model = names[0] if names else None

    @user_errors
    def suggest(text: str = "", model: str | None = None, n: int = 5, temperature: float = 1.0,
                session_key: str | None = None) -> dict:
        """A model's likeliest continuations of a text: its next characters and its next whole words or phrases.

        Args:
            text: the text so far; the suggestions continue it at its end (empty: the start of a line).
            model: the model that suggests; empty for the first one listed.
            n: how many characters and how many words to suggest (1 to 8 of each).
            temperature: 1 gives the model's own probabilities; below 1 sharpens them, above 1 flattens them.
            session_key: your session key (see new_session), to use a model you trained; empty for public ones.

        Returns:
            {"chars": [...], "words": [...]}, each a list of {"text", "probability"}, likeliest first. A word
            ends with the space or punctuation the model writes after it; its probability is that of the whole.
        """
        found = desk.suggest(session.view(session_key), model or default_model, text, n, temperature, session_key)
        return {kind: [{"text": s.text, "probability": s.probability} for s in items]
                for kind, items in (("chars", found.chars), ("words", found.words))}

    gr.api(suggest, api_name="suggest", concurrency_id="write", concurrency_limit=4)


def write_tab(session: PageSession, names: list[str], desk: WritingDesk) -> None:
    default_model = names[0] if names else None

    @user_errors
    def refresh(text, model, temperature, n, last, stack, session_key=None):
        """New suggestions for the text; the text before a change goes on the undo stack."""
        found = desk.suggest(session.view(session_key), model, text, n, temperature, session_key)
        if isinstance(last, str) and text != last:
            stack = (list(stack or []) + [last])[-UNDO_DEPTH:]
        slots = []
        for items in (found.words, found.chars):
            slots += [gr.update(value=label(s), visible=True) for s in items]
            slots += [gr.update(visible=False)] * (MAX_SUGGESTIONS - len(items))
        shown = ([s.text for s in found.words] + [""] * (MAX_SUGGESTIONS - len(found.words))
                 + [s.text for s in found.chars] + [""] * (MAX_SUGGESTIONS - len(found.chars)))
        best = found.best
        return (*slots, shown, text, stack or [], gr.update(interactive=best is not None),
                gr.update(interactive=bool(stack)))

    def take(index):
        def append(text, shown):
            chosen = shown[index] if isinstance(shown, list) and index < len(shown) else ""
            return (text or "") + chosen
        return append

    def take_best(text, shown):
        return (text or "") + next((s for s in shown or [] if s), "")

    def undo(stack):
        if not stack:
            return gr.update(), [], gr.update()
        *rest, previous = stack
        return previous, rest, previous  # `last` set too, so that the refresh does not push it back

    with gr.Tab("Write"):
        with gr.Row(elem_classes="controls-first"):
            with gr.Column(scale=2):
                text = gr.Textbox(label="Your text (type, or take a suggestion)", value="ROMEO:\n", lines=10,
                                  max_lines=30, elem_id="write-text", buttons=["copy"])
                gr.Markdown("**Next words** (Alt+1 to Alt+8)")
                with gr.Row():
                    words = [gr.Button(visible=False, size="sm", elem_id=f"write-word-{i + 1}")
                             for i in range(MAX_SUGGESTIONS)]
                gr.Markdown("**Next characters**")
                with gr.Row():
                    chars = [gr.Button(visible=False, size="sm", elem_classes="write-char")
                             for _ in range(MAX_SUGGESTIONS)]
                with gr.Row():
                    best_button = gr.Button("Take the best (Tab)", variant="primary", elem_id="write-best")
                    undo_button = gr.Button("Undo", interactive=False, elem_id="write-undo")
            with gr.Column(scale=1, elem_classes="controls"):
                model = gr.Dropdown(names, value=default_model, label="Model")
                temperature = gr.Slider(0.05, 2, value=1.0, step=0.05, label="Temperature of the suggestions")
                count = gr.Slider(1, MAX_SUGGESTIONS, value=5, step=1, label="Suggestions of each kind")
                gr.Markdown("A word's probability is that of all its characters together, the space or "
                            "punctuation after it included. Temperature 1 shows the model's own probabilities.")
        shown = gr.State([])  # the texts of the buttons, words then characters
        last = gr.State(None)  # the text the suggestions are for
        stack = gr.State([])  # texts to go back to, latest last

        private = dict(api_visibility="private", preprocess=False)
        outputs = [*words, *chars, shown, last, stack, best_button, undo_button]
        inputs = [text, model, temperature, count, last, stack, session.key]
        # always_last: while a refresh runs, keystrokes are merged into one refresh of the latest text
        for trigger in (text.change, model.change, temperature.change, count.change):
            trigger(refresh, inputs, outputs, trigger_mode="always_last", concurrency_id="write",
                    concurrency_limit=4, **private)
        session.key.change(refresh, inputs, outputs, **private)  # the first suggestions, once the key is known
        for index, button in enumerate(words + chars):
            button.click(take(index), [text, shown], text, **private)
        best_button.click(take_best, [text, shown], text, **private)
        undo_button.click(undo, stack, [text, stack, last], **private)
        text.focus(None, None, None, js=KEYS_JS, api_visibility="private")
