"""Independent float reference for GPT-2: a from-scratch numpy GPT-2 forward (float64) over the
whole sequence at each step (no KV cache), greedy continuation, on the model shipped in ditto
(models/austen-gpt2) or any HF GPT-2 directory (F32 or F16 weights).

It shares no code with the Rust implementation; host/models/tests/gpt2_float.rs feeds the same
token ids through the Rust float model (with its KV cache) and compares. Token ids are given
directly (the tokenizer is not under test here). Regenerate (needs numpy):
    python3 scripts/reference/gpt2_numpy.py models/austen-gpt2 host/models/tests/vectors/gpt2-float.json
"""
import json, math, struct, sys
import numpy as np

PROMPTS = [
    [17],
    [101, 5, 300, 42, 7, 900],
    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20],
]
STEPS = 4
SHOWN = 32  # logits of ids 0..SHOWN and of the top 8 are written per step


def load(path):
    f = open(path, "rb")
    n = struct.unpack("<Q", f.read(8))[0]
    header = json.loads(f.read(n))
    data = f.read()
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        dtype = {"F32": "<f4", "F16": "<f2"}[meta["dtype"]]
        a, b = meta["data_offsets"]
        key = name[len("transformer."):] if name.startswith("transformer.") else name
        out[key] = np.frombuffer(data[a:b], dtype=dtype).reshape(meta["shape"]).astype(np.float64)
    return out


def layernorm(x, g, b, eps):
    m = x.mean(-1, keepdims=True)
    v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / np.sqrt(v + eps) * g + b


def gelu_new(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def logits(w, cfg, ids):
    n, h, H = len(ids), cfg["n_embd"], cfg["n_head"]
    dh, eps = h // H, cfg["layer_norm_epsilon"]
    x = w["wte.weight"][ids] + w["wpe.weight"][:n]
    mask = np.triu(np.full((n, n), -np.inf), 1)
    conv = lambda x, p: x @ w[p + ".weight"] + w[p + ".bias"]  # Conv1D: W is [in, out]
    for l in range(cfg["n_layer"]):
        p = f"h.{l}"
        qkv = conv(layernorm(x, w[f"{p}.ln_1.weight"], w[f"{p}.ln_1.bias"], eps), f"{p}.attn.c_attn")
        q, k, v = qkv[:, :h], qkv[:, h:2 * h], qkv[:, 2 * h:]
        heads = []
        for i in range(H):
            s = slice(i * dh, (i + 1) * dh)
            a = q[:, s] @ k[:, s].T / math.sqrt(dh) + mask
            a = np.exp(a - a.max(-1, keepdims=True)); a /= a.sum(-1, keepdims=True)
            heads.append(a @ v[:, s])
        x = x + conv(np.concatenate(heads, -1), f"{p}.attn.c_proj")
        m = layernorm(x, w[f"{p}.ln_2.weight"], w[f"{p}.ln_2.bias"], eps)
        x = x + conv(gelu_new(conv(m, f"{p}.mlp.c_fc")), f"{p}.mlp.c_proj")
    last = layernorm(x[-1], w["ln_f.weight"], w["ln_f.bias"], eps)
    return w["wte.weight"] @ last  # the LM head is tied to wte


def main(model_dir, out):
    cfg = json.load(open(model_dir + "/config.json"))
    assert cfg.get("activation_function", "gelu_new") == "gelu_new"
    w = load(model_dir + "/model.safetensors")
    rows = []
    for prompt in PROMPTS:
        ids, steps = list(prompt), []
        for _ in range(STEPS):
            z = logits(w, cfg, ids)
            top = [int(i) for i in np.argsort(-z, kind="stable")[:8]]
            steps.append({"first": [round(float(v), 6) for v in z[:SHOWN]],
                          "top": [[i, round(float(z[i]), 6)] for i in top]})
            ids.append(top[0])
        rows.append({"prompt": prompt, "greedy": ids[len(prompt):], "steps": steps})
    json.dump({"about": "GPT-2 float64 numpy reference (whole-sequence forward, tied head); "
                        "scripts/reference/gpt2_numpy.py on " + model_dir, "prompts": rows},
              open(out, "w"), indent=1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
