# make_fixtures_reviewer.R -- metafor references for the cumulative meta-analysis and the small-study tests.
#
# Run from the repository root:   Rscript tests/make_fixtures_reviewer.R
# Needs R with metafor:           apt-get install -y r-cran-metafor
#
# Reads tests/fixtures/reviewer/*.tsv (columns study, modality, events, n, year) and writes to tests/fixtures/:
#   metafor_cumulative.tsv   cumul() of rma(measure = "PLO") per (dataset, subgroup, method, step), trials ordered
#                            by year then study id (C-locale order, as Python sorts strings)
#   metafor_small_study.tsv  Egger: regtest(model = "rma", predictor = "sei") of a REML fit;
#                            Peters: lm(yi ~ I(1/n), weights = 1/vi) by its definition (Peters et al. 2006: weights
#                            e (n - e) / n = 1/vi), since meta::metabias is not in Debian
# Each output starts with a comment line of versions, then a header line; 15 significant digits; NA as empty.

suppressPackageStartupMessages(library(metafor))

in_dir <- file.path("tests", "fixtures", "reviewer")
out_dir <- file.path("tests", "fixtures")
ctl <- list(threshold = 1e-10, maxiter = 1000, tol = 1e-12)
version_line <- sprintf("# metafor %s, R %s", packageVersion("metafor"), getRversion())

fmt <- function(x) {
  if (is.null(x) || length(x) == 0 || is.na(x[1])) return("")
  x <- x[1]
  if (is.character(x)) return(x)
  sprintf("%.15g", as.numeric(x))
}

write_table <- function(rows, cols, path) {
  lines <- vapply(rows, function(r) paste(vapply(cols, function(cl) fmt(r[[cl]]), ""), collapse = "\t"), "")
  writeLines(c(version_line, paste(cols, collapse = "\t"), lines), path, useBytes = TRUE)
  cat(sprintf("wrote %s (%d rows)\n", path, length(rows)))
}

tau_of <- function(tok) toupper(sub("-hksj$", "", sub("^logit-", "", tok)))
methods <- c("logit-dl", "logit-reml", "logit-pm", "logit-dl-hksj", "logit-reml-hksj", "logit-pm-hksj")

cum_rows <- list()
bias_rows <- list()
for (path in sort(list.files(in_dir, pattern = "\\.tsv$", full.names = TRUE))) {
  name <- sub("\\.tsv$", "", basename(path))
  d <- read.delim(path, stringsAsFactors = FALSE)
  d <- d[order(d$year, d$study, method = "radix"), ]
  groups <- c(unique(d$modality), "overall")
  for (g in groups) {
    part <- if (g == "overall") d else d[d$modality == g, ]
    es <- escalc(measure = "PLO", xi = events, ni = n, data = part)
    for (tok in methods) {
      fit <- rma(yi, vi, data = es, method = tau_of(tok), test = if (endsWith(tok, "-hksj")) "knha" else "z",
                 control = ctl)
      cum <- cumul(fit)
      for (i in seq_len(nrow(part))) {
        cum_rows[[length(cum_rows) + 1]] <- list(
          dataset = name, subgroup = g, method = tok, step = i, study = part$study[i],
          est_model = cum$estimate[i], ci_low_model = cum$ci.lb[i], ci_high_model = cum$ci.ub[i],
          tau2 = cum$tau2[i], i2 = cum$I2[i] / 100)
      }
    }
    if (g == "overall") next
    fit <- rma(yi, vi, data = es, method = "REML", control = ctl)
    eg <- regtest(fit, model = "rma", predictor = "sei")
    bias_rows[[length(bias_rows) + 1]] <- list(
      dataset = name, subgroup = g, test = "egger", k = nrow(part), statistic = eg$zval, df = NA, p = eg$pval,
      intercept = coef(eg$fit)[1], slope = coef(eg$fit)[2], slope_se = eg$fit$se[2])
    pt <- summary(lm(yi ~ I(1 / n), weights = 1 / vi, data = es))$coefficients
    bias_rows[[length(bias_rows) + 1]] <- list(
      dataset = name, subgroup = g, test = "peters", k = nrow(part), statistic = pt[2, "t value"],
      df = nrow(part) - 2, p = pt[2, "Pr(>|t|)"], intercept = pt[1, "Estimate"], slope = pt[2, "Estimate"],
      slope_se = pt[2, "Std. Error"])
  }
}

write_table(cum_rows, c("dataset", "subgroup", "method", "step", "study", "est_model", "ci_low_model",
                        "ci_high_model", "tau2", "i2"), file.path(out_dir, "metafor_cumulative.tsv"))
write_table(bias_rows, c("dataset", "subgroup", "test", "k", "statistic", "df", "p", "intercept", "slope",
                         "slope_se"), file.path(out_dir, "metafor_small_study.tsv"))
