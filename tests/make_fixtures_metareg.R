# make_fixtures_metareg.R -- metafor references for meta-regression on continuous moderators (config
# meta_regressions): rma(yi, vi, mods = ~ x, method = "REML", test = "z" / "knha") on the logit scale and
# rma.glmm(measure = "PLO", mods = ~ x), moderators on their raw scale (publication year as printed).
#
# Run from the repository root:   Rscript tests/make_fixtures_metareg.R     (needs metafor, metadat, lme4)
#
# Datasets (tests/fixtures/metareg/datasets.tsv, written here; columns dataset, outcome, study, group, events, n,
# year, x2):
#   commentary   the bundled data's kept rows per outcome (tests/fixtures/metareg/commentary.tsv, the rows of
#                results/tables/studies.tsv with included = True of a run on config.yaml), year per modality
#   debruin2009  metadat's dat.debruin2009: k = 13, one group; year, and scq (x2)
#   hasselblad1998  dat.hasselblad1998: the arms' quit rates grouped by trt (19, 19, 6 and 6 arms); year
#   linde2005    dat.linde2005: responders in the treatment arm (ai/n1i) and in the placebo arm (ci/n2i) as two
#                groups of 26; year
#   obrien2003   dat.obrien2003: cases/total grouped by BMI group (grp 1, 2, 3: 13, 13, 10 rows); year, and bmi (x2)
# Moderator sets: year; x2; x2 + year where x2 exists. Within each group; and across groups with group as a factor
# (~ group + year) for hasselblad1998 and linde2005.
# Writes tests/fixtures/metafor_metareg.tsv: one row per (dataset, outcome, group, moderators, method, term).
# Columns: the coefficient (estimate, se, statistic, p, ci_low, ci_high) and the model (k, coefficients, qm, qm_df,
# qm_df2, qm_p, tau2, i2, r2, qe, qe_df, qe_p, loglik); i2 and r2 as fractions. r2 of the GLMM (rma.glmm prints none)
# is computed as rma.uni does: max(0, (tau2 of the intercept-only rma.glmm - tau2) / that tau2), 0 when that is 0.
# Convergence: REML to threshold 1e-12 (maxiter 10000); glmer with bobyqa, rhoend 1e-12 (the GLMM's loglik is
# written so that the test can check ours is not below it).
# Numbers with 15 significant digits; NA written as empty.

suppressPackageStartupMessages({library(metafor); library(metadat)})

out_dir <- file.path("tests", "fixtures")
ctl <- list(threshold = 1e-12, tol = 1e-12, maxiter = 10000)
glmm_ctl <- list(glmerCtrl = list(optimizer = "bobyqa", optCtrl = list(rhobeg = 0.02, rhoend = 1e-12, maxfun = 1e6)))
version_line <- sprintf("# metafor %s, lme4 %s, R %s", packageVersion("metafor"), packageVersion("lme4"), getRversion())

fmt <- function(x) {
  if (is.null(x) || length(x) == 0 || is.na(x[1])) return("")
  x <- x[1]
  if (is.character(x)) return(x)
  sprintf("%.15g", as.numeric(x))
}

com <- read.delim(file.path(out_dir, "metareg", "commentary.tsv"), stringsAsFactors = FALSE)
com$x2 <- NA
sets <- list(
  com[, c("dataset", "outcome", "study", "group", "events", "n", "year", "x2")],
  with(dat.debruin2009, data.frame(dataset = "debruin2009", outcome = "p", study = author, group = "all",
                                   events = xi, n = ni, year = year, x2 = scq)),
  with(dat.hasselblad1998, data.frame(dataset = "hasselblad1998", outcome = "p", study = paste(study, trt),
                                      group = trt, events = xi, n = ni, year = year, x2 = NA)),
  with(dat.linde2005, rbind(
    data.frame(dataset = "linde2005", outcome = "p", study = study, group = "treatment", events = ai, n = n1i,
               year = year, x2 = NA),
    data.frame(dataset = "linde2005", outcome = "p", study = study, group = "placebo", events = ci, n = n2i,
               year = year, x2 = NA))),
  with(subset(dat.obrien2003, grp <= 3), data.frame(dataset = "obrien2003", outcome = "p",
                                                    study = paste(author, year, grp), group = paste0("bmi", grp),
                                                    events = cases, n = total, year = year, x2 = bmi))
)
data <- do.call(rbind, sets)
write.table(data[data$dataset != "commentary", ], file.path(out_dir, "metareg", "datasets.tsv"), sep = "\t",
            quote = FALSE, row.names = FALSE, na = "")

rows <- list()
add <- function(...) rows[[length(rows) + 1]] <<- list(...)

r2_of <- function(tau2_re, tau2) if (tau2_re == 0) 0 else max(0, (tau2_re - tau2) / tau2_re)

fit_all <- function(d, mods, label, dname, outcome, group) {
  d <- d[complete.cases(d[, c("events", "n", all.vars(mods)), drop = FALSE]), ]
  es <- escalc(measure = "PLO", xi = events, ni = n, data = d)
  p <- ncol(model.matrix(mods, data = d))
  if (nrow(d) <= p) return(invisible(NULL))
  base <- list(dataset = dname, outcome = outcome, group = group, moderators = label, k = nrow(d), coefficients = p)
  for (tok in c("logit-reml", "logit-reml-hksj")) {
    test <- if (tok == "logit-reml") "z" else "knha"
    f <- rma(yi, vi, mods = mods, data = es, method = "REML", test = test, control = ctl)
    f0 <- rma(yi, vi, data = es, method = "REML", test = test, control = ctl)
    for (j in seq_along(coef(f))) {
      do.call(add, c(base, list(method = tok, term = rownames(f$beta)[j], estimate = f$beta[j], se = f$se[j],
                                statistic = f$zval[j], p = f$pval[j], ci_low = f$ci.lb[j], ci_high = f$ci.ub[j],
                                qm = f$QM, qm_df = f$QMdf[1], qm_df2 = f$QMdf[2], qm_p = f$QMp, tau2 = f$tau2,
                                i2 = f$I2 / 100, r2 = r2_of(f0$tau2, f$tau2), qe = f$QE, qe_df = f$k - f$p,
                                qe_p = f$QEp, loglik = as.numeric(logLik(f)))))
    }
  }
  g <- try(rma.glmm(measure = "PLO", xi = events, ni = n, mods = mods, data = d, control = glmm_ctl), silent = TRUE)
  g0 <- try(rma.glmm(measure = "PLO", xi = events, ni = n, data = d, control = glmm_ctl), silent = TRUE)
  if (inherits(g, "try-error") || inherits(g0, "try-error")) {
    cat(sprintf("  glmm failed: %s %s %s %s\n", dname, outcome, group, label))
    return(invisible(NULL))
  }
  for (j in seq_along(coef(g))) {
    do.call(add, c(base, list(method = "glmm", term = rownames(g$beta)[j], estimate = g$beta[j], se = g$se[j],
                              statistic = g$zval[j], p = g$pval[j], ci_low = g$ci.lb[j], ci_high = g$ci.ub[j],
                              qm = g$QM, qm_df = g$QMdf[1], qm_df2 = NA, qm_p = g$QMp, tau2 = g$tau2, i2 = g$I2 / 100,
                              r2 = r2_of(g0$tau2, g$tau2), qe = NA, qe_df = NA, qe_p = NA,
                              loglik = as.numeric(logLik(g)))))
  }
}

for (dname in unique(data$dataset)) {
  dd <- data[data$dataset == dname, ]
  for (outcome in unique(dd$outcome)) {
    d1 <- dd[dd$outcome == outcome, ]
    has_x2 <- any(!is.na(d1$x2))
    msets <- list(list(~ year, "year"))
    if (has_x2) msets <- c(msets, list(list(~ x2, "x2"), list(~ x2 + year, "x2 + year")))
    for (group in unique(d1$group)) {
      for (ms in msets) fit_all(d1[d1$group == group, ], ms[[1]], ms[[2]], dname, outcome, group)
    }
    if (dname %in% c("hasselblad1998", "linde2005")) {
      d1$group <- factor(d1$group, levels = unique(d1$group))
      fit_all(d1, ~ group + year, "year", dname, outcome, "all")
    }
  }
}

cols <- c("dataset", "outcome", "group", "moderators", "method", "term", "estimate", "se", "statistic", "p", "ci_low",
          "ci_high", "k", "coefficients", "qm", "qm_df", "qm_df2", "qm_p", "tau2", "i2", "r2", "qe", "qe_df", "qe_p",
          "loglik")
lines <- vapply(rows, function(r) paste(vapply(cols, function(cl) fmt(r[[cl]]), ""), collapse = "\t"), "")
path <- file.path(out_dir, "metafor_metareg.tsv")
writeLines(c(version_line, paste(cols, collapse = "\t"), lines), path, useBytes = TRUE)
cat(sprintf("wrote %s (%d rows)\n", path, length(rows)))
