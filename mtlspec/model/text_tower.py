"""The text tower: token ids -> token features, their mask and one vector per text.

`transformer`: token and learned position embeddings, pre-norm self-attention layers (padding
masked out), a final LayerNorm; the text's vector is the mean of its valid tokens. `gru`: token
embeddings, a bidirectional GRU over the valid tokens (packed, so padding never enters it), its
two last states concatenated and projected to `width`. `bag`: token embeddings, the text's vector
the LayerNorm of their mean over the valid tokens (a bag of words: the order is not seen). Index 0
is padding (text/tokenizer.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn


@dataclass
class TextFeatures:
    tokens: torch.Tensor  # (N, L, D)
    valid: torch.Tensor  # (N, L) bool: a real token (not padding)
    vector: torch.Tensor  # (N, D)


class TextTower(nn.Module):
    def __init__(self, vocabulary_size: int, spec: Any):
        super().__init__()
        self.kind, self.width, self.max_length = spec.type, spec.width, spec.max_length
        self.embed = nn.Embedding(vocabulary_size, spec.width, padding_idx=0)
        if spec.type == "bag":
            self.norm = nn.LayerNorm(spec.width)
        elif spec.type == "transformer":
            if spec.width % spec.heads:
                raise ValueError(f"width {spec.width} is not a multiple of heads {spec.heads}")
            self.position = nn.Parameter(torch.zeros(1, spec.max_length, spec.width))
            nn.init.normal_(self.position, std=0.02)
            layer = nn.TransformerEncoderLayer(spec.width, spec.heads, dim_feedforward=2 * spec.width, dropout=0.0,
                                               batch_first=True, norm_first=True)
            self.encoder = nn.TransformerEncoder(layer, spec.layers, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(spec.width)
        else:
            self.gru = nn.GRU(spec.width, spec.width, num_layers=spec.layers, batch_first=True, bidirectional=True)
            self.project = nn.Linear(2 * spec.width, spec.width)
            self.token_project = nn.Linear(2 * spec.width, spec.width)

    def forward(self, ids: torch.Tensor) -> TextFeatures:
        ids = ids[:, : self.max_length]
        valid = ids != 0
        x = self.embed(ids)
        if self.kind == "bag":
            weights = valid.to(x.dtype).unsqueeze(-1)
            return TextFeatures(x, valid, self.norm((x * weights).sum(1) / weights.sum(1).clamp(min=1.0)))
        if self.kind == "transformer":
            x = x + self.position[:, : ids.shape[1]]
            x = self.norm(self.encoder(x, src_key_padding_mask=~valid))
            weights = valid.to(x.dtype).unsqueeze(-1)
            vector = (x * weights).sum(1) / weights.sum(1).clamp(min=1.0)
            return TextFeatures(x, valid, vector)
        if ids.device.type == "meta":  # a shape check (validate --deep, run's preflight): packing needs the lengths' values
            out, last = self.gru(x)
            return TextFeatures(self.token_project(out), valid, self.project(torch.cat([last[-2], last[-1]], dim=1)))
        lengths = valid.sum(1).clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, last = self.gru(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])
        vector = self.project(torch.cat([last[-2], last[-1]], dim=1))
        return TextFeatures(self.token_project(out), valid, vector)


def load_pretrained(tower: TextTower, path: Path) -> str:
    """Start the tower from a local checkpoint: an mtlspec model.pt or checkpoint (its `text.`
    weights), or a state dict of the tower alone; what it gave, in words. Read weights-only."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if any(k.startswith("text.") for k in state):
        state = {k[len("text."):]: v for k, v in state.items() if k.startswith("text.")}
    own = tower.state_dict()
    wrong = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    if wrong:
        raise ValueError(f"{path}: {wrong[0]} is {tuple(state[wrong[0]].shape)} here {tuple(own[wrong[0]].shape)} "
                         f"(a different vocabulary or width: the tower must be built as the checkpoint's was)")
    missing, unexpected = tower.load_state_dict(state, strict=False)
    if len(missing) == len(own):
        raise ValueError(f"{path} holds no weights of a text tower")
    return f"text tower from {path.name}: {len(own) - len(missing)} of {len(own)} tensors" + (f", {len(unexpected)} unused" if unexpected else "")
