"""A tokenizer as the page's tokenizer.js reads it (vocab.json): the id -> piece table and what encoding needs.

Characters need only the table. Sentencepiece vocabularies also carry each piece's score and type, which is what
its encoders use: BPE merges the adjacent pair whose piece scores highest, unigram takes the segmentation whose
pieces score highest in total, and a character no piece covers becomes its UTF-8 bytes (byte fallback).
tokenizer.js reproduces those two encoders for the settings charrnn trains with (identity normalisation, spaces as
U+2581, no dummy prefix, byte fallback); a model made with other settings is refused rather than encoded wrongly.
"""

from __future__ import annotations

from charrnn.errors import CharRNNError
from charrnn.tokenizer import UNKNOWN_ID, CharTokenizer, SentencePieceTokenizer, Tokenizer

FORMAT = "charrnn-page-vocabulary"
# sentencepiece's ModelProto.SentencePiece.Type numbers, as tokenizer.js names them
PIECE_TYPES = {1: "normal", 2: "unknown", 3: "control", 4: "user", 5: "unused", 6: "byte"}
MODEL_TYPES = {1: "unigram", 2: "bpe"}


def page_vocabulary(tokenizer: Tokenizer) -> dict:
    """What vocab.json holds for `tokenizer`; a CharRNNError says why a tokenizer cannot go to the page."""
    if isinstance(tokenizer, CharTokenizer):
        return {"format": FORMAT, "kind": "char", "pieces": ["\ufffd", *tokenizer.chars],
                "unknown_id": UNKNOWN_ID, "banned_id": UNKNOWN_ID, "start_text": "\n"}
    if isinstance(tokenizer, SentencePieceTokenizer):
        return _sentencepiece_vocabulary(tokenizer)
    raise CharRNNError(f"the page has no tokenizer for {type(tokenizer).__name__}")


def _sentencepiece_vocabulary(tokenizer: SentencePieceTokenizer) -> dict:
    from sentencepiece import sentencepiece_model_pb2

    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(tokenizer.model_proto)
    normalizer, trainer = proto.normalizer_spec, proto.trainer_spec
    types = [PIECE_TYPES.get(piece.type, "unknown") for piece in proto.pieces]
    unsupported = [
        reason for reason, present in (
            (f"a normalization rule ({normalizer.name!r}) other than identity", bool(normalizer.precompiled_charsmap)),
            ("a dummy prefix before the text", normalizer.add_dummy_prefix),
            ("extra whitespace removed", normalizer.remove_extra_whitespaces),
            ("spaces not written as U+2581", not normalizer.escape_whitespaces),
            ("whitespace as a suffix", trainer.treat_whitespace_as_suffix),
            ("no byte fallback", not trainer.byte_fallback),
            ("unused pieces", "unused" in types),
            (f"a {trainer.model_type} model (neither unigram nor BPE)", trainer.model_type not in MODEL_TYPES),
        ) if present
    ]
    if unsupported:
        raise CharRNNError("the page's tokenizer reproduces sentencepiece vocabularies as charrnn trains them; this "
                           f"one has {', '.join(unsupported)}: export a model trained by charrnn, or one with "
                           "--tokenizer char")
    return {"format": FORMAT, "kind": tokenizer.kind, "model_type": MODEL_TYPES[trainer.model_type],
            "pieces": [piece.piece for piece in proto.pieces], "scores": [piece.score for piece in proto.pieces],
            "types": types, "unknown_id": types.index("unknown"), "banned_id": None, "start_text": "\n"}
