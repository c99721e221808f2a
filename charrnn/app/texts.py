"""The words of the page: the intro, each tab's help, the Inside tab's sample text, and the page's CSS."""

TITLE = "charrnn: character-level RNN, GRU and LSTM"
INTRO = """# charrnn: why gated cells beat a plain RNN
Three character-level language models of the same size, a plain **RNN**, a **GRU** and an **LSTM**, trained on
Tiny Shakespeare for the same time. They read and write one character at a time, and what they remember of the
text so far lives in a hidden state. This page shows why the plain RNN forgets and the gated cells do not, and lets
you train your own.

**Start here:**
1. **Compare cells**: the three write from one prompt; see which text holds together.
2. **Inside > Gradient flow**: how far back each cell can learn from.
3. **Inside > Memory test**: remembering across a gap.
4. **Inside > Gates**: the switches that keep the memory.
5. **Train**: your own text, your own model."""

SAMPLING_HELP = """**Temperature** divides the model's scores before they become probabilities: below 1 the likely
characters get likelier (safer, more repetitive text), above 1 the distribution flattens (wilder text, more
misspellings); 0 always takes the most likely character. **Top-k** samples only among the k most likely characters
(0 = all). **Top-p** (nucleus) samples only among the most likely characters whose probabilities add up to p
(1 = all). The same seed with the same settings gives the same text; -1 picks a new one each time. **Beam width**
above 1 does not sample: it keeps that many of the likeliest texts at every character and shows the likeliest
(Samples sets how many of the best to show), so temperature, top-k, top-p and seed do not apply. No beam may
repeat a long run of characters it already holds: the classic failure of beam search is a text that loops."""

CELLS_HELP = """**Why LSTM and GRU write better than the plain RNN.** All three are trained by backpropagation through
time: the error at one character is sent back through every earlier step. In a plain RNN that signal is
multiplied by the same recurrent matrix and squashed by tanh at each step, so it shrinks (vanishes) or blows up
(explodes) exponentially with distance, and the model cannot learn to use what it read more than a few dozen
characters ago. The LSTM's cell state is updated by addition, controlled by forget, input and output gates, and
the GRU's update gate interpolates between the old and the new state: both give the gradient a path that does not
shrink, so they remember who is speaking, whether a line is open, and how long a verse has run. Gradient
clipping (used in training here) tames the exploding side; gates fix the vanishing side. The shipped `rnn`, `gru`
and `lstm` have the same number of parameters (3.3M) and the same 10-minute training budget on the same CPU;
pick any model in each column. **Bits per character**, in the tables below, is how surprised a model is by each
next character of text it never trained on: 1 bit is a coin flip between two characters; lower is better."""

INSIDE_TEXT = """JULIET:
O Romeo, Romeo! wherefore art thou Romeo?
Deny thy father and refuse thy name;
Or, if thou wilt not, be but sworn my love,
And I'll no longer be a Capulet.

ROMEO:
Shall I hear more, or shall I speak at this?

JULIET:
'Tis but thy name that is my enemy;
Thou art thyself, though not a Montague.
What's Montague? it is nor hand, nor foot,
Nor arm, nor face, nor any other part
Belonging to a man. O, be some other name!
What's in a name? that which we call a rose
By any other name would smell as sweet;
"""

# What each view's empty outputs will show, and the button that fills them
EMPTY_NOTES = {
    "surprise": "Press **Show surprise**: the text appears below coloured by surprise, and a table gives each "
                "model's bits per character.",
    "neurons": "Press **Show unit**: the text appears coloured by one unit, and a table lists the units that track "
               "a feature of the text.",
    "gradient_flow": "Press **Measure**: a chart of the gradient against distance appears here, with the gradient "
                     "sizes seen in training and the share of steps clipped.",
    "gates": "Press **Show gates**: a table of each gate's mean appears here, with one unit's gates under each "
             "character of the text and the cell's equations.",
    "memory": "Press **Run the memory test**: a chart of each cell's accuracy against the length of the rainy spell "
              "appears here.",
    "scores": "Press **Compare**: once the three texts are written, each is scored here by every model.",
    "train": "Press **Train**: the training and validation curves appear here, and the model's writing beside them.",
}

INSIDE_HELP = {
    "surprise": "**Surprise.** Each character is coloured by how unexpected it was to the model, -log2 p, in bits; "
                "hover (on a phone, tap) a character to see the five the model expected instead. The mean is the "
                "text's bits per character: everything the hidden state remembered is in those predictions.",
    "neurons": "**Neurons.** The text coloured by one unit of the hidden state (or the LSTM's cell state) as the "
               "model reads it. The table lists units whose activation follows a feature of the text, scored by "
               "correlation, as in Karpathy, Johnson and Fei-Fei (2015); unit -1 shows the best one.",
    "gradient_flow": "**Gradient flow through time.** How much the loss at one character depends on the state k "
                     "steps earlier (the size of the loss's gradient with respect to that state), relative to "
                     "k = 0, on a log scale: -6 means a millionth. Backpropagation through time multiplies by the "
                     "recurrent Jacobian at every step: for the plain RNN it vanishes exponentially, gates keep it "
                     "alive. Each curve is the mean, on that log scale, over 8 places in the text: at one place a "
                     "gated curve falls in steps, each at a line break, where the cell lets most of the line before "
                     "go. Below: the pre-clipping gradient norms seen in training and the share of steps that "
                     "clipping cut (the exploding side).",
    "gates": "**Gates.** How open the LSTM's input, forget and output gates (GRU: reset and update) are over the "
             "text, and one unit's gates under each character, beside the equations that use them. A forget "
             "(update) gate near 1 keeps the memory; near 0 it wipes it. Tap or hover a character for its values.",
    "memory": "**Memory test.** Someone runs (r), bikes (b) and swims (s) in order; on rainy days they sleep (z), "
              "and when the sun returns they resume where they left off. Predicting that day needs memory of the "
              "last activity across the rain. Tiny models of each cell were trained on this; the plot shows "
              "accuracy against the length of the rainy spell: the plain RNN forgets first.",
}

CSS = """
.sample-box textarea { font-family: ui-monospace, SFMono-Regular, Menlo, monospace !important; }
/* On a phone the settings come before the text they make: a wrapped row's columns are reordered */
@media (max-width: 640px) { .controls-first > .controls { order: -1; } }
.empty-note { color: var(--body-text-color-subdued); font-style: italic; }
"""
