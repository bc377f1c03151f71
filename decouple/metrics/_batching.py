"""Shared plumbing of the model-based metrics: frames in batches through a model.

One home for what every metric that runs a model does the same way:

- frames come as one `(n, 3, h, w)` tensor or as an iterable of such batches (a caller can
  stream a corpus without holding it in memory); each batch is checked against the project's
  frame convention (RGB, channels first, uint8 0..255 or float in [0, 1]) and cut into chunks
  of at most `batch_size` frames;
- the model runs under `torch.no_grad()` on its own device (inputs are moved to
  `next(model.parameters()).device` when it has parameters, else left where they are) and in
  eval mode (an `nn.Module` in training mode is switched to eval for the call and every
  submodule's mode is restored afterwards: BatchNorm / dropout in training mode would make a
  metric depend on how the frames are batched). A bound method of a module
  (`efficientface.features`, `arcface.embed`) counts as that module. The mode and gradient
  switch is `inference`, a plain `with` block around the whole loop in the calling function:
  the generator `iter_embeddings` never holds a context across a `yield` (a grad mode or a
  module mode entered inside a suspended generator leaks into the caller, and interleaved
  generators restore them in the wrong order), it only wraps each model call in
  `torch.no_grad()`;
- outputs are checked (`(b, d)`, one row per frame, finite) and returned as float64 on the CPU.

Examples:
    >>> import torch
    >>> batches = [torch.rand(3, 3, 8, 8), torch.rand(2, 3, 8, 8)]
    >>> embed = lambda x: x.mean((2, 3))
    >>> with inference(embed):
    ...     rows = list(iter_embeddings(batches, embed, batch_size=2, where="demo"))
    >>> [tuple(r.shape) for r in rows], rows[0].dtype
    ([(2, 3), (1, 3), (2, 3)], torch.float64)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from decouple.encoders.spec import ImageSpec

__all__ = [
    "check_batch_size",
    "frame_batches",
    "inference",
    "iter_embeddings",
    "model_device",
    "module_of",
]


def check_batch_size(batch_size: int, where: str) -> int:
    """`batch_size` as a positive int, or a ValueError naming the function.

    Args:
        batch_size: Frames per model call.
        where: The calling function's name, for the error message.

    Returns:
        The batch size.

    Raises:
        ValueError: If it is not a positive integer.

    Examples:
        >>> check_batch_size(8, "demo")
        8
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"{where}: batch_size must be a positive int, got {batch_size!r}")
    return batch_size


def module_of(model: object) -> nn.Module | None:
    """The `nn.Module` behind a callable: itself, the owner of a bound method, or None.

    Args:
        model: Any callable.

    Returns:
        The module, or None for plain functions.

    Examples:
        >>> from torch import nn
        >>> net = nn.Linear(2, 2)
        >>> module_of(net) is net, module_of(net.forward) is net, module_of(len)
        (True, True, None)
    """
    if isinstance(model, nn.Module):
        return model
    owner = getattr(model, "__self__", None)
    return owner if isinstance(owner, nn.Module) else None


def model_device(model: object) -> torch.device | None:
    """The device of a model's first parameter, or None (no parameters, or not a module).

    Args:
        model: Any callable; only `nn.Module`s (or their bound methods) with parameters have
            a device.

    Returns:
        The device, or None when inputs should stay where they are.

    Examples:
        >>> from torch import nn
        >>> model_device(nn.Linear(2, 2)), model_device(lambda x: x)
        (device(type='cpu'), None)
    """
    module = module_of(model)
    if module is None:
        return None
    param = next(module.parameters(), None)
    return None if param is None else param.device


@contextmanager
def inference(model: object) -> Iterator[None]:
    """No gradients, and an `nn.Module` in eval mode; every submodule's mode restored after.

    Args:
        model: Any callable (only the mode of an `nn.Module`, or of the module a bound
            method belongs to, is touched).

    Yields:
        Nothing; the model is ready for evaluation inside the block.

    Examples:
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Linear(2, 2), nn.Dropout()).train()
        >>> with inference(net):
        ...     net.training
        False
        >>> net.training, net[1].training
        (True, True)
    """
    module = module_of(model)
    modes = [(m, m.training) for m in module.modules()] if module is not None else []
    try:
        if module is not None and any(training for _, training in modes):
            module.eval()
        with torch.no_grad():
            yield
    finally:
        for module, training in modes:
            module.training = training


def frame_batches(
    frames: Tensor | Iterable[Tensor], batch_size: int, *, where: str, what: str = "frames"
) -> Iterator[Tensor]:
    """Chunks of at most `batch_size` frames, each checked against the frame convention.

    Args:
        frames: One `(n, 3, h, w)` tensor, or an iterable of `(b, 3, h, w)` tensors; RGB,
            uint8 0..255 or float in [0, 1].
        batch_size: Largest chunk.
        where: The calling function's name, for error messages.
        what: The frames argument's name, for error messages.
        name: The model argument's name, for error messages ("embed", "classifier").

    Yields:
        `(b, 3, h, w)` tensors with 1 <= b <= batch_size (empty batches are skipped).

    Raises:
        TypeError: If `frames` is neither a tensor nor an iterable of tensors.
        decouple.encoders.ImageSpecError: If a batch breaks the frame convention.

    Examples:
        >>> import torch
        >>> [len(b) for b in frame_batches(torch.rand(5, 3, 4, 4), 2, where="demo")]
        [2, 2, 1]
    """
    spec = ImageSpec(name=where)
    if isinstance(frames, Tensor):
        source: Iterable[Tensor] = (frames,)
    elif isinstance(frames, Iterable) and not isinstance(frames, (str, bytes)):
        source = frames
    else:
        raise TypeError(
            f"{where}: {what} must be a (n, 3, h, w) tensor or an iterable of (b, 3, h, w) "
            f"tensors, got {type(frames).__name__}"
        )
    for i, batch in enumerate(source):
        label = what if isinstance(frames, Tensor) else f"{what} batch {i}"
        spec.check(batch, label)
        for start in range(0, batch.shape[0], batch_size):
            yield batch[start : start + batch_size]


def iter_embeddings(
    frames: Tensor | Iterable[Tensor],
    embed: Callable[[Tensor], Tensor],
    *,
    batch_size: int,
    where: str,
    what: str = "frames",
    name: str = "embed",
) -> Iterator[Tensor]:
    """Run `embed` over the frames in batches; rows as float64 on the CPU.

    Each call runs under `torch.no_grad()` on the model's device. The caller puts the whole
    loop inside `with inference(embed):` for eval mode (this generator holds no context
    across its `yield`s).

    Args:
        frames: One `(n, 3, h, w)` tensor or an iterable of batches (see `frame_batches`).
        embed: A callable `(b, 3, h, w) -> (b, d)` (an `nn.Module` or a function).
        batch_size: Largest number of frames per call.
        where: The calling function's name, for error messages.
        what: The frames argument's name, for error messages.
        name: The model argument's name, for error messages ("embed", "classifier").

    Yields:
        One `(b, d)` float64 CPU tensor per call, in frame order.

    Raises:
        ValueError: If `embed` returns something else than one finite row per frame, or the
            rows of different calls differ in size.

    Examples:
        >>> import torch
        >>> rows = iter_embeddings(torch.rand(4, 3, 8, 8), lambda x: x.flatten(1)[:, :5],
        ...                        batch_size=3, where="demo")
        >>> [tuple(r.shape) for r in rows]
        [(3, 5), (1, 5)]
    """
    check_batch_size(batch_size, where)
    if not callable(embed):
        raise TypeError(f"{where}: {name} must be callable (frames -> (b, d)), got "
                        f"{type(embed).__name__}")  # fmt: skip
    device = model_device(embed)
    width: int | None = None
    seen = 0
    for batch in frame_batches(frames, batch_size, where=where, what=what):
        x = batch if device is None else batch.to(device)
        with torch.no_grad():
            z = embed(x)
        b = batch.shape[0]
        if not isinstance(z, Tensor):
            raise ValueError(f"{where}: {name} returned a {type(z).__name__} for {what} "
                             f"{seen}..{seen + b - 1}, expected a (b, d) tensor")  # fmt: skip
        if z.dim() != 2 or z.shape[0] != b:
            raise ValueError(
                f"{where}: {name} returned shape {tuple(z.shape)} for a batch of {b} "
                f"{what}; expected ({b}, d): one feature row per frame"
            )
        if width is not None and z.shape[1] != width:
            raise ValueError(
                f"{where}: {name} returned {z.shape[1]} features for {what} {seen}.."
                f"{seen + b - 1} but {width} before"
            )
        width = z.shape[1]
        z = z.detach().to("cpu", torch.float64)
        if not bool(torch.isfinite(z).all()):
            raise ValueError(f"{where}: {name} returned non-finite features for {what} "
                             f"{seen}..{seen + b - 1}")  # fmt: skip
        seen += b
        yield z
