# make_adjusted_fixtures.R -- metafor references for the adjusted comparisons (modality + moderators).
#
# Run from the repository root:   Rscript tests/make_adjusted_fixtures.R     (needs r-cran-metafor, r-cran-lme4)
#
# For each tests/fixtures/adjusted/*.tsv (study, modality, age_group, events, n): rma(yi, vi, mods = ~ modality +
# age_group, method = "REML") on the logit scale and rma.glmm(measure = "PLO", mods = ...), with the QM test of the
# modality coefficients given age_group (anova(fit, btt = ...); for the GLMM the same Wald
# test from vcov()) and the first modality coefficient. Writes
# tests/fixtures/metafor_adjusted.tsv.

suppressPackageStartupMessages(library(metafor))
ctl <- list(threshold = 1e-12, tol = 1e-12, maxiter = 10000)
rows <- list()
for (path in sort(list.files(file.path("tests", "fixtures", "adjusted"), full.names = TRUE))) {
  d <- read.delim(path, stringsAsFactors = FALSE)
  d$modality <- factor(d$modality, levels = unique(d$modality))
  d$age_group <- factor(d$age_group, levels = unique(d$age_group))
  es <- escalc(measure = "PLO", xi = events, ni = n, data = d)
  btt <- 2:nlevels(d$modality)
  fits <- list(
    "logit-reml" = rma(yi, vi, mods = ~ modality + age_group, data = es, method = "REML", control = ctl),
    glmm = rma.glmm(measure = "PLO", xi = events, ni = n, mods = ~ modality + age_group, data = d)
  )
  for (m in names(fits)) {
    f <- fits[[m]]
    if (m == "glmm") {  # anova() has no method for rma.glmm in metafor 3.8: the same Wald test from vcov()
      b <- coef(f)[btt]
      qm <- as.numeric(t(b) %*% solve(vcov(f)[btt, btt, drop = FALSE], b))
      a <- list(QM = qm, QMdf = length(btt), QMp = pchisq(qm, length(btt), lower.tail = FALSE))
    } else {
      a <- anova(f, btt = btt)
    }
    rows[[length(rows) + 1]] <- data.frame(
      dataset = sub("\\.tsv$", "", basename(path)), method = m, qm = sprintf("%.12g", a$QM), df = a$QMdf[1],
      p = sprintf("%.12g", a$QMp), lor = sprintf("%.12g", coef(f)[2]), lor_se = sprintf("%.12g", f$se[2]),
      tau2 = sprintf("%.12g", f$tau2))
  }
}
write.table(do.call(rbind, rows), file.path("tests", "fixtures", "metafor_adjusted.tsv"), sep = "\t",
            quote = FALSE, row.names = FALSE)
