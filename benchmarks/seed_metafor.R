# The core of the pipeline as a metafor user would write it, for benchmarks/seed.py to time beside the
# pipeline: per-trial exact CIs, DerSimonian-Laird, REML and the GLMM per modality, and a forest plot PDF.
# Usage: Rscript benchmarks/seed_metafor.R results/tables/studies.tsv forest.pdf
suppressPackageStartupMessages(library(metafor))
args <- commandArgs(trailingOnly = TRUE)
d <- read.delim(args[1])
d <- d[d$outcome == "cr" & d$included == "True", ]
d$ci <- t(mapply(function(x, n) binom.test(x, n)$conf.int, d$events, d$n))
for (m in unique(d$modality)) {
  s <- d[d$modality == m, ]
  dl <- rma(measure = "PLO", xi = events, ni = n, data = s, method = "DL")
  reml <- rma(measure = "PLO", xi = events, ni = n, data = s, method = "REML")
  glmm <- if (nrow(s) > 1) rma.glmm(measure = "PLO", xi = events, ni = n, data = s)
}
pdf(args[2])
forest(rma(measure = "PLO", xi = events, ni = n, data = d, method = "REML"), transf = transf.ilogit,
       slab = d$study)
invisible(dev.off())
