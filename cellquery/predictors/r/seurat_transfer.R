# Seurat v4 label transfer: FindTransferAnchors + TransferData, as Seurat's reference-mapping
# vignette runs them, at Seurat's defaults except where an argument below is passed on.
# Called by cellquery/predictors/seurat.py (files: cellquery/predictors/rscript.py):
#   Rscript --vanilla seurat_transfer.R <dir> <seed> <npcs> <dims> <k.anchor> <k.filter> <k.score> <k.weight>
# <dir> holds reference.mtx / query.mtx (log-normalised values of the HVGs, genes x cells),
# reference_labels.txt (one label per line) and optionally reference_fates.csv (one column per
# continuous annotation). Writes <dir>/predictions.csv (one row per query cell, in order:
# predicted.id, prediction.score.max, and the transferred fates f1 .. fK) and the joint
# embedding (Seurat's "pcaproject" space) as <dir>/reference_embedding.csv, query_embedding.csv.
args <- commandArgs(trailingOnly = TRUE)
dir <- args[[1]]
seed <- as.integer(args[[2]])
npcs <- as.integer(args[[3]])
dims <- seq_len(as.integer(args[[4]]))
k.anchor <- as.integer(args[[5]])
k.filter <- if (args[[6]] == "NA") NA else as.integer(args[[6]])
k.score <- as.integer(args[[7]])
k.weight <- as.integer(args[[8]])

suppressPackageStartupMessages({
  library(Matrix)
  library(Seurat)
})
set.seed(seed)

# expression of one part: genes g1 .. gN, cells <prefix>1 .. <prefix>M (names by position)
read_part <- function(name, prefix) {
  x <- as(readMM(file.path(dir, paste0(name, ".mtx"))), "CsparseMatrix")
  dimnames(x) <- list(paste0("g", seq_len(nrow(x))), paste0(prefix, seq_len(ncol(x))))
  # the values are log-normalised already: they go to the assay's data slot (NormalizeData's output)
  CreateSeuratObject(CreateAssayObject(data = x))
}
reference <- read_part("reference", "r")
query <- read_part("query", "q")
features <- rownames(reference)
labels <- readLines(file.path(dir, "reference_labels.txt"), encoding = "UTF-8")
names(labels) <- colnames(reference)
refdata <- list(label = labels)
fates_file <- file.path(dir, "reference_fates.csv")
if (file.exists(fates_file)) {
  fates <- t(as.matrix(read.csv(fates_file, check.names = FALSE)))
  colnames(fates) <- colnames(reference)
  refdata$fates <- fates
}

anchors <- FindTransferAnchors(
  reference = reference, query = query, features = features, npcs = npcs, dims = dims,
  k.anchor = k.anchor, k.filter = k.filter, k.score = k.score, verbose = FALSE
)
transferred <- TransferData(anchorset = anchors, refdata = refdata, dims = dims, k.weight = k.weight, verbose = FALSE)
# a refdata list of one element gives its result alone, not a list
if (length(refdata) == 1) transferred <- list(label = transferred)
stopifnot(is.data.frame(transferred$label), nrow(transferred$label) == ncol(query))

labels_out <- transferred$label[colnames(query), , drop = FALSE]
out <- data.frame(
  predicted.id = labels_out$predicted.id,
  prediction.score.max = labels_out$prediction.score.max,
  check.names = FALSE
)
if (!is.null(refdata$fates)) {
  values <- as.matrix(GetAssayData(transferred$fates, slot = "data"))[, colnames(query), drop = FALSE]
  for (j in seq_len(nrow(values))) out[[paste0("f", j)]] <- values[j, ]
}
write.csv(out, file.path(dir, "predictions.csv"), row.names = FALSE)

# the space the anchors were found in: reference PCA, query projected onto it (cells renamed <cell>_reference / _query)
embedding <- Embeddings(anchors@object.list[[1]][["pcaproject"]])
write.csv(embedding[paste0(colnames(reference), "_reference"), , drop = FALSE], file.path(dir, "reference_embedding.csv"), row.names = FALSE)
write.csv(embedding[paste0(colnames(query), "_query"), , drop = FALSE], file.path(dir, "query_embedding.csv"), row.names = FALSE)
