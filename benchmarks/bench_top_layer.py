"""Fine-tuning only mpnet's top layer(s) on hidden states cached once, on RT's validation split.

One balanced sample of ``--budget`` labels from the training part of RT's pool (``validation_split``, as
``bench_indomain.py``) and the validation part are passed once through mpnet (torch fp32), keeping the
hidden states that enter its last ``--layers`` layers. Those layers (a copy) and a linear head started
from the frozen prompt-prior logreg of the same sample are then trained on the labelled states (AdamW,
``--epochs``), and the validation part is scored after each epoch through the trained layers, mean
pooling and L2 normalisation, as the frozen encoder pools. Prints the frozen head's validation accuracy,
each epoch's, and the CPU seconds of the one cached pass and of the training. RT's test split is never read.

    PYTHONPATH=. python benchmarks/bench_top_layer.py [--budget 128] [--seed 0] [--layers 1] [--epochs 6]
"""

from __future__ import annotations

import argparse
import copy
import os
import time

import numpy as np


def main() -> None:
    import torch

    from pipeline.data.dataset import budget_indices, load, split, validation_split
    from pipeline.encoders import get_encoder
    from pipeline.heads.prompts import DEFAULT, direction
    from pipeline.heads.registry import FitOptions, fit_head
    from pipeline.store.cache import EmbeddingCache, default_cache_dir

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--lr", type=float, default=2e-5)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(2)
    pool, _ = split(load("rt"))
    tr, va = validation_split(pool)
    idx = budget_indices(tr, args.budget, args.seed)
    enc = get_encoder("mpnet[backend=torch]")
    cache = EmbeddingCache(default_cache_dir(), progress=False)
    X, V = cache.vectors(enc, [tr.texts[i] for i in idx]), cache.vectors(enc, va.texts)
    u = direction(cache.vectors(enc, DEFAULT.texts), len(DEFAULT.positive))
    y = tr.labels[idx]
    frozen = fit_head("logreg", X, y,
                      FitOptions(groups=[tr.groups[i] for i in idx], seed=args.seed, prompt_direction=u))
    print(f"frozen prompt-prior logreg: val {100 * (frozen.estimator.predict(V) == va.labels).mean():.1f}; "
          f"load {os.getloadavg()[0]:.1f}", flush=True)

    enc._load(None, None)
    st = enc._model
    body = st[0].auto_model
    tok = st.tokenizer
    cut = len(body.encoder.layer) - args.layers

    def states(texts: list[str]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        out = []
        with torch.inference_mode():
            for start in range(0, len(texts), 32):
                batch = tok(texts[start:start + 32], padding=True, truncation=True, max_length=128, return_tensors="pt")
                hidden = body(**batch, output_hidden_states=True).hidden_states[cut]
                for h, m in zip(hidden, batch["attention_mask"]):
                    n = int(m.sum())
                    out.append((h[:n].clone(), m[:n].clone()))
        return out

    c0 = time.process_time()
    S_train, S_val = states([tr.texts[i] for i in idx]), states(va.texts)
    cached_cpu = time.process_time() - c0
    top = copy.deepcopy(body.encoder.layer[cut:])
    clf = frozen.estimator[-1]
    head = torch.nn.Linear(768, 1)
    with torch.no_grad():
        head.weight.copy_(torch.tensor(np.asarray(clf.coef_, dtype=np.float32)))
        head.bias.copy_(torch.tensor(np.asarray(clf.intercept_, dtype=np.float32)))

    def forward(items: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        length = max(len(h) for h, _ in items)
        h = torch.zeros(len(items), length, 768)
        m = torch.zeros(len(items), length)
        for i, (hi, mi) in enumerate(items):
            h[i, :len(hi)], m[i, :len(mi)] = hi, mi
        bias = body.encoder.compute_position_bias(h)
        ext = (1.0 - m[:, None, None, :]) * torch.finfo(h.dtype).min
        for layer in top:
            h = layer(h, ext, bias)[0]
        pooled = (h * m[..., None]).sum(1) / m.sum(1, keepdim=True)
        return head(torch.nn.functional.normalize(pooled, dim=-1)).squeeze(-1)

    def val_accuracy() -> float:
        top.eval()
        with torch.inference_mode():
            z = torch.cat([forward(S_val[i:i + 64]) for i in range(0, len(S_val), 64)])
        top.train()
        return 100 * float(((z > 0).numpy() == va.labels).mean())

    print(f"cached pass over {len(S_train) + len(S_val)} texts: {cached_cpu:.0f} CPU s; epoch 0 (the frozen head "
          f"through the copied layers): val {val_accuracy():.1f}", flush=True)
    opt = torch.optim.AdamW([{"params": top.parameters(), "lr": args.lr},
                             {"params": head.parameters(), "lr": 1e-3}], weight_decay=0.01)
    target = torch.tensor(y, dtype=torch.float32)
    rng = np.random.default_rng(args.seed)
    c0 = time.process_time()
    for epoch in range(1, args.epochs + 1):
        for b in np.array_split(rng.permutation(len(S_train)), max(1, len(S_train) // 16)):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(forward([S_train[i] for i in b]), target[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
        print(f"epoch {epoch}: val {val_accuracy():.1f}; training {time.process_time() - c0:.0f} CPU s so far; "
              f"load {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
