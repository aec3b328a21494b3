"""Kernel taps that only ever read zero padding, and the smaller convolution without them.

With padding 'same' and a kernel much larger than the input (2400x2400 over 40x40), most taps
read padding for every output position: their products are 0·w. Along each spatial axis the taps
that reach real input form a range [lo, hi]; dropping the rest changes no finite result, and the
convolution becomes one with kernel w[..., lo:hi+1] over the input padded by ``before - lo·d``
(negative: cropped) and whatever the output positions still need after it. The engine adds back
what the dropped taps contribute when they are not finite (0·inf and 0·NaN are NaN).
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

__all__ = ["Trim", "plan"]


class Trim(NamedTuple):
    taps: Tuple[slice, ...]  # kept taps per spatial axis; an empty slice if no tap reads input
    pads: Tuple[Tuple[int, int], ...]  # (before, after) padding of the smaller convolution
    empty: bool  # some axis has no tap that reads input: every output is bias only


def _reaches(t, size, before, out, stride, dilation) -> bool:
    """Whether tap t reads a real (unpadded) position for some output position."""
    first = max(0, -(-(before - t * dilation) // stride))  # first output whose tap t is at or past the input
    return first < out and t * dilation + first * stride < before + size


def plan(spatial, kernel, stride, dilation, pads, outs) -> Optional[Trim]:
    """The smaller convolution, or None when every tap reaches the input."""
    taps, new_pads, empty = [], [], False
    for size, k, s, d, (before, _after), out in zip(spatial, kernel, stride, dilation, pads, outs):
        used = [t for t in range(k) if _reaches(t, size, before, out, s, d)]
        if not used:
            empty = True
            taps.append(slice(0, 0))
            new_pads.append((before, _after))
            continue
        lo, hi = used[0], used[-1]
        taps.append(slice(lo, hi + 1))
        b = before - lo * d
        new_pads.append((b, (out - 1) * s + (hi - lo) * d + 1 - size - b))
    if not empty and all(t.start == 0 and t.stop == k for t, k in zip(taps, kernel)):
        return None
    return Trim(tuple(taps), tuple(new_pads), empty)
