// charrnn's tokenizers in the browser: a prompt encoded into the ids the Python tokenizer gives, and sampled ids
// decoded into text as they come. Read from vocab.json (charrnn/export/vocab.py). The export inlines this file
// into index.html; the tests run it in node against the Python tokenizers.
//
// The sentencepiece encoders follow sentencepiece's own (bpe_model.cc, unigram_model.cc's EncodeOptimized,
// normalizer.cc), including its float32 arithmetic, so that ties between segmentations break the same way.
(function (root) {
  "use strict";

  const SPACE = "\u2581"; // how sentencepiece writes a space inside a piece
  const UNKNOWN_TEXT = " \u2047 "; // how sentencepiece decodes its unknown piece
  const FLT_MIN = 1.1754943508222875e-38; // the unigram model's starting max score, as in sentencepiece
  const UNKNOWN_PENALTY = 10; // below the lowest piece score, for a character no piece covers
  const f32 = Math.fround;
  const utf8 = new TextEncoder();

  function makeTokenizer(vocab) {
    if (vocab.kind === "char") return charTokenizer(vocab);
    if (vocab.model_type === "bpe" || vocab.model_type === "unigram") return sentencepieceTokenizer(vocab);
    throw new Error("unknown vocabulary kind " + vocab.kind);
  }

  // A streaming decoder: every id becomes bytes, and text is handed out once its UTF-8 characters are whole (a
  // character may span several byte pieces).
  function decoder(bytesOf) {
    const text = new TextDecoder("utf-8");
    return { push: (id) => text.decode(bytesOf(id), { stream: true }) };
  }

  // One id per code point; characters the model never saw are skipped, as `charrnn sample` skips them.
  function charTokenizer(vocab) {
    const ids = new Map(vocab.pieces.map((piece, id) => [piece, id]));
    const encodeKnown = (text) => {
      const out = [];
      for (const ch of text) {
        const id = ids.get(ch);
        if (id !== undefined && id !== vocab.unknown_id) out.push(id);
      }
      return out;
    };
    const pieceBytes = vocab.pieces.map((piece) => utf8.encode(piece));
    return {
      encode: encodeKnown,
      start: () => {
        const ids = encodeKnown(vocab.start_text);
        return ids.length ? ids : [1];
      },
      decoder: () => decoder((id) => pieceBytes[id]),
    };
  }

  function sentencepieceTokenizer(vocab) {
    const pieceIds = new Map(); // the pieces encoders may produce (sentencepiece's pieces_)
    const byteIds = new Map(); // byte value -> id of its <0xNN> piece
    const userSymbols = []; // matched whole, before anything else, and never merged
    let minScore = 3.4028234663852886e38;
    let maxScore = FLT_MIN;
    let maxPieceLength = 1;
    vocab.pieces.forEach((piece, id) => {
      const type = vocab.types[id];
      if (type === "normal" || type === "user") {
        pieceIds.set(piece, id);
        maxPieceLength = Math.max(maxPieceLength, [...piece].length);
      }
      if (type === "user") userSymbols.push(piece);
      if (type === "byte") byteIds.set(parseInt(piece.slice(3, 5), 16), id);
      if (type === "normal") {
        minScore = Math.min(minScore, vocab.scores[id]);
        maxScore = Math.max(maxScore, vocab.scores[id]);
      }
    });
    userSymbols.sort((a, b) => b.length - a.length); // the longest match wins

    // The text as units: a user-defined symbol, else one code point with a space written as U+2581.
    function normalize(text) {
      const units = [];
      let at = 0;
      while (at < text.length) {
        const user = userSymbols.find((symbol) => text.startsWith(symbol, at));
        if (user !== undefined) {
          units.push({ text: user, user: true });
          at += user.length;
        } else {
          const ch = String.fromCodePoint(text.codePointAt(at));
          units.push({ text: ch === " " ? SPACE : ch, user: false });
          at += ch.length;
        }
      }
      return units;
    }

    // Pieces no vocabulary entry covers become their UTF-8 bytes (byte fallback).
    function ids(pieces) {
      const out = [];
      for (const piece of pieces) {
        const id = pieceIds.get(piece);
        if (id !== undefined) out.push(id);
        else for (const byte of utf8.encode(piece)) out.push(byteIds.get(byte));
      }
      return out;
    }

    // BPE: merge the adjacent pair whose joined piece scores highest (the leftmost of equals) until none is left.
    function encodeBpe(text) {
      const symbols = normalize(text).map((unit, i, all) => ({
        piece: unit.text, frozen: unit.user, prev: i - 1, next: i + 1 < all.length ? i + 1 : -1,
      }));
      const agenda = new Heap((a, b) => a.score > b.score || (a.score === b.score && a.left < b.left));
      const consider = (left, right) => {
        if (left < 0 || right < 0 || symbols[left].frozen || symbols[right].frozen) return;
        const piece = symbols[left].piece + symbols[right].piece;
        const id = pieceIds.get(piece);
        if (id !== undefined) agenda.push({ left, right, score: vocab.scores[id], length: piece.length });
      };
      for (let i = 1; i < symbols.length; i++) consider(i - 1, i);
      while (agenda.size) {
        const top = agenda.pop();
        const left = symbols[top.left];
        const right = symbols[top.right];
        // A pair is stale once either side has been merged since it was found.
        if (!left.piece || !right.piece || left.piece.length + right.piece.length !== top.length) continue;
        left.piece += right.piece;
        right.piece = "";
        left.next = right.next;
        if (right.next >= 0) symbols[right.next].prev = top.left;
        consider(left.prev, top.left);
        consider(top.left, left.next);
      }
      const pieces = [];
      for (let i = symbols.length ? 0 : -1; i >= 0; i = symbols[i].next) pieces.push(symbols[i].piece);
      return ids(pieces);
    }

    // Unigram: the segmentation whose pieces' scores add up highest (Viterbi over UTF-8 byte positions, with
    // sentencepiece's bonus for user-defined symbols and its penalty for a character no piece covers).
    function encodeUnigram(text) {
      // Code points: a piece may start inside a user-defined symbol here, which only its bonus discourages.
      const units = normalize(text).flatMap((unit) => [...unit.text]).map((ch) => ({ text: ch, bytes: utf8.encode(ch).length }));
      const n = units.length;
      const unknownScore = f32(minScore - UNKNOWN_PENALTY);
      const best = Array.from({ length: n + 1 }, () => ({ score: 0, start: -1, id: -1 }));
      const offer = (end, start, candidate, id) => {
        if (best[end].start === -1 || candidate > best[end].score) best[end] = { score: f32(candidate), start, id };
      };
      for (let start = 0; start < n; start++) {
        const before = best[start].score;
        let piece = "";
        let bytes = 0;
        let single = false;
        for (let end = start + 1; end <= Math.min(n, start + maxPieceLength); end++) {
          piece += units[end - 1].text;
          bytes += units[end - 1].bytes;
          const id = pieceIds.get(piece);
          if (id === undefined) continue;
          // As in sentencepiece: a user-defined symbol's score is a double, a piece's a float32 sum.
          const candidate = vocab.types[id] === "user" ? f32(bytes * maxScore) - 0.1 + before : f32(vocab.scores[id] + before);
          offer(end, start, candidate, id);
          if (end === start + 1) single = true;
        }
        if (!single) offer(start + 1, start, f32(unknownScore + before), vocab.unknown_id);
      }
      const pieces = [];
      for (let end = n; end > 0; end = best[end].start) {
        const start = best[end].start;
        pieces.push(best[end].id === vocab.unknown_id ? units.slice(start, end).map((u) => u.text).join("") : vocab.pieces[best[end].id]);
      }
      return ids(pieces.reverse());
    }

    const pieceBytes = vocab.pieces.map((piece, id) => {
      const type = vocab.types[id];
      if (type === "byte") return new Uint8Array([parseInt(piece.slice(3, 5), 16)]);
      if (type === "unknown") return utf8.encode(UNKNOWN_TEXT);
      if (type === "control") return new Uint8Array(0);
      return utf8.encode(piece.split(SPACE).join(" "));
    });
    const encode = vocab.model_type === "bpe" ? encodeBpe : encodeUnigram;
    return {
      encode,
      start: () => encode(vocab.start_text),
      decoder: () => decoder((id) => pieceBytes[id]),
    };
  }

  // A binary heap; `before(a, b)` says a comes out first.
  class Heap {
    constructor(before) {
      this.before = before;
      this.items = [];
    }
    get size() {
      return this.items.length;
    }
    push(item) {
      const items = this.items;
      items.push(item);
      for (let i = items.length - 1; i > 0; ) {
        const parent = (i - 1) >> 1;
        if (!this.before(items[i], items[parent])) break;
        [items[i], items[parent]] = [items[parent], items[i]];
        i = parent;
      }
    }
    pop() {
      const items = this.items;
      const top = items[0];
      const last = items.pop();
      if (items.length) {
        items[0] = last;
        for (let i = 0; ; ) {
          const left = 2 * i + 1;
          const right = left + 1;
          let first = i;
          if (left < items.length && this.before(items[left], items[first])) first = left;
          if (right < items.length && this.before(items[right], items[first])) first = right;
          if (first === i) break;
          [items[i], items[first]] = [items[first], items[i]];
          i = first;
        }
      }
      return top;
    }
  }

  root.charrnnTokenizer = makeTokenizer;
  if (typeof module !== "undefined") module.exports = makeTokenizer;
})(typeof globalThis !== "undefined" ? globalThis : this);
