"""Null-text's gradient path: the model's weights used by reference, never copied (WeightsAsReferences),
and the identity weight wrappers of the copy path it replaced."""

from __future__ import annotations

import weakref

import torch
from torch.overrides import TorchFunctionMode


def identity_weight(weight):
    # The copy path (NullTextInversion(gradient="copies"), the code before WeightsAsReferences):
    # registered for every UNet weight and bias, it makes ComfyUI cast a *copy* of the weight on
    # every evaluation (inference-mode parameters cannot be saved for backward); detach keeps
    # autograd off the weights. Autograd then keeps a copy of every weight for the backward pass.
    return weight.detach()


_PLAIN = (torch.Tensor, torch.nn.Parameter)  # not quantised or other tensor subclasses


def _alias(t: torch.Tensor) -> torch.Tensor:
    """A normal tensor (not an inference tensor, no gradient) on t's memory: no copy."""
    out = torch.empty(0, dtype=t.dtype, device=t.device)
    return out.set_(t.untyped_storage(), t.storage_offset(), t.size(), t.stride())


def _owns_storage(t: torch.Tensor) -> bool:
    return (t.storage_offset() == 0 and t.is_contiguous()
            and t.untyped_storage().nbytes() == t.numel() * t.element_size())


class _Recast:
    """What the backward pass gets back instead of a kept weight cast: redone from the weight."""

    __slots__ = ("root", "steps", "size", "stride", "offset")

    def __init__(self, root, steps, t):
        self.root, self.steps = root, steps
        self.size, self.stride, self.offset = t.size(), t.stride(), t.storage_offset()

    def rebuild(self) -> torch.Tensor:
        w = self.root
        for device, dtype in self.steps:
            w = w.to(device=device, dtype=dtype)
        return w.as_strided(self.size, self.stride, w.storage_offset() + self.offset)


class _WeightsMode(TorchFunctionMode):
    """Every torch call of the evaluation: its weight arguments swapped (see WeightsAsReferences),
    the casts of weights recorded. The checks are type() tests: this runs for every operation."""

    def __init__(self, owner: "WeightsAsReferences"):
        super().__init__()
        self.owner = owner

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if kwargs is None:
            kwargs = {}
        if func in _PASS:
            return func(*args, **kwargs)
        for a in args:  # a plain loop: this runs for every operation of the evaluation
            t = type(a)
            if t is _PARAMETER or t is list or t is tuple or (t is _TENSOR and a.is_inference()):
                break
        else:
            if not kwargs or not any(map(_needs_swap, kwargs.values())):
                out = func(*args, **kwargs)
                if func is _COPY and len(args) > 1:
                    self.owner.record(args[1], args[0])
                elif func is _TO and type(out) in _PLAIN and out is not args[0]:
                    self.owner.record(args[0], out)
                return out
        swap = self.owner.swap
        args = tuple(swap(a) for a in args)
        kwargs = {k: swap(v) for k, v in kwargs.items()}
        out = func(*args, **kwargs)
        if func is _TO:
            if type(out) in _PLAIN and args and out is not args[0]:
                self.owner.record(args[0], out)
        elif func is _COPY and len(args) > 1:
            self.owner.record(args[1], args[0])
        return out


_PARAMETER = torch.nn.Parameter
_TENSOR = torch.Tensor
_TO = torch.Tensor.to
_COPY = torch.Tensor.copy_
# Calls that read metadata only: nothing to swap or record.
_PASS = frozenset(
    [getattr(torch.Tensor, name).__get__ for name in ("shape", "dtype", "device", "ndim", "requires_grad",
                                                      "is_cuda", "_version", "_base", "grad_fn")]
    + [getattr(torch.Tensor, name) for name in ("dim", "size", "stride", "numel", "is_contiguous", "element_size",
                                                "is_inference", "untyped_storage", "storage_offset", "data_ptr")]
)


def _needs_swap(a) -> bool:
    t = type(a)
    if t is torch.nn.Parameter:
        return True
    if t is torch.Tensor:
        return a.is_inference()
    if t is list or t is tuple:
        return any(_needs_swap(x) for x in a)
    return False


class WeightsAsReferences:
    """Context of one UNet evaluation differentiated w.r.t. its text context only (null-text).

    Exact, and without a copy of the weights in memory:

    * every model weight enters autograd as itself: inference tensors (ComfyUI loads weights in
      inference mode; autograd may not keep those) as a normal tensor on the same memory, and
      parameters that require grad detached, so the graph computes no weight gradients;
    * a weight cast that autograd keeps for the backward pass (fp16 weights computed in fp32,
      weights moved to the GPU layer by layer in low-VRAM mode) is kept as a reference to the
      weight and cast again when the backward pass needs it, one layer at a time.

    The values that enter every operation are the ones a copy would hold, so the gradient is
    bit-identical to the copy path's. A cast that anything changed in place is kept as is.

    What autograd saved for the backward pass, in bytes: `weight_bytes` (the weights themselves:
    no memory of their own), `recast_bytes` (weight casts, kept as references) and `kept_bytes`
    (everything else: activations, and casts it could not trace to a weight).
    """

    def __init__(self):
        self.casts = {}  # storage pointer -> (weakref to the cast, its version, root, steps)
        self.weights = set()  # storage pointers of the weights swapped in
        self.weight_bytes = 0
        self.kept_bytes = 0
        self.recast_bytes = 0
        self._mode = _WeightsMode(self)
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)

    def __enter__(self):
        self.casts.clear()
        self.weights.clear()
        self._hooks.__enter__()
        self._mode.__enter__()
        return self

    def __exit__(self, *exc):
        self._mode.__exit__(*exc)
        self._hooks.__exit__(*exc)
        self.casts.clear()
        self.weights.clear()
        return False

    def swap(self, a):
        t = type(a)
        if t in _PLAIN:
            if a.is_inference():
                a = _alias(a)
                a._p2p_weight = True
            elif t is torch.nn.Parameter:
                if a.requires_grad:
                    a = a.detach()
                    a._p2p_weight = True
            else:
                return a
            if a.numel():
                self.weights.add(a.untyped_storage().data_ptr())
            return a
        if t is list or t is tuple:
            return t(self.swap(x) for x in a)
        return a

    def _root(self, src):
        """(root weight, casts from it) when `src` is a weight or a pure cast of one, else None."""
        if type(src) not in _PLAIN or not src.is_contiguous():
            return None
        if type(src) is torch.nn.Parameter or getattr(src, "_p2p_weight", False):
            return src, ()
        return self._lookup(src)

    def record(self, src, out):
        if type(out) not in _PLAIN or out.numel() == 0 or not _owns_storage(out) or out.shape != src.shape:
            return
        root = self._root(src)
        if root is None:
            return
        base, steps = root
        self.casts[out.untyped_storage().data_ptr()] = (
            weakref.ref(out), out._version, base, (*steps, (out.device, out.dtype)))

    def _lookup(self, t):
        if t.numel() == 0:
            return None
        entry = self.casts.get(t.untyped_storage().data_ptr())
        if entry is None:
            return None
        ref, version, base, steps = entry
        cast = ref()
        if cast is None or cast._version != version or t._version != version:
            return None
        if steps[-1] != (t.device, t.dtype):
            return None
        return base, steps

    def _pack(self, t):
        size = t.numel() * t.element_size()
        entry = self._lookup(t) if type(t) in _PLAIN else None
        if entry is not None:
            self.recast_bytes += size
            return _Recast(entry[0], entry[1], t)
        if size and t.untyped_storage().data_ptr() in self.weights:
            self.weight_bytes += size
        else:
            self.kept_bytes += size
        # Detached: an operation's saved output, kept with its grad_fn, would be a reference cycle
        # (node -> packed tensor -> node) that only the garbage collector frees when no backward pass
        # runs on the graph (an evaluation whose step stops before its update).
        return t.detach() if t.grad_fn is not None else t

    @staticmethod
    def _unpack(p):
        return p.rebuild() if isinstance(p, _Recast) else p
