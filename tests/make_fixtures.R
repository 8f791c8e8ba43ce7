# make_fixtures.R -- reference fixtures from R's metafor for the Python meta-analysis-of-proportions tests.
#
# Run from the repository root:   Rscript tests/make_fixtures.R
# Needs R with metafor and lme4:  apt-get install -y r-cran-metafor r-cran-lme4
#
# Reads every tests/fixtures/datasets/*.tsv (columns study, modality, events, n) and writes to tests/fixtures/:
#   metafor_pooled.tsv          pooled estimates per (dataset, subgroup, method)
#   metafor_subgroup_tests.tsv  between-subgroup Q and meta-regression tests per (dataset, method, test)
#   r_binom_ci.tsv              per-trial Agresti-Coull, Clopper-Pearson, Jeffreys, Wald and Wilson intervals
#   metafor_leave_one_out.tsv   leave-one-out fits per (dataset, subgroup, method, omitted study) for k >= 2
# Each output starts with a comment line of package versions (# metafor x, lme4 y, R z), then a header line.
# Numbers are written with 15 significant digits; NA (and NaN) are written as empty strings.

suppressPackageStartupMessages(library(metafor))

in_dir <- file.path("tests", "fixtures", "datasets")
out_dir <- file.path("tests", "fixtures")

# Tight convergence settings so iterative tau^2 estimators agree with other implementations to many digits.
ctl <- list(threshold = 1e-12, tol = 1e-12, maxiter = 10000)
ci_ctl <- list(tol = 1e-12)

methods <- c("logit-dl", "logit-reml", "logit-pm",
             "logit-dl-hksj", "logit-reml-hksj", "logit-pm-hksj",
             "ft-dl", "glmm")

version_line <- sprintf("# metafor %s, lme4 %s, R %s",
                        packageVersion("metafor"), packageVersion("lme4"), getRversion())

# ---- formatting helpers ----

# One cell: empty for NULL/NA/NaN, strings as is (tabs/newlines flattened), numbers with 15 significant digits.
fmt <- function(x) {
  if (is.null(x) || length(x) == 0 || is.na(x[1])) return("")
  x <- x[1]
  if (is.character(x)) return(gsub("[\t\r\n]+", " ", x))
  sprintf("%.15g", as.numeric(x))
}

# Write rows (named lists) in the given column order, after the version comment and a header line.
write_table <- function(rows, cols, path) {
  lines <- vapply(rows, function(r) paste(vapply(cols, function(cl) fmt(r[[cl]]), ""), collapse = "\t"), "")
  writeLines(c(version_line, paste(cols, collapse = "\t"), lines), path, useBytes = TRUE)
  cat(sprintf("wrote %s (%d rows)\n", path, length(rows)))
}

err_msg <- function(e) conditionMessage(e)

# ---- method tokens ----

is_ft <- function(tok) startsWith(tok, "ft-")
is_hksj <- function(tok) endsWith(tok, "-hksj")
# "logit-reml-hksj" -> "REML"
tau_method <- function(tok) toupper(sub("-hksj$", "", sub("^(logit|ft)-", "", tok)))

# Fit one method on data d (rows analysed); glmm is ML with metafor's defaults (nAGQ 7).
fit_model <- function(d, tok, mods = NULL) {
  if (tok == "glmm") {
    if (is.null(mods)) return(rma.glmm(measure = "PLO", xi = events, ni = n, data = d, method = "ML"))
    return(rma.glmm(measure = "PLO", xi = events, ni = n, data = d, mods = mods, method = "ML"))
  }
  # escalc defaults: add = 1/2 only to studies with a zero cell (to = "only0").
  es <- escalc(measure = if (is_ft(tok)) "PFT" else "PLO", xi = events, ni = n, data = d)
  test <- if (is_hksj(tok)) "knha" else "z"
  if (is.null(mods)) return(rma(yi, vi, data = es, method = tau_method(tok), test = test, control = ctl))
  rma(yi, vi, mods = mods, data = es, method = tau_method(tok), test = test, control = ctl)
}

# Back-transformation to a proportion; FT uses the harmonic mean of the n of the rows analysed.
back_transform <- function(x, d, tok) {
  out <- rep(NA_real_, length(x))
  ok <- !is.na(x)
  if (any(ok)) out[ok] <- if (is_ft(tok)) transf.ipft.hm(x[ok], targs = list(ni = d$n)) else transf.ilogit(x[ok])
  out
}

# ---- Output 1: pooled estimates ----

pooled_row <- function(dname, sname, d, tok) {
  row <- list(dataset = dname, subgroup = sname, method = tok, k = nrow(d))
  # Warnings (e.g. "Setting argument test='z' since k=1") are expected for the edge cases and not printed.
  res <- tryCatch(suppressWarnings(fit_model(d, tok)), error = function(e) e)
  if (inherits(res, "error")) {
    row$error <- err_msg(res)
    return(list(row = row, est = NA_real_, se = NA_real_))
  }
  b <- as.numeric(res$b[1]); se <- as.numeric(res$se[1])
  k <- res$k
  row$k <- k
  row$est_model <- b; row$se_model <- se
  row$ci_low_model <- as.numeric(res$ci.lb[1]); row$ci_high_model <- as.numeric(res$ci.ub[1])
  bt <- back_transform(c(b, row$ci_low_model, row$ci_high_model), d, tok)
  row$estimate <- bt[1]; row$ci_low <- bt[2]; row$ci_high <- bt[3]
  # Prediction interval of Higgins, Thompson & Spiegelhalter (2009); undefined for k < 3.
  if (k >= 3) {
    half <- qt(0.975, k - 2) * sqrt(res$tau2 + se^2)
    pi <- back_transform(c(b - half, b + half), d, tok)
    row$pi_low <- pi[1]; row$pi_high <- pi[2]
  }
  row$tau2 <- res$tau2
  row$i2 <- res$I2 / 100
  row$h2 <- res$H2
  row$q_df <- k - 1
  if (tok == "glmm") {
    # metafor's logLik() of rma.glmm: the saturated log-likelihood minus half lme4's (conditional) deviance
    row$loglik <- as.numeric(logLik(res))
    # Likelihood-ratio Q is the primary heterogeneity test for the GLMM; the Wald-type Q goes in q_wald.
    row$q <- res$QE.LRT; row$q_p <- res$QEp.LRT
    row$q_wald <- res$QE.Wld; row$q_wald_p <- res$QEp.Wld
  } else {
    row$q <- res$QE; row$q_p <- res$QEp
    # Q-profile CIs for tau^2 and I^2; confint stops for k = 1, which leaves the fields empty.
    ci <- tryCatch(suppressWarnings(confint(res, type = "QP", control = ci_ctl)), error = function(e) NULL)
    if (!is.null(ci)) {
      row$tau2_ci_low <- ci$random["tau^2", "ci.lb"]; row$tau2_ci_high <- ci$random["tau^2", "ci.ub"]
      row$i2_ci_low <- ci$random["I^2(%)", "ci.lb"] / 100; row$i2_ci_high <- ci$random["I^2(%)", "ci.ub"] / 100
    }
  }
  list(row = row, est = b, se = se)
}

# ---- Output 2: subgroup tests ----

between_row <- function(dname, tok, ests, ses, snames) {
  row <- list(dataset = dname, method = tok, test = "between")
  bad <- is.na(ests) | is.na(ses)
  # A subgroup without an estimate makes the between-subgroup Q undefined, so the row is left empty.
  if (any(bad)) {
    row$error <- paste0("no estimate for subgroup(s): ", paste(snames[bad], collapse = ", "))
    return(row)
  }
  # A zero Knapp-Hartung SE (identical studies) makes this fit stop; its variance warning is not printed.
  res <- tryCatch(suppressWarnings(rma(yi = ests, sei = ses, method = "FE", control = ctl)), error = function(e) e)
  if (inherits(res, "error")) { row$error <- err_msg(res); return(row) }
  row$statistic <- res$QE; row$df <- res$k - 1; row$p <- res$QEp
  row
}

metareg_row <- function(dname, d, tok) {
  row <- list(dataset = dname, method = tok, test = "metareg")
  res <- tryCatch(suppressWarnings(fit_model(d, tok, mods = ~ factor(modality))), error = function(e) e)
  if (inherits(res, "error")) { row$error <- err_msg(res); return(row) }
  row$statistic <- res$QM
  row$df <- res$QMdf[1]
  # QMdf[2] is the denominator df of the Knapp-Hartung F-test and NA for the z/chi-square test.
  row$df2 <- res$QMdf[2]
  row$p <- res$QMp
  # With two subgroups the second-level coefficient is a log odds ratio (not on the FT scale).
  if (nlevels(d$modality) == 2 && !is_ft(tok)) {
    row$lor <- res$b[2]; row$lor_se <- res$se[2]; row$lor_ci_low <- res$ci.lb[2]; row$lor_ci_high <- res$ci.ub[2]
  }
  row
}

# ---- Output 4: leave-one-out ----

# Model-scale numbers and their back-transformation into a leave-one-out row; d_left are the studies left.
fill_loo <- function(row, est, se, lb, ub, tau2, i2, q, qp, d_left, tok) {
  row$est_model <- est; row$se_model <- se; row$ci_low_model <- lb; row$ci_high_model <- ub
  # FT back-transformation uses the harmonic mean of the n of the studies left, not of all k.
  bt <- back_transform(c(est, lb, ub), d_left, tok)
  row$estimate <- bt[1]; row$ci_low <- bt[2]; row$ci_high <- bt[3]
  row$tau2 <- tau2; row$i2 <- i2; row$q <- q; row$q_p <- qp
  row
}

# One row per omitted study (data order); k is the number of studies left.
loo_rows <- function(dname, sname, d, tok) {
  rows <- lapply(seq_len(nrow(d)), function(j)
    list(dataset = dname, subgroup = sname, method = tok, omitted = d$study[j], k = nrow(d) - 1))
  if (tok == "glmm") {
    # leave1out has no rma.glmm method, so the GLMM is refitted without each study.
    for (j in seq_len(nrow(d))) {
      dl <- d[-j, , drop = FALSE]
      res <- tryCatch(suppressWarnings(fit_model(dl, tok)), error = function(e) e)
      if (inherits(res, "error")) { rows[[j]]$error <- err_msg(res); next }
      rows[[j]] <- fill_loo(rows[[j]], as.numeric(res$b[1]), as.numeric(res$se[1]), as.numeric(res$ci.lb[1]),
                            as.numeric(res$ci.ub[1]), res$tau2, res$I2 / 100, res$QE.LRT, res$QEp.LRT, dl, tok)
    }
    return(rows)
  }
  res <- tryCatch(suppressWarnings(fit_model(d, tok)), error = function(e) e)
  if (!inherits(res, "error")) res <- tryCatch(suppressWarnings(leave1out(res)), error = function(e) e)
  if (inherits(res, "error")) {
    for (j in seq_along(rows)) rows[[j]]$error <- paste0("full fit or leave1out failed: ", err_msg(res))
    return(rows)
  }
  for (j in seq_len(nrow(d))) {
    dl <- d[-j, , drop = FALSE]
    if (is.na(res$estimate[j])) {
      # leave1out drops a failed refit silently; refitting the same subset recovers the message.
      e <- tryCatch({ suppressWarnings(fit_model(dl, tok)); NULL }, error = function(e) e)
      rows[[j]]$error <- if (is.null(e)) "leave1out returned no estimate" else err_msg(e)
      next
    }
    rows[[j]] <- fill_loo(rows[[j]], res$estimate[j], res$se[j], res$ci.lb[j], res$ci.ub[j],
                          res$tau2[j], res$I2[j] / 100, res$Q[j], res$Qp[j], dl, tok)
  }
  rows
}

# ---- run over datasets ----

# Radix sort is locale-independent, so the dataset order is the same on every machine.
files <- sort(list.files(in_dir, pattern = "\\.tsv$", full.names = TRUE), method = "radix")
pooled_rows <- list()
test_rows <- list()
loo_out <- list()
all_pairs <- data.frame(events = numeric(0), n = numeric(0))

for (f in files) {
  dname <- sub("\\.tsv$", "", basename(f))
  d <- read.delim(f, sep = "\t", header = TRUE, stringsAsFactors = FALSE, check.names = FALSE,
                  quote = "", comment.char = "", colClasses = c("character", "character", "numeric", "numeric"))
  # Factor levels in order of first appearance so the first subgroup is the meta-regression reference.
  lv <- unique(d$modality)
  d$modality <- factor(d$modality, levels = lv)
  all_pairs <- rbind(all_pairs, d[, c("events", "n")])

  for (tok in methods) {
    ests <- ses <- rep(NA_real_, length(lv))
    for (i in seq_along(lv)) {
      sd <- droplevels(d[d$modality == lv[i], , drop = FALSE])
      out <- pooled_row(dname, lv[i], sd, tok)
      pooled_rows[[length(pooled_rows) + 1]] <- c(out$row, list(.key = c(match(f, files), i, match(tok, methods))))
      ests[i] <- out$est; ses[i] <- out$se
    }
    pooled_rows[[length(pooled_rows) + 1]] <- c(pooled_row(dname, "overall", d, tok)$row,
                                                list(.key = c(match(f, files), length(lv) + 1, match(tok, methods))))
    if (length(lv) >= 2) {
      test_rows[[length(test_rows) + 1]] <- between_row(dname, tok, ests, ses, lv)
      test_rows[[length(test_rows) + 1]] <- metareg_row(dname, d, tok)
    }
  }

  # Leave-one-out rows ordered by subgroup (first appearance, overall last), method as listed, omitted study.
  for (s in c(lv, "overall")) {
    sd <- if (s == "overall") d else droplevels(d[d$modality == s, , drop = FALSE])
    if (nrow(sd) < 2) next
    for (tok in methods) loo_out <- c(loo_out, loo_rows(dname, s, sd, tok))
  }
}

# Pooled rows ordered by dataset, subgroup (first appearance, overall last), then method as listed.
pooled_cols <- c("dataset", "subgroup", "method", "k", "estimate", "ci_low", "ci_high", "pi_low", "pi_high",
                 "tau2", "tau2_ci_low", "tau2_ci_high", "i2", "i2_ci_low", "i2_ci_high", "h2", "q", "q_df", "q_p",
                 "est_model", "se_model", "ci_low_model", "ci_high_model", "q_wald", "q_wald_p", "loglik", "error")
keys <- do.call(rbind, lapply(pooled_rows, `[[`, ".key"))
ord <- order(keys[, 1], keys[, 2], keys[, 3])
write_table(pooled_rows[ord], pooled_cols, file.path(out_dir, "metafor_pooled.tsv"))

test_cols <- c("dataset", "method", "test", "statistic", "df", "df2", "p",
               "lor", "lor_se", "lor_ci_low", "lor_ci_high", "error")
write_table(test_rows, test_cols, file.path(out_dir, "metafor_subgroup_tests.tsv"))

# ---- Output 3: per-trial binomial CIs ----

extra <- data.frame(events = c(14, 25, 81, 0, 10, 0, 1, 0, 3),
                    n = c(20, 36, 189, 10, 10, 1, 1, 1e6, 1e6))
pairs <- unique(rbind(all_pairs, extra))
pairs <- pairs[order(pairs$n, pairs$events), ]

z <- qnorm(0.975)
binom_rows <- list()
for (j in seq_len(nrow(pairs))) {
  x <- pairs$events[j]; n <- pairs$n[j]
  cp <- binom.test(x, n)$conf.int
  # Without continuity correction prop.test gives the Wilson score interval; its chi-square warning is irrelevant here.
  wi <- suppressWarnings(prop.test(x, n, correct = FALSE))$conf.int
  je <- qbeta(c(0.025, 0.975), x + 0.5, n - x + 0.5)
  if (x == 0) je[1] <- 0
  if (x == n) je[2] <- 1
  # Agresti-Coull: Wald interval around p~ = (x + z^2/2) / (n + z^2) with n~ = n + z^2, clipped to [0, 1].
  nt <- n + z^2; pt <- (x + z^2 / 2) / nt
  ac <- pmin(pmax(pt + c(-1, 1) * z * sqrt(pt * (1 - pt) / nt), 0), 1)
  # Wald: p +- z sqrt(p (1 - p) / n), clipped to [0, 1]; zero width at x = 0 and x = n.
  p <- x / n
  wa <- pmin(pmax(p + c(-1, 1) * z * sqrt(p * (1 - p) / n), 0), 1)
  # Methods in alphabetical order so rows are sorted by n, events, method.
  binom_rows[[length(binom_rows) + 1]] <- list(events = x, n = n, method = "agresti-coull", ci_low = ac[1], ci_high = ac[2])
  binom_rows[[length(binom_rows) + 1]] <- list(events = x, n = n, method = "clopper-pearson", ci_low = cp[1], ci_high = cp[2])
  binom_rows[[length(binom_rows) + 1]] <- list(events = x, n = n, method = "jeffreys", ci_low = je[1], ci_high = je[2])
  binom_rows[[length(binom_rows) + 1]] <- list(events = x, n = n, method = "wald", ci_low = wa[1], ci_high = wa[2])
  binom_rows[[length(binom_rows) + 1]] <- list(events = x, n = n, method = "wilson", ci_low = wi[1], ci_high = wi[2])
}
write_table(binom_rows, c("events", "n", "method", "ci_low", "ci_high"), file.path(out_dir, "r_binom_ci.tsv"))

# ---- write Output 4 (rows collected in the dataset loop) ----

loo_cols <- c("dataset", "subgroup", "method", "omitted", "k", "est_model", "se_model", "ci_low_model",
              "ci_high_model", "estimate", "ci_low", "ci_high", "tau2", "i2", "q", "q_p", "error")
write_table(loo_out, loo_cols, file.path(out_dir, "metafor_leave_one_out.tsv"))
