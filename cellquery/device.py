"""The device a job computes on: a GPU when its rule asked for one (config ``gpu``), else the CPU.

A job's script records its rule's GPU request once (:func:`request_gpu`) with the
library that would use the GPU: ``"faiss"`` (index building and search,
cellquery.index.faiss_backend) or ``"torch"`` (scVI, scANVI, Cell BLAST). Code that
can use the GPU then asks :func:`use_faiss_gpu` or :func:`torch_accelerator`:

- no request (``gpu: 0``, or a library the job did not name): the CPU, as without a GPU;
- a request and the device visible: the GPU (faiss ``index_cpu_to_gpu``, torch CUDA);
- a request and no device visible: an :class:`~cellquery.errors.InputError` of one line,
  instead of running on the CPU.

The check happens where the GPU would be used, so a job of a GPU rule whose method
has no GPU code (a PCA embedding) runs as on the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

from cellquery.errors import InputError

LIBRARIES = ("faiss", "torch")


@dataclass
class Request:
    gpus: int = 0
    rule: str = "?"
    library: str | None = None


_request = Request()


def request_gpu(gpus: int | None, rule: str, library: str) -> None:
    """Record the job's GPU request: ``gpus`` of rule ``rule`` (its ``resources.gpu``), to be used by ``library``."""
    if library not in LIBRARIES:
        raise ValueError(f"library must be one of {LIBRARIES}, got {library!r}")
    global _request
    _request = Request(int(gpus or 0), rule, library)


def reset() -> None:
    """Forget the request (the CPU from now on)."""
    global _request
    _request = Request()


def requested(library: str) -> bool:
    """Whether the job asked for a GPU for ``library``."""
    return _request.gpus > 0 and _request.library == library


def faiss_gpus() -> int:
    """GPUs faiss can use: ``faiss.get_num_gpus()`` in a GPU build, 0 in a CPU build or without faiss."""
    try:  # optional: a job without faiss has no faiss GPU
        import faiss
    except ImportError:
        return 0
    return int(faiss.get_num_gpus()) if hasattr(faiss, "StandardGpuResources") else 0


def torch_cuda() -> bool | None:
    """``torch.cuda.is_available()``, or None where torch is not installed."""
    try:  # optional: the index envs have no torch
        import torch
    except ImportError:
        return None
    return bool(torch.cuda.is_available())


def no_gpu_message() -> str:
    """The one line of a job that asked for a GPU but sees none."""
    cuda = torch_cuda()
    torch_state = "torch not installed" if cuda is None else f"torch.cuda.is_available() {cuda}"
    return (
        f"rule {_request.rule} asked for a GPU (config gpu: {_request.gpus}) but none is visible: "
        f"faiss.get_num_gpus() == {faiss_gpus()}, {torch_state}"
    )


def use_faiss_gpu() -> bool:
    """Whether faiss indexes go to the GPU: the job asked for one for faiss; raise if faiss sees none."""
    if not requested("faiss"):
        return False
    if faiss_gpus() == 0:
        raise InputError(no_gpu_message())
    return True


def torch_accelerator() -> str:
    """Lightning's ``accelerator`` of the job: ``"gpu"`` when it asked for one for torch (raise if CUDA is not
    available), else ``"cpu"``."""
    if not requested("torch"):
        return "cpu"
    if not torch_cuda():
        raise InputError(no_gpu_message())
    return "gpu"
