"""Pure helpers of the native symbolicator: addresses, images, and which frames are caller frames.

Facts from Sentry's protocol: ``instruction_addr``/``image_addr`` are hex strings (or integers);
frames are ordered oldest first, so the crashing frame is the last one. A caller frame's address is
a return address (just after the call), so it is moved back into the call before the lookup, unless
the frame says ``adjust_instruction_addr: false`` or the stack trace's
``instruction_addr_adjustment`` says otherwise (``all``, ``all_but_first``, ``none``, ``auto``:
all but the crashing frame when the stack trace has registers, else all). ``addr_mode: rel:N``
makes an address relative to image N.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .difparse import normalize_id

__all__ = ["Image", "parse_addr", "images_of", "find_image", "should_adjust", "NATIVE_IMAGE_TYPES"]

NATIVE_IMAGE_TYPES = frozenset(("elf", "macho", "pe", "pdb", "symbolic", "apple", "wasm"))
_MAX_ADDR = (1 << 64) - 1


def parse_addr(value: Any) -> int | None:
    """Return an address from a hex string (``0x...``) or a non-negative integer; None if it is neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value <= _MAX_ADDR else None
    if isinstance(value, str) and 2 < len(value) <= 18 and value[:2].lower() == "0x":
        try:
            number = int(value[2:], 16)
        except ValueError:
            return None
        return number if number <= _MAX_ADDR else None
    return None


@dataclass(frozen=True, slots=True)
class Image:
    """A loaded module of the crashed process: where it was and how to find its debug file."""

    index: int
    debug_id: str | None
    code_id: str | None
    addr: int
    size: int
    code_file: str | None
    arch: str | None


def images_of(event: dict[str, Any]) -> list[Image]:
    """The event's native ``debug_meta.images`` with an id and an address (the others cannot be used)."""
    meta = event.get("debug_meta")
    raw = meta.get("images") if isinstance(meta, dict) else None
    images = []
    for index, image in enumerate(raw if isinstance(raw, list) else ()):
        if not isinstance(image, dict) or not isinstance(image.get("type"), str) \
                or image["type"] not in NATIVE_IMAGE_TYPES:
            continue
        debug_id = normalize_id(image.get("debug_id") or image.get("uuid") or image.get("id"))
        code_id = image.get("code_id") if isinstance(image.get("code_id"), str) else None
        addr = parse_addr(image.get("image_addr"))
        size = parse_addr(image.get("image_size")) or 0
        if (debug_id is None and not code_id) or addr is None:
            continue
        code_file = image.get("code_file") if isinstance(image.get("code_file"), str) else None
        arch = image.get("arch") if isinstance(image.get("arch"), str) else None
        images.append(Image(index, debug_id, code_id.lower() if code_id else None, addr, size, code_file, arch))
    return images


def find_image(images: list[Image], addr: int, addr_mode: Any = None) -> tuple[Image, int] | None:
    """Return the image an address falls into and the address relative to it, or None.

    An image without a size is taken to reach up to the next image (as old SDKs send them).
    """
    if isinstance(addr_mode, str) and addr_mode.startswith("rel:"):
        try:
            wanted = int(addr_mode[4:])
        except ValueError:
            return None
        for image in images:
            if image.index == wanted:
                return image, addr
        return None
    ordered = sorted(images, key=lambda image: image.addr)
    for position, image in enumerate(ordered):
        end = image.addr + image.size if image.size else (
            ordered[position + 1].addr if position + 1 < len(ordered) else _MAX_ADDR + 1)
        if image.addr <= addr < end:
            return image, addr - image.addr
    return None


def should_adjust(frame: dict[str, Any], stacktrace: dict[str, Any], crashing: bool) -> bool:
    """Whether a frame's address is a return address to move back into the call (see the module docstring)."""
    explicit = frame.get("adjust_instruction_addr")
    if isinstance(explicit, bool):
        return explicit
    mode = stacktrace.get("instruction_addr_adjustment")
    if mode == "all":
        return True
    if mode == "none":
        return False
    if mode == "all_but_first":
        return not crashing
    registers = stacktrace.get("registers")
    return not (crashing and isinstance(registers, dict) and bool(registers))
