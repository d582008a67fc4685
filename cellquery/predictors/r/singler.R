# SingleR (Bioconductor) annotation of the query with the reference as its labelled reference,
# at SingleR's defaults (marker genes by the "classic" method, fine-tuning, pruning).
# Called by cellquery/predictors/singler.py (files: cellquery/predictors/rscript.py):
#   Rscript --vanilla singler.R <dir> <seed>
# <dir> holds reference.mtx / query.mtx (log-normalised values, genes x cells) and
# reference_labels.txt (one label per line). Writes <dir>/predictions.csv (one row per query cell,
# in order): labels, pruned (TRUE where pruned.labels is NA), delta.next, and delta.median (the
# cell's score for its label minus the median of its scores, the quantity pruneScores() thresholds).
args <- commandArgs(trailingOnly = TRUE)
dir <- args[[1]]
seed <- as.integer(args[[2]])

suppressPackageStartupMessages({
  library(Matrix)
  library(SingleR)
})
set.seed(seed)

read_part <- function(name, prefix) {
  x <- as(readMM(file.path(dir, paste0(name, ".mtx"))), "CsparseMatrix")
  dimnames(x) <- list(paste0("g", seq_len(nrow(x))), paste0(prefix, seq_len(ncol(x))))
  x
}
reference <- read_part("reference", "r")
query <- read_part("query", "q")
labels <- readLines(file.path(dir, "reference_labels.txt"), encoding = "UTF-8")

predicted <- SingleR(test = query, ref = reference, labels = labels)
out <- data.frame(
  labels = predicted$labels,
  pruned = is.na(predicted$pruned.labels),
  delta.next = predicted$delta.next,
  delta.median = getDeltaFromMedian(predicted),
  check.names = FALSE
)
write.csv(out, file.path(dir, "predictions.csv"), row.names = FALSE)
