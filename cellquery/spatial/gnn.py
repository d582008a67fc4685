"""A small graph neural network on spatial graphs, pretrained by masked-expression reconstruction (SpatialSSL).

SpatialSSL pretrains graph attention / convolution networks by masking all gene
expression values of 20 % of cells and reconstructing them, then fine-tunes
them for cell-type prediction, pretrained against not pretrained. Here:

* Layers, plain torch sparse ops (hand-written: torch-geometric is not a
  dependency of the project):
  :class:`GCNLayer` ``H' = Â H W + H R`` with ``Â = D^-1/2 (A + I) D^-1/2``
  (Kipf & Welling); :class:`GATLayer` one attention head,
  ``α_ij = softmax_j LeakyReLU(a_s·W h_i + a_d·W h_j)`` over j in N(i) ∪ {i},
  ``h'_i = Σ_j α_ij W h_j + R h_i`` (Veličković et al.). Both keep a root
  weight ``R`` on the cell's own input (as GraphSAGE / PyG's GraphConv), so a
  cell's own profile is not diluted by its ~10 neighbours.
* :class:`SpatialGNN`: a learned mask token replaces the input of masked
  cells; encoder layers (``layers``, e.g. ``("gcn", "gat")``, ReLU between
  them) give the embedding; a linear decoder reconstructs expression.
* :func:`pretrain_masked`: full-graph epochs; each draws ``mask_fraction`` of
  the cells, masks all their genes, and minimises the mean squared error of
  their reconstruction. :func:`masked_reconstruction_error` scores a fixed mask.
* :func:`fine_tune`: a linear cell-type head on the embedding, cross-entropy on
  labelled cells, the encoder trained along (pretrained or freshly
  initialised: the seed's comparison); :func:`predict_proba`.

Training is full-batch on one graph (a section, or sections as one block-
diagonal graph); CPU by default, ``device="cuda"`` on a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from cellquery.errors import InputError
from cellquery.progress import Progress

LAYER_KINDS = ("gcn", "gat")


@dataclass
class TorchGraph:
    """Edges of ``A + I`` (rows i aggregate columns j) and their GCN weights, on one device."""

    n: int
    rows: torch.Tensor
    cols: torch.Tensor
    gcn: torch.Tensor  # sparse (n x n) D^-1/2 (A + I) D^-1/2


def torch_graph(adjacency: sp.spmatrix, device: str = "cpu") -> TorchGraph:
    """A scipy adjacency (symmetric, no self-loops needed) as a :class:`TorchGraph`."""
    from cellquery.spatial.embed import normalised_adjacency

    norm = normalised_adjacency(adjacency, "sym").tocoo()
    rows = torch.as_tensor(norm.row, dtype=torch.long, device=device)
    cols = torch.as_tensor(norm.col, dtype=torch.long, device=device)
    values = torch.as_tensor(norm.data, dtype=torch.float32, device=device)
    gcn = torch.sparse_coo_tensor(torch.stack([rows, cols]), values, (norm.shape[0], norm.shape[0])).coalesce()
    return TorchGraph(norm.shape[0], rows, cols, gcn)


class GCNLayer(nn.Module):
    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.linear = nn.Linear(d_in, d_out)
        self.root = nn.Linear(d_in, d_out, bias=False)

    def forward(self, h: torch.Tensor, graph: TorchGraph) -> torch.Tensor:
        return torch.sparse.mm(graph.gcn, self.linear(h)) + self.root(h)


class GATLayer(nn.Module):
    def __init__(self, d_in: int, d_out: int, negative_slope: float = 0.2):
        super().__init__()
        self.linear = nn.Linear(d_in, d_out, bias=False)
        self.att_self = nn.Parameter(torch.empty(d_out).uniform_(-0.1, 0.1))
        self.att_neighbour = nn.Parameter(torch.empty(d_out).uniform_(-0.1, 0.1))
        self.root = nn.Linear(d_in, d_out, bias=False)
        self.bias = nn.Parameter(torch.zeros(d_out))
        self.negative_slope = negative_slope

    def forward(self, h: torch.Tensor, graph: TorchGraph) -> torch.Tensor:
        z = self.linear(h)
        score = nn.functional.leaky_relu(
            (z @ self.att_self)[graph.rows] + (z @ self.att_neighbour)[graph.cols], self.negative_slope
        )
        top = torch.full((graph.n,), -torch.inf, device=z.device).scatter_reduce(0, graph.rows, score, "amax")
        weight = torch.exp(score - top[graph.rows])  # softmax over each row's edges (self-loop included)
        total = torch.zeros(graph.n, device=z.device).index_add(0, graph.rows, weight)
        alpha = weight / total[graph.rows]
        out = torch.zeros_like(z).index_add(0, graph.rows, alpha[:, None] * z[graph.cols])
        return out + self.root(h) + self.bias


class SpatialGNN(nn.Module):
    """Encoder of graph layers with a mask token and a linear expression decoder."""

    def __init__(self, n_genes: int, hidden: int = 64, latent: int = 32, layers=("gcn", "gat")):
        super().__init__()
        unknown = [k for k in layers if k not in LAYER_KINDS]
        if unknown or not layers:
            raise InputError(f"GNN layers must be a non-empty list of {LAYER_KINDS}, got {list(layers)}")
        dims = [n_genes] + [hidden] * (len(layers) - 1) + [latent]
        make = {"gcn": GCNLayer, "gat": GATLayer}
        self.layers = nn.ModuleList(make[k](dims[i], dims[i + 1]) for i, k in enumerate(layers))
        self.mask_token = nn.Parameter(torch.zeros(n_genes))
        self.decoder = nn.Linear(latent, n_genes)
        self.latent = latent

    def embed(self, x: torch.Tensor, graph: TorchGraph, masked: torch.Tensor | None = None) -> torch.Tensor:
        h = x if masked is None else torch.where(masked[:, None], self.mask_token.expand_as(x), x)
        for i, layer in enumerate(self.layers):
            h = layer(h, graph)
            if i < len(self.layers) - 1:
                h = torch.relu(h)
        return h

    def forward(self, x: torch.Tensor, graph: TorchGraph, masked: torch.Tensor | None = None) -> torch.Tensor:
        return self.decoder(self.embed(x, graph, masked))


def build_model(n_genes: int, *, seed: int = 0, **kwargs) -> SpatialGNN:
    """A :class:`SpatialGNN` initialised from ``seed`` (torch's global generator is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SpatialGNN(n_genes, **kwargs)


def _tensor(x, device) -> torch.Tensor:
    x = x.toarray() if sp.issparse(x) else np.asarray(x)
    return torch.as_tensor(x, dtype=torch.float32, device=device)


def pretrain_masked(
    model: SpatialGNN, x, graph: TorchGraph, *, mask_fraction: float = 0.2, epochs: int = 200, lr: float = 1e-2,
    seed: int = 0, device: str = "cpu",
) -> list[float]:
    """Masked-expression pretraining: per epoch mask all genes of ``mask_fraction`` of cells, reconstruct them (MSE).

    Returns the training loss of every epoch (the learning curve).
    """
    if not 0 < mask_fraction < 1:
        raise InputError(f"mask_fraction must be in (0, 1), got {mask_fraction!r}")
    x = _tensor(x, device)
    model.to(device).train()
    generator = torch.Generator(device="cpu").manual_seed(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    n_masked = max(1, int(round(mask_fraction * graph.n)))
    curve = []
    counter = Progress("gnn masked pretraining", epochs, "epochs")  # lines in the job's log
    for _ in range(epochs):
        masked = torch.zeros(graph.n, dtype=torch.bool)
        masked[torch.randperm(graph.n, generator=generator)[:n_masked]] = True
        masked = masked.to(device)
        loss = nn.functional.mse_loss(model(x, graph, masked)[masked], x[masked])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        curve.append(float(loss))
        counter.update()
    return curve


@torch.no_grad()
def masked_reconstruction_error(model: SpatialGNN, x, graph: TorchGraph, masked, device: str = "cpu") -> float:
    """Mean squared error of the reconstruction of the ``masked`` cells (boolean per cell), their inputs masked."""
    x = _tensor(x, device)
    masked = torch.as_tensor(np.asarray(masked, dtype=bool), device=device)
    model.to(device).eval()
    return float(nn.functional.mse_loss(model(x, graph, masked)[masked], x[masked]))


def fine_tune(
    model: SpatialGNN, x, graph: TorchGraph, labels, train, *, n_classes: int, epochs: int = 100, lr: float = 1e-2,
    seed: int = 0, device: str = "cpu",
) -> tuple[nn.Linear, list[float]]:
    """Cell-type head trained with the encoder on cells ``train`` (boolean) with integer ``labels``; loss per epoch."""
    x = _tensor(x, device)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long, device=device)
    train = torch.as_tensor(np.asarray(train, dtype=bool), device=device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = nn.Linear(model.latent, n_classes).to(device)
    model.to(device).train()
    optimiser = torch.optim.Adam([*model.parameters(), *head.parameters()], lr=lr)
    curve = []
    counter = Progress("gnn fine-tuning", epochs, "epochs")  # lines in the job's log
    for _ in range(epochs):
        loss = nn.functional.cross_entropy(head(model.embed(x, graph))[train], y[train])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        curve.append(float(loss))
        counter.update()
    return head, curve


@torch.no_grad()
def predict_proba(model: SpatialGNN, head: nn.Linear, x, graph: TorchGraph, device: str = "cpu") -> np.ndarray:
    """Cell-type probabilities (cells x classes) of every cell of the graph."""
    model.to(device).eval()
    return torch.softmax(head(model.embed(_tensor(x, device), graph)), dim=1).cpu().numpy()
