#!/usr/bin/env bash
# Install R with the R peers' packages from Debian: Seurat 4 (r-cran-seurat) and SingleR
# (r-bioc-singler), for the predictors seurat and singler (cellquery/predictors/r/*.R).
# Without them those methods are skipped, with the reason in the summary.
set -euo pipefail
start=$(date +%s)
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends r-base-core r-cran-matrix r-cran-seurat r-bioc-singler >/dev/null
echo "R peers install took $(( $(date +%s) - start )) s ($(Rscript --version 2>&1 | head -1);" \
    "Seurat $(Rscript -e 'cat(format(packageVersion("Seurat")))'), SingleR $(Rscript -e 'cat(format(packageVersion("SingleR")))'))"
