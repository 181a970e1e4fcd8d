"""`mtlspec graph`: the compiled model as a tree of shared and per-task parts, with parameter
counts and multiply-accumulates (MACs) per forward pass of one image."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn


def _macs_per_module(model: nn.Module, image_size: int) -> dict[str, int]:
    """MACs of every convolution and linear layer for one image, by module name."""
    counts: dict[str, int] = {}
    hooks = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            def conv_hook(m, inputs, output, name=name):
                counts[name] = counts.get(name, 0) + output.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
            hooks.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, nn.Linear):
            def linear_hook(m, inputs, output, name=name):
                counts[name] = counts.get(name, 0) + output.numel() * m.in_features
            hooks.append(module.register_forward_hook(linear_hook))
    model.eval()
    with torch.no_grad():
        model(model.example_images(1, image_size), model.example_text(1))
    for hook in hooks:
        hook.remove()
    return counts


def _node(name: str, params: list[nn.Parameter], macs: int, children: list[dict] | None = None) -> dict[str, Any]:
    return {"name": name, "params": sum(p.numel() for p in params), "macs": macs, "children": children or []}


def model_graph(spec: Any, base: Path = Path("."), image_size: int | None = None) -> dict[str, Any]:
    from mtlspec.build import build

    size = image_size or spec.data.image_size
    built = build(spec, base)
    model = built.model
    macs = _macs_per_module(model, size)
    owner: dict[int, str] = {}
    shared_ids = {id(p) for p in model.shared_parameters()}
    for t in spec.tasks:
        for p in model.topology.task_parameters(t):
            owner[id(p)] = t
    module_macs: dict[str, int] = {}
    by_part: dict[str, int] = {"shared": 0, **{t: 0 for t in spec.tasks}}
    named = dict(model.named_modules())
    for name, value in macs.items():
        weight = named[name].weight
        if name.startswith("heads."):
            part = name.split(".")[1]
        elif id(weight) in shared_ids:
            part = "shared"
        else:
            part = owner.get(id(weight), "shared")
        by_part[part] += value
        top = ".".join(name.split(".")[:2])
        module_macs[(part, top)] = module_macs.get((part, top), 0) + value
    shared_children = []
    for child_name, child in model.topology.named_children():
        params = [p for p in child.parameters() if id(p) in shared_ids]
        if params:
            shared_children.append(_node(child_name, params, module_macs.get(("shared", f"topology.{child_name}"), 0)))
    tasks = []
    for t in spec.tasks:
        private = model.topology.task_parameters(t)
        head = list(model.heads[t].parameters())
        head_name = f"head ({built.task_types[t].describe()})"
        head_macs = sum(v for (part, top), v in module_macs.items() if top == f"heads.{t}")
        tasks.append(_node(t, private + head, by_part[t], [
            _node("private layers", private, by_part[t] - head_macs),
            _node(head_name, head, head_macs),
        ]))
    shared = _node("shared", list(model.shared_parameters()), by_part["shared"], shared_children)
    root = _node(f"{spec.name}: {spec.model.backbone.type} + {spec.model.neck.type}, sharing {spec.model.sharing.type}",
                 list(model.parameters()), sum(macs.values()), [shared, *tasks])
    root["image_size"] = size
    return root


def render_tree(graph: dict[str, Any]) -> Any:
    from rich.tree import Tree

    def label(node: dict[str, Any]) -> str:
        return f"[bold]{node['name']}[/]  {node['params']:,} params, {node['macs'] / 1e6:,.1f} MMACs"

    def add(tree: Any, node: dict[str, Any]) -> None:
        for child in node["children"]:
            add(tree.add(label(child)), child)

    tree = Tree(label(graph) + f"  (one {graph['image_size']}x{graph['image_size']} image)")
    add(tree, graph)
    return tree
