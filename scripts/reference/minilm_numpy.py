"""Independent float reference for all-MiniLM-L6-v2: a from-scratch numpy BERT forward (float64),
a minimal BERT uncased WordPiece tokenizer for plain sentences, mean pooling and L2 norm.

It shares no code with the Rust implementation; the Rust tests compare against the vectors it
writes. Regenerate (needs numpy):
    python3 scripts/reference/minilm_numpy.py ~/.cache/ditto/all-minilm-l6-v2 \
        host/models/tests/vectors/minilm-float.json
"""
import json, math, struct, sys
import numpy as np

SENTENCES = [
    "hello world!",
    "a man is eating food.",
    "a man is eating a piece of bread.",
    "the girl is carrying a baby.",
    "a man is riding a horse.",
    "the new movie is awesome, i loved it.",
    "secure inference keeps the input private.",
]

def load(path):
    f = open(path, "rb")
    n = struct.unpack("<Q", f.read(8))[0]
    header = json.loads(f.read(n))
    data = f.read()
    out = {}
    for name, meta in header.items():
        if name == "__metadata__" or meta["dtype"] != "F32":
            continue
        a, b = meta["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype="<f4").reshape(meta["shape"]).astype(np.float64)
    return out

def wordpiece(text, vocab):
    ids = [vocab["[CLS]"]]
    words, cur = [], ""
    for ch in text.lower():
        if ch.isspace():
            if cur: words.append(cur)
            cur = ""
        elif not ch.isalnum():
            if cur: words.append(cur)
            cur = ""
            words.append(ch)
        else:
            cur += ch
    if cur: words.append(cur)
    for w in words:
        start = 0
        while start < len(w):
            end = len(w)
            while end > start:
                piece = ("##" if start > 0 else "") + w[start:end]
                if piece in vocab:
                    ids.append(vocab[piece]); break
                end -= 1
            if end == start:
                ids.append(vocab["[UNK]"]); break
            start = end
    ids.append(vocab["[SEP]"])
    return ids

def layernorm(x, g, b, eps):
    m = x.mean(-1, keepdims=True)
    v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / np.sqrt(v + eps) * g + b

def gelu(x):
    erf = np.vectorize(math.erf)
    return 0.5 * x * (1 + erf(x / math.sqrt(2)))

def forward(w, cfg, ids):
    n, h, H = len(ids), cfg["hidden_size"], cfg["num_attention_heads"]
    dh = h // H
    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:n] \
        + w["embeddings.token_type_embeddings.weight"][0]
    x = layernorm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], cfg["layer_norm_eps"])
    lin = lambda x, p: x @ w[p + ".weight"].T + w[p + ".bias"]
    for l in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{l}"
        q, k, v = (lin(x, f"{p}.attention.self.{t}") for t in ("query", "key", "value"))
        heads = []
        for i in range(H):
            s = slice(i * dh, (i + 1) * dh)
            a = q[:, s] @ k[:, s].T / math.sqrt(dh)
            a = np.exp(a - a.max(-1, keepdims=True)); a /= a.sum(-1, keepdims=True)
            heads.append(a @ v[:, s])
        x = layernorm(x + lin(np.concatenate(heads, -1), f"{p}.attention.output.dense"),
                      w[f"{p}.attention.output.LayerNorm.weight"], w[f"{p}.attention.output.LayerNorm.bias"], cfg["layer_norm_eps"])
        u = gelu(lin(x, f"{p}.intermediate.dense"))
        x = layernorm(x + lin(u, f"{p}.output.dense"), w[f"{p}.output.LayerNorm.weight"], w[f"{p}.output.LayerNorm.bias"], cfg["layer_norm_eps"])
    e = x.mean(0)
    return e / np.linalg.norm(e)

def main(model_dir, out):
    cfg = json.load(open(model_dir + "/config.json"))
    vocab = {t.rstrip("\n"): i for i, t in enumerate(open(model_dir + "/vocab.txt", encoding="utf-8"))}
    w = load(model_dir + "/model.safetensors")
    rows = []
    for s in SENTENCES:
        ids = wordpiece(s, vocab)
        e = forward(w, cfg, ids)
        rows.append({"text": s, "ids": ids, "embedding": [round(float(v), 7) for v in e]})
    json.dump({"about": "all-MiniLM-L6-v2 float64 numpy reference; scripts/reference/minilm_numpy.py", "sentences": rows},
              open(out, "w"), indent=1)

if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
