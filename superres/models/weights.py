"""Reading and writing network weights, safely.

superres writes safetensors (no code can hide in them) with JSON metadata that names the architecture,
its hyper-parameters and the scale, so our own files need no guessing. Third-party ``.pth`` files
(ESRGAN, Real-ESRGAN, BasicSR) are read with ``torch.load(weights_only=True)`` only: a pickle that
would call a function is refused, never run. Their architecture is recognised by :mod:`superres.models.detect`.
"""

from __future__ import annotations

import json
import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from superres.errors import WeightsError, about
from superres.models.detect import (
    Detected,
    ModelInfo,
    StateDict,
    build_network,
    check_hparams,
    complete_hparams,
    describe,
    detect,
)

# Version of the metadata written by save_network; files from a newer superres are refused.
FORMAT_VERSION = 1
RESERVED_METADATA = ("format_version", "arch", "hparams", "scale")
PICKLE_SUFFIXES = (".pth", ".pt", ".ckpt")
# Keys under which training code nests the state dict. BasicSR/Real-ESRGAN keep the EMA generator under
# "params_ema" beside the raw "params"; the EMA weights are the ones that were evaluated and released.
WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model")
DDP_PREFIX = "module."


# --------------------------------------------------------------------------------------------------
# Reading


def _existing_file(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise WeightsError(f"{path}: the file is empty (0 bytes)")
    return path


def _first_line(exc: BaseException, limit: int = 200) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:limit]


def _refusal(exc: pickle.UnpicklingError) -> str | None:
    """Why torch's weights-only unpickler refused a file, or None if it is merely not a pickle."""
    text = str(exc)
    if match := re.search(r"GLOBAL ([\w.]+)", text):
        return f"loading it would run code ({match.group(1)})"
    if "Weights only load failed" in text:
        detail = re.search(r"WeightsUnpickler error:\s*(.+)", text)
        return f"it holds more than plain weights ({detail.group(1).strip()[:120] if detail else 'see torch.load'})"
    return None


def _load_pickle(path: Path) -> Any:
    try:
        return torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:
        reason = _refusal(exc)
        if reason is None:
            raise WeightsError(f"{path}: not a readable PyTorch checkpoint ({_first_line(exc)})") from None
        raise WeightsError(
            f"{path}: refused — {reason}; only plain weights are read. "
            f"If you trust its source, re-save it as .safetensors"
        ) from None
    except Exception as exc:  # torch.load raises many types on corrupt input: EOFError, RuntimeError, KeyError…
        if not _looks_like_torch_file(path):
            raise WeightsError(f"{path}: not a PyTorch checkpoint (neither a zip archive nor a pickle)") from None
        raise WeightsError(f"{path}: corrupt or truncated PyTorch checkpoint ({_first_line(exc)})") from None


def _looks_like_torch_file(path: Path) -> bool:
    """torch.save writes a zip archive ("PK…"); older torch and BasicSR a protocol-2+ pickle (0x80 …)."""
    with path.open("rb") as file:
        return file.read(2) in (b"PK", b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")


def _read_safetensors(path: Path) -> tuple[StateDict, dict[str, str]]:
    try:
        with safe_open(path, framework="pt", device="cpu") as file:
            metadata = dict(file.metadata() or {})
            return {key: file.get_tensor(key) for key in file.keys()}, metadata
    except SafetensorError as exc:
        raise WeightsError(f"{path}: corrupt or truncated safetensors file ({_first_line(exc)})") from None


def strip_prefix(state_dict: StateDict, prefix: str = DDP_PREFIX) -> StateDict:
    """Remove ``prefix`` when every key has it (DistributedDataParallel saves ``module.``-prefixed keys)."""
    if state_dict and all(key.startswith(prefix) for key in state_dict):
        return {key[len(prefix) :]: tensor for key, tensor in state_dict.items()}
    return state_dict


def unwrap_checkpoint(checkpoint: Any, source: str = "checkpoint") -> StateDict:
    """The state dict inside a training checkpoint: follows ``WRAPPER_KEYS``, strips ``module.``."""
    while isinstance(checkpoint, dict):
        inner = next((checkpoint[key] for key in WRAPPER_KEYS if isinstance(checkpoint.get(key), dict)), None)
        if inner is None:
            break
        checkpoint = inner
    if not isinstance(checkpoint, dict):
        raise WeightsError(f"{source}: holds a {type(checkpoint).__name__}, not a dict of tensors")
    if not checkpoint:
        raise WeightsError(f"{source}: holds no tensors")
    for key, value in checkpoint.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise WeightsError(f"{source}: not a dict of tensors ({key!r} holds a {type(value).__name__})")
    return strip_prefix(checkpoint)


def read_state_dict(path: str | os.PathLike[str]) -> tuple[StateDict, dict[str, str]]:
    """Tensors and metadata of a weights file (metadata is empty for ``.pth``). Never runs code."""
    path = _existing_file(path)
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        state_dict, metadata = _read_safetensors(path)
        return unwrap_checkpoint(state_dict, str(path)), metadata
    if suffix in PICKLE_SUFFIXES:
        return unwrap_checkpoint(_load_pickle(path), str(path)), {}
    raise WeightsError(f"{path}: unsupported weights format; expected .safetensors, {', '.join(PICKLE_SUFFIXES)}")


# --------------------------------------------------------------------------------------------------
# Loading a network


def _declared(metadata: Mapping[str, str], source: str) -> Detected:
    """The architecture our own files declare in their metadata (trusted; the load is still strict)."""
    try:
        version = int(metadata.get("format_version", FORMAT_VERSION))
        hparams = json.loads(metadata["hparams"])
    except (ValueError, KeyError, RecursionError) as exc:
        raise WeightsError(f"{source}: unreadable superres metadata ({exc})") from None
    if version > FORMAT_VERSION:
        raise WeightsError(f"{source}: written by a newer superres (format {version}); please upgrade")
    if not isinstance(hparams, dict):
        raise WeightsError(f"{source}: metadata 'hparams' is not a JSON object")
    return Detected(metadata["arch"], complete_hparams(metadata["arch"], hparams), "superres")


def _first_few(keys: list[str]) -> str:
    return ", ".join(keys[:3]) + (", …" if len(keys) > 3 else "")


def _check_fit(network: nn.Module, state_dict: Mapping[str, torch.Tensor], what: str) -> None:
    """Raise a one-line WeightsError unless ``state_dict`` has exactly the network's keys and shapes."""
    expected = network.state_dict()
    missing = [key for key in expected if key not in state_dict]
    unexpected = [key for key in state_dict if key not in expected]
    wrong = [
        f"{key} {list(state_dict[key].shape)} ≠ {list(tensor.shape)}"
        for key, tensor in expected.items()
        if key in state_dict and state_dict[key].shape != tensor.shape
    ]
    problems = [
        f"{len(keys)} {label} ({_first_few(keys)})"
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("of the wrong shape", wrong))
        if keys
    ]
    if problems:
        raise WeightsError(f"{what}: the weights do not fit the network: {'; '.join(problems)}")


def _check_finite(state_dict: Mapping[str, torch.Tensor], what: str) -> None:
    """A network with a NaN or inf weight can only produce NaN (a black image once clamped): refuse it."""
    broken = [key for key, tensor in state_dict.items() if tensor.is_floating_point() and not tensor.isfinite().all()]
    if broken:
        raise WeightsError(
            f"{what}: {len(broken)} tensor(s) hold NaN or inf ({_first_few(broken)}); the weights are damaged"
        )


def _load_strict(network: nn.Module, state_dict: StateDict, what: str) -> nn.Module:
    """Strict load into a network built on the meta device; tensors become CPU fp32 parameters."""
    _check_fit(network, state_dict, what)
    _check_finite(state_dict, what)
    tensors = {
        key: (tensor.float() if tensor.is_floating_point() else tensor).contiguous()
        for key, tensor in state_dict.items()
    }
    network.load_state_dict(tensors, strict=True, assign=True)
    left_on_meta = [name for name, tensor in (*network.named_parameters(), *network.named_buffers()) if tensor.is_meta]
    if left_on_meta:  # a non-persistent buffer: the architecture must create it in forward or register it
        raise RuntimeError(f"{what}: tensors not in the state dict stay uninitialised: {left_on_meta[:3]}")
    return network


def load_network(path: str | os.PathLike[str]) -> tuple[nn.Module, ModelInfo]:
    """The network stored in ``path`` (eval mode, CPU, fp32) and its :class:`ModelInfo`.

    Our own files declare their architecture; anything else is recognised by :func:`detect`,
    which also converts the ESRGAN layouts to ours.
    """
    with about(path):
        state_dict, metadata = read_state_dict(path)
        if "arch" in metadata and "hparams" in metadata:
            detected = _declared(metadata, str(path))
        else:
            detected, state_dict = detect(state_dict)
        check_hparams(detected.arch, detected.hparams, state_dict)  # before building: bounded by the tensors
        # Building on the meta device skips the random initialisation that the weights replace anyway.
        with torch.device("meta"):
            network = build_network(detected.arch, detected.hparams)
        _load_strict(network, state_dict, f"{path} as {detected.arch}")
    network.eval()
    user_metadata = {key: value for key, value in metadata.items() if key not in RESERVED_METADATA}
    return network, describe(detected.arch, detected.hparams, network, user_metadata, detected.layout)


# --------------------------------------------------------------------------------------------------
# Writing


def _as_metadata_value(value: Any) -> str:
    """safetensors metadata holds strings only: other values (scores, recipes) are stored as JSON."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _write_atomically(path: Path, tensors: StateDict, metadata: dict[str, str], overwrite: bool) -> None:
    """Write through a hidden temporary file beside ``path`` (:func:`superres.imageio.atomic_path`):
    a crash or a full disk never leaves a half-written file, nor touches an existing one."""
    from superres.imageio import atomic_path

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, overwrite) as temporary:
        try:
            save_file(tensors, temporary, metadata=metadata)
        except SafetensorError as exc:  # safetensors reports I/O errors (a full disk) in its own type
            code = re.search(r"os error (\d+)", str(exc))
            if code is None:
                raise WeightsError(f"{path}: cannot write ({_first_line(exc)})") from None
            raise OSError(int(code[1]), os.strerror(int(code[1])), str(path)) from None
        os.chmod(temporary, 0o644)  # safetensors creates files 0600; weights are meant to be shared


def save_network(
    path: str | os.PathLike[str],
    module: nn.Module,
    arch: str,
    hparams: Mapping[str, Any],
    metadata: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Save ``module`` as safetensors whose metadata declares ``arch``, ``hparams`` and the scale.

    ``metadata`` (provenance, training data, recipe, scores, …) is stored beside them; non-string
    values as JSON. An existing file is replaced only with ``overwrite=True``.
    """
    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        raise WeightsError(f"{path}: superres saves weights as .safetensors; name the file accordingly")
    if path.exists() and not overwrite:
        raise WeightsError(f"{path} already exists; pass overwrite=True to replace it")
    clashes = sorted(set(metadata or {}) & set(RESERVED_METADATA))
    if clashes:
        raise ValueError(f"metadata keys {clashes} are reserved: superres writes them itself")

    hparams = complete_hparams(arch, hparams)
    state_dict = module.state_dict()
    with torch.device("meta"):
        _check_fit(build_network(arch, hparams), state_dict, f"saving {arch}")
    _check_finite(state_dict, f"{path}: not saved: {arch}")  # a NaN checkpoint would only ever make black images
    tensors = {key: tensor.detach().to("cpu").contiguous() for key, tensor in state_dict.items()}
    info = describe(arch, hparams, module)
    header = {
        "format_version": str(FORMAT_VERSION),
        "arch": arch,
        "hparams": json.dumps(hparams, sort_keys=True),
        "scale": str(info.scale),
        **{str(key): _as_metadata_value(value) for key, value in (metadata or {}).items()},
    }
    _write_atomically(path, tensors, header, overwrite)
    return path
