"""Control flow: If, Loop, Scan.

Subgraphs run through ``ctx.run_graph(graph, inputs)``, which compiles each graph once and lets it read values
of the enclosing scopes.
"""

from __future__ import annotations

import torch

from ..onnx.dtypes import to_torch_dtype
from ._util import int_list
from .registry import op

_CONTROL_FLOW_VERSIONS = (1, 11, 13, 16, 19, 21, 23, 24, 25)


@op("If", *_CONTROL_FLOW_VERSIONS)
def If(cond, *, then_branch, else_branch, ctx):
    branch = then_branch if bool(cond.reshape(-1)[0]) else else_branch
    return tuple(ctx.run_graph(branch, []))


def _empty_scan_output(ctx, index: int, element) -> torch.Tensor:
    """The stacked scan output of a loop that ran zero times: (0, *element shape when static), declared type.

    ``element`` is the body's output for it (an onnx-ir value or a plan TensorSpec: both have .type and .shape).
    """
    dtype = torch.float32
    out_type = ctx.output_types[index] if index < len(ctx.output_types) else None
    for candidate in (out_type, getattr(element, "type", None)):
        elem_type = int(getattr(candidate, "dtype", 0) or 0)
        if elem_type:
            try:
                dtype = to_torch_dtype(elem_type)
                break
            except Exception:  # an element type torch lacks: keep looking, else float32
                pass
    dims = list(getattr(element, "shape", None) or [])
    shape = (0, *dims) if all(isinstance(d, int) for d in dims) else (0,)
    return torch.empty(shape, dtype=dtype, device=ctx.device)


@op("Loop", *_CONTROL_FLOW_VERSIONS)
def Loop(max_trip_count, cond, *carried, body, ctx):
    """Run ``body(i, cond, carried...)`` while i < M and cond; body outputs (cond, carried..., scan elts...)."""
    trips = None
    if max_trip_count is not None and max_trip_count.numel() > 0:
        trips = int(max_trip_count.reshape(-1)[0])
    keep_going = True if cond is None or cond.numel() == 0 else bool(cond.reshape(-1)[0])
    cond_value = torch.tensor(keep_going, device=ctx.device)
    state = list(carried)
    num_scan = ctx.num_outputs - len(state)
    scans: list[list] = [[] for _ in range(num_scan)]
    i = 0
    while keep_going and (trips is None or i < trips):
        iteration = torch.tensor(i, dtype=torch.int64, device=ctx.device)
        results = ctx.run_graph(body, [iteration, cond_value, *state])
        cond_value = results[0]
        state = list(results[1 : 1 + len(state)])
        for acc, value in zip(scans, results[1 + len(state) :]):
            acc.append(value)
        keep_going = bool(cond_value.reshape(-1)[0])
        i += 1
    stacked = [
        torch.stack(acc) if acc else _empty_scan_output(ctx, len(state) + k, body.outputs[1 + len(state) + k])
        for k, acc in enumerate(scans)
    ]
    return tuple(state + stacked)


def _scan_once(body, ctx, states, slices_per_step, num_states):
    """Iterate ``body`` over the given per-step input slices; (final states, per-output lists of elements)."""
    outputs: list[list] = []
    for slices in slices_per_step:
        results = ctx.run_graph(body, [*states, *slices])
        states = list(results[:num_states])
        if not outputs:
            outputs = [[] for _ in results[num_states:]]
        for acc, value in zip(outputs, results[num_states:]):
            acc.append(value)
    return states, outputs


@op("Scan", 8)
def Scan_8(sequence_lens, *args, body, num_scan_inputs, directions=None, ctx):
    """Scan-8: inputs are batched (axis 0) with the scan axis 1; each batch row runs up to its sequence_lens."""
    num_states = len(args) - num_scan_inputs
    states, scan_inputs = list(args[:num_states]), list(args[num_states:])
    directions = directions or [0] * num_scan_inputs
    batch, max_len = scan_inputs[0].shape[0], scan_inputs[0].shape[1]
    lengths = int_list(sequence_lens) if sequence_lens is not None else [max_len] * batch
    final_states: list[list] = [[] for _ in range(num_states)]
    scan_rows: list[list] = []
    for b in range(batch):
        steps = []
        for t in range(lengths[b]):
            steps.append([x[b, lengths[b] - 1 - t if d else t] for x, d in zip(scan_inputs, directions)])
        row_states, row_outputs = _scan_once(body, ctx, [s[b] for s in states], steps, num_states)
        for acc, value in zip(final_states, row_states):
            acc.append(value)
        padded = []
        for elts in row_outputs:
            stacked = torch.stack(elts)
            pad = max_len - stacked.shape[0]
            if pad:
                stacked = torch.cat([stacked, stacked.new_zeros((pad, *stacked.shape[1:]))])
            padded.append(stacked)
        scan_rows.append(padded)
    outputs = [torch.stack(v) for v in final_states]
    num_scan_outputs = len(scan_rows[0]) if scan_rows else 0
    outputs += [torch.stack([row[k] for row in scan_rows]) for k in range(num_scan_outputs)]
    return tuple(outputs)


@op("Scan", 9, 11, 16, 19, 21, 23, 24, 25)
def Scan_9(
    *args,
    body,
    num_scan_inputs,
    scan_input_axes=None,
    scan_input_directions=None,
    scan_output_axes=None,
    scan_output_directions=None,
    ctx,
):
    """Scan-9+: per-input scan axis and direction, per-output stacking axis and direction; no batching."""
    num_states = len(args) - num_scan_inputs
    states, scan_inputs = list(args[:num_states]), list(args[num_states:])
    in_axes = [a + x.dim() if a < 0 else a for a, x in zip(scan_input_axes or [0] * num_scan_inputs, scan_inputs)]
    in_dirs = scan_input_directions or [0] * num_scan_inputs
    length = scan_inputs[0].shape[in_axes[0]]
    steps = []
    for t in range(length):
        steps.append([x.select(a, length - 1 - t if d else t) for x, a, d in zip(scan_inputs, in_axes, in_dirs)])
    states, elements = _scan_once(body, ctx, states, steps, num_states)
    num_scan_outputs = ctx.num_outputs - num_states
    out_axes = scan_output_axes or [0] * num_scan_outputs
    out_dirs = scan_output_directions or [0] * num_scan_outputs
    outputs = list(states)
    for k in range(num_scan_outputs):
        elts = elements[k] if k < len(elements) else []
        if not elts:
            outputs.append(_empty_scan_output(ctx, num_states + k, body.outputs[num_states + k]))
            continue
        if out_dirs[k]:
            elts = elts[::-1]
        axis = out_axes[k]
        axis = axis + elts[0].dim() + 1 if axis < 0 else axis
        outputs.append(torch.stack(elts, dim=axis))
    return tuple(outputs)
