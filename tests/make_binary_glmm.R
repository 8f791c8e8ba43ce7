# metafor's rma.glmm on tables of single-patient trials (n = 1 each): tests/fixtures/binary_glmm.tsv.
# Rscript tests/make_binary_glmm.R (from the repository root). Each case is k trials, x of them responders.
suppressPackageStartupMessages(library(metafor))
cases <- data.frame(
  name = c("case_reports_20", "rare_5", "frequent_5", "rare_10", "rare_40", "frequent_40", "half_40", "mixed_40",
           "rare_100", "half_100", "rare_400", "mixed_400", "frequent_400"),
  k = c(20, 5, 5, 10, 40, 40, 40, 40, 100, 100, 400, 400, 400),
  x = c(17, 1, 4, 1, 4, 36, 20, 28, 3, 50, 10, 130, 390))
rows <- list()
for (i in seq_len(nrow(cases))) {
  k <- cases$k[i]; x <- cases$x[i]
  xi <- c(rep(1, x), rep(0, k - x))
  # tight optimiser control; lme4 still stops on the flat ridge wherever its quadrature tilts it
  fit <- tryCatch(rma.glmm(measure = "PLO", xi = xi, ni = rep(1, k), method = "ML",
                           control = list(optCtrl = list(xtol_abs = 1e-10, ftol_abs = 1e-12, maxeval = 1e5))),
                  error = function(e) NULL)
  if (is.null(fit)) {
    rows[[i]] <- data.frame(name = cases$name[i], k = k, x = x, mu = NA, se = NA, tau2 = NA, loglik = NA)
  } else {
    rows[[i]] <- data.frame(name = cases$name[i], k = k, x = x, mu = as.numeric(coef(fit)), se = fit$se,
                            tau2 = fit$tau2, loglik = as.numeric(logLik(fit)))
  }
}
out <- do.call(rbind, rows)
write.table(format(out, digits = 15), "tests/fixtures/binary_glmm.tsv", sep = "\t", quote = FALSE, row.names = FALSE)
print(out)
