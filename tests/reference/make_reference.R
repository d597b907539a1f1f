#!/usr/bin/env Rscript
# =============================================================================
# make_reference.R -- R reference fixtures for bioml's ComBat / removeBatchEffect
# =============================================================================
#
# WHAT
#   Runs limma::removeBatchEffect and sva::ComBat on the bladderbatch data
#   (RMA log2, 22283 probes x 57 samples) for a fixed list of cases and writes
#   the results as small fixtures that the Python tests compare against
#   (agreement = max |ours - R| / (max - min of R's output), decisions.md 12).
#
#   Every case uses the FIRST 2000 probes of the expression file (rows in file
#   order): the empirical-Bayes priors of ComBat pool over genes, so the Python
#   side must correct exactly these 2000 rows and then compare the first 300.
#   For every case that yields a matrix, the first 300 rows of the corrected
#   matrix (all samples of the case, in input column order) are written to
#   <out_dir>/<case>.tsv.gz: tab separated, first column `probe_id`, values with
#   17 significant digits (sprintf("%.17g", x), i.e. formatC(x, digits = 17,
#   format = "g") without its padding), NaN/NA as "NA".
#
#   Also written:
#     <out_dir>/cases.json       exact description of every case (function,
#                                arguments, covariate columns, sample subsets,
#                                R / limma / sva versions)
#     <out_dir>/messages.json    what R printed per case (stdout lines,
#                                messages, warnings, errors, in order) and the
#                                elapsed time of each case (system.time)
#     <out_dir>/pheno_extra.tsv  sample_id plus the synthetic covariates used
#                                below (batch2, conc, age)
#
# HOW TO RUN (from the repository root)
#   apt-get install -y r-base-core r-bioc-limma r-bioc-sva     # Debian 12
#   Rscript tests/reference/make_reference.R [shared_dir] [out_dir]
#
#   shared_dir defaults to ../shared/data/bladderbatch (relative to the
#   repository root) and must hold bladder_expr.tsv.gz and bladder_pheno.tsv;
#   out_dir defaults to tests/reference/fixtures. Relative paths given on the
#   command line are taken relative to the current directory.
#
#   Debian 12 packages used: r-base-core (R 4.2.2), r-bioc-limma (3.54.x),
#   r-bioc-sva (3.46.0). No other R package is needed (JSON is written by a
#   small function below). The script is deterministic: no random numbers are
#   drawn, ComBat runs serially, and R's gzfile() writes gzip headers with no
#   time stamp, so re-running produces byte-identical files.
#
# CONVENTIONS
#   batch  = factor(pheno$batch)             levels "1".."5"
#   cancer = factor(pheno$cancer)            levels Biopsy, Cancer, Normal
#   mod    = model.matrix(~cancer, data = pheno)
#   Synthetic columns (also in pheno_extra.tsv):
#     batch2 = factor(rep(c("a", "b"), length.out = 57))   second batch factor
#     conc   = ((1:57) - 29)^2 / 100                       technical covariate
#     age    = round(40 + 20 * sin(1:57), 3)               biological covariate
# =============================================================================

suppressPackageStartupMessages({
  library(limma)
  library(sva)
})

N_GENES <- 2000L
N_WRITE <- 300L

# ---------------------------------------------------------------- paths ------
script_path <- local({
  a <- commandArgs(trailingOnly = FALSE)
  f <- sub("^--file=", "", a[grepl("^--file=", a)])
  if (length(f) == 1L) normalizePath(f) else NA_character_
})
repo_root <- if (!is.na(script_path)) {
  normalizePath(file.path(dirname(script_path), "..", ".."))
} else {
  getwd()
}
args <- commandArgs(trailingOnly = TRUE)
shared_dir <- if (length(args) >= 1L) args[[1]] else
  file.path(repo_root, "..", "shared", "data", "bladderbatch")
out_dir <- if (length(args) >= 2L) args[[2]] else
  file.path(repo_root, "tests", "reference", "fixtures")
dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)
shared_dir <- normalizePath(shared_dir, mustWork = TRUE)
out_dir <- normalizePath(out_dir, mustWork = TRUE)

# --------------------------------------------------------- tiny JSON writer --
# Scalars (length-1 atomic vectors) become JSON scalars, other atomic vectors
# become arrays; wrap in as.list() / I() to force an array of length 1.
json_str <- function(s) {
  s <- enc2utf8(as.character(s))
  s <- gsub("\\", "\\\\", s, fixed = TRUE)
  s <- gsub("\"", "\\\"", s, fixed = TRUE)
  s <- gsub("\n", "\\n", s, fixed = TRUE)
  s <- gsub("\r", "\\r", s, fixed = TRUE)
  s <- gsub("\t", "\\t", s, fixed = TRUE)
  paste0("\"", s, "\"")
}
json_atom <- function(v) {
  if (is.null(v)) return("null")
  if (is.factor(v)) v <- as.character(v)
  out <- if (is.logical(v)) {
    ifelse(v, "true", "false")
  } else if (is.numeric(v)) {
    as.character(v)                  # 15 significant digits: metadata only
  } else {
    json_str(v)
  }
  out[is.na(v)] <- "null"
  out
}
to_json <- function(x, indent = 0L) {
  pad <- strrep("  ", indent)
  pad1 <- strrep("  ", indent + 1L)
  if (is.null(x)) return("null")
  if (is.list(x)) {
    if (length(x) == 0L) return(if (is.null(names(x))) "[]" else "{}")
    items <- vapply(x, to_json, character(1), indent = indent + 1L)
    if (!is.null(names(x))) {
      items <- paste0(json_str(names(x)), ": ", items)
      return(paste0("{\n", paste0(pad1, items, collapse = ",\n"), "\n", pad, "}"))
    }
    return(paste0("[\n", paste0(pad1, items, collapse = ",\n"), "\n", pad, "]"))
  }
  if (length(x) == 0L) return("[]")
  a <- json_atom(x)
  if (length(x) == 1L && !inherits(x, "AsIs")) return(a)
  paste0("[", paste(a, collapse = ", "), "]")
}
write_json <- function(x, path) {
  con <- file(path, open = "w", encoding = "UTF-8")
  on.exit(close(con))
  writeLines(to_json(x), con)
}

# ------------------------------------------------------------ data ----------
expr_path <- file.path(shared_dir, "bladder_expr.tsv.gz")
pheno_path <- file.path(shared_dir, "bladder_pheno.tsv")
expr_df <- read.delim(expr_path, check.names = FALSE, stringsAsFactors = FALSE,
                      colClasses = c("character", rep("numeric", 57L)),
                      nrows = N_GENES)
stopifnot(nrow(expr_df) == N_GENES, names(expr_df)[1] == "probe_id")
x <- as.matrix(expr_df[, -1])
rownames(x) <- expr_df$probe_id
stopifnot(ncol(x) == 57L, !anyNA(x))

pheno <- read.delim(pheno_path, stringsAsFactors = FALSE, check.names = FALSE)
pheno <- pheno[match(colnames(x), pheno$sample_id), ]
stopifnot(identical(pheno$sample_id, colnames(x)))
rownames(pheno) <- pheno$sample_id

pheno$batch <- factor(pheno$batch)
pheno$cancer <- factor(pheno$cancer)           # Biopsy, Cancer, Normal
pheno$batch2 <- factor(rep(c("a", "b"), length.out = 57L))
pheno$conc <- ((1:57) - 29)^2 / 100
pheno$age <- round(40 + 20 * sin(1:57), 3)

batch <- pheno$batch
batch2 <- pheno$batch2
conc <- pheno$conc
mod <- model.matrix(~cancer, data = pheno)
mod_age <- model.matrix(~cancer + age, data = pheno)

# Is batch2 aliased with batch / cancer / conc?  (It must not be.)
alias_check <- local({
  X <- cbind(mod,
             model.matrix(~batch, data = pheno,
                          contrasts.arg = list(batch = "contr.sum"))[, -1],
             model.matrix(~batch2, data = pheno,
                          contrasts.arg = list(batch2 = "contr.sum"))[, -1, drop = FALSE],
             conc = conc)
  list(columns = ncol(X), rank = qr(X)$rank)
})
stopifnot(alias_check$rank == alias_check$columns)

fmt17 <- function(v) {
  out <- sprintf("%.17g", v)                     # = formatC(v, digits = 17, format = "g"), unpadded
  out[is.na(v)] <- "NA"                          # NaN and NA both written "NA"
  out
}

extra <- data.frame(sample_id = pheno$sample_id,
                    batch2 = as.character(pheno$batch2),
                    conc = fmt17(pheno$conc),
                    age = fmt17(pheno$age),
                    stringsAsFactors = FALSE)
write.table(extra, file.path(out_dir, "pheno_extra.tsv"), sep = "\t",
            quote = FALSE, row.names = FALSE)

write_fixture <- function(mat, case) {
  m <- mat[seq_len(min(N_WRITE, nrow(mat))), , drop = FALSE]
  txt <- matrix(fmt17(as.vector(m)), nrow = nrow(m))
  df <- data.frame(probe_id = rownames(m), txt, stringsAsFactors = FALSE,
                   check.names = FALSE)
  names(df) <- c("probe_id", colnames(m))
  path <- file.path(out_dir, paste0(case, ".tsv.gz"))
  con <- gzfile(path, open = "wb", compression = 9)
  on.exit(close(con))
  write.table(df, con, sep = "\t", quote = FALSE, row.names = FALSE)
  basename(path)
}

# ----------------------------------------------- capture what R prints ------
# Runs expr, returning its value (or NULL on error) together with an ordered
# log of stdout lines, messages, warnings and the error, and the elapsed time.
run_captured <- function(expr) {
  expr <- substitute(expr)
  env <- parent.frame()
  log <- list()
  out_lines <- character(0)
  n_seen <- 0L
  add <- function(type, text) {
    log[[length(log) + 1L]] <<- list(type = type, text = text)
  }
  flush_stdout <- function() {
    cur <- textConnectionValue(tc)
    if (length(cur) > n_seen) {
      for (l in cur[(n_seen + 1L):length(cur)]) add("stdout", l)
      n_seen <<- length(cur)
    }
  }
  tc <- textConnection("out_lines", open = "w", local = TRUE)
  sink(tc)
  value <- NULL
  err <- NULL
  elapsed <- system.time(tryCatch(
    withCallingHandlers(
      value <- eval(expr, env),
      message = function(m) {
        flush_stdout()
        add("message", sub("\n$", "", conditionMessage(m)))
        invokeRestart("muffleMessage")
      },
      warning = function(w) {
        flush_stdout()
        add("warning", conditionMessage(w))
        invokeRestart("muffleWarning")
      }
    ),
    error = function(e) {
      err <<- conditionMessage(e)
    }
  ))[["elapsed"]]
  sink()
  cat("\n", file = tc)                    # complete a last unterminated line
  flush_stdout()
  close(tc)
  # drop the empty line added above when stdout ended with a newline
  if (length(log) && log[[length(log)]]$type == "stdout" &&
      log[[length(log)]]$text == "") {
    log[[length(log)]] <- NULL
  }
  if (!is.null(err)) add("error", err)
  list(value = value, log = log, error = err, elapsed = elapsed)
}

# --------------------------------------------------------------- cases ------
cases <- list()
messages <- list()
timings <- list()

record <- function(case, res, desc, write = TRUE) {
  cat(sprintf("%-28s %8.2f s  %s\n", case, res$elapsed,
              if (is.null(res$error)) "ok" else paste("ERROR:", res$error)))
  desc$fixture <- NULL
  if (write && is.null(res$error)) {
    desc$fixture <- write_fixture(res$value, case)
    desc$output_rows <- min(N_WRITE, nrow(res$value))
    desc$output_cols <- ncol(res$value)
  }
  desc$error <- res$error
  cases[[case]] <<- desc
  messages[[case]] <<- list(
    log = res$log,
    stdout = I(vapply(Filter(function(l) l$type == "stdout", res$log),
                      `[[`, "", "text")),
    messages = I(vapply(Filter(function(l) l$type == "message", res$log),
                        `[[`, "", "text")),
    warnings = I(vapply(Filter(function(l) l$type == "warning", res$log),
                        `[[`, "", "text")),
    error = res$error,
    elapsed_s = round(res$elapsed, 3)
  )
  timings[[case]] <<- round(res$elapsed, 3)
  invisible(res$value)
}

all_samples <- "all"
base_desc <- function(fun, call, args, covariates = list(), subset = NULL,
                      notes = NULL) {
  list(function_name = fun, call = call, arguments = args,
       covariate_columns = covariates,
       samples = if (is.null(subset)) all_samples else I(subset),
       n_genes_input = N_GENES,
       genes = "first 2000 rows of bladder_expr.tsv.gz (file order)",
       notes = notes)
}
MOD_DESC <- "model.matrix(~cancer, data = pheno)"
MOD_AGE_DESC <- "model.matrix(~cancer + age, data = pheno)"

# limma ----------------------------------------------------------------------
res <- run_captured(removeBatchEffect(x, batch = batch))
record("limma_batch", res, base_desc(
  "limma::removeBatchEffect", "removeBatchEffect(x, batch = batch)",
  list(batch = "factor(pheno$batch)")))

res <- run_captured(removeBatchEffect(x, batch = batch, design = mod))
record("limma_batch_design", res, base_desc(
  "limma::removeBatchEffect",
  "removeBatchEffect(x, batch = batch, design = mod)",
  list(batch = "factor(pheno$batch)", design = MOD_DESC),
  covariates = list(design = "cancer")))

res <- run_captured(removeBatchEffect(x, batch = batch, batch2 = batch2,
                                      covariates = conc, design = mod))
record("limma_two_batches_cov", res, base_desc(
  "limma::removeBatchEffect",
  "removeBatchEffect(x, batch = batch, batch2 = batch2, covariates = conc, design = mod)",
  list(batch = "factor(pheno$batch)", batch2 = "pheno_extra.tsv batch2",
       covariates = "pheno_extra.tsv conc", design = MOD_DESC),
  covariates = list(design = "cancer", batch2 = "batch2", covariates = "conc"),
  notes = sprintf("design + contr.sum(batch) + contr.sum(batch2) + conc: %d columns, rank %d (batch2 not aliased)",
                  alias_check$columns, alias_check$rank)))

res <- run_captured(removeBatchEffect(x, batch = batch, design = mod_age))
record("limma_design_age", res, base_desc(
  "limma::removeBatchEffect",
  "removeBatchEffect(x, batch = batch, design = model.matrix(~cancer + age))",
  list(batch = "factor(pheno$batch)", design = MOD_AGE_DESC),
  covariates = list(design = I(c("cancer", "age")))))

# ComBat ---------------------------------------------------------------------
res <- run_captured(ComBat(x, batch = batch, mod = NULL))
record("combat_param", res, base_desc(
  "sva::ComBat", "ComBat(x, batch = batch, mod = NULL)",
  list(batch = "factor(pheno$batch)", mod = NULL, par.prior = TRUE,
       mean.only = FALSE, ref.batch = NULL)))

res <- run_captured(ComBat(x, batch = batch, mod = mod))
record("combat_param_mod", res, base_desc(
  "sva::ComBat", "ComBat(x, batch = batch, mod = mod)",
  list(batch = "factor(pheno$batch)", mod = MOD_DESC, par.prior = TRUE,
       mean.only = FALSE, ref.batch = NULL),
  covariates = list(mod = "cancer")))

res <- run_captured(ComBat(x, batch = batch, mod = mod_age))
record("combat_param_mod_age", res, base_desc(
  "sva::ComBat", "ComBat(x, batch = batch, mod = model.matrix(~cancer + age))",
  list(batch = "factor(pheno$batch)", mod = MOD_AGE_DESC, par.prior = TRUE,
       mean.only = FALSE, ref.batch = NULL),
  covariates = list(mod = I(c("cancer", "age")))))

res <- run_captured(ComBat(x, batch = batch, mod = mod, par.prior = FALSE))
record("combat_nonparam_mod", res, base_desc(
  "sva::ComBat", "ComBat(x, batch = batch, mod = mod, par.prior = FALSE)",
  list(batch = "factor(pheno$batch)", mod = MOD_DESC, par.prior = FALSE,
       mean.only = FALSE, ref.batch = NULL),
  covariates = list(mod = "cancer")))

res <- run_captured(ComBat(x, batch = batch, mod = mod, mean.only = TRUE))
record("combat_meanonly_mod", res, base_desc(
  "sva::ComBat", "ComBat(x, batch = batch, mod = mod, mean.only = TRUE)",
  list(batch = "factor(pheno$batch)", mod = MOD_DESC, par.prior = TRUE,
       mean.only = TRUE, ref.batch = NULL),
  covariates = list(mod = "cancer")))

res <- run_captured(ComBat(x, batch = batch, mod = NULL, par.prior = FALSE,
                           mean.only = TRUE))
record("combat_nonparam_meanonly", res, base_desc(
  "sva::ComBat",
  "ComBat(x, batch = batch, mod = NULL, par.prior = FALSE, mean.only = TRUE)",
  list(batch = "factor(pheno$batch)", mod = NULL, par.prior = FALSE,
       mean.only = TRUE, ref.batch = NULL)))

res <- run_captured(ComBat(x, batch = batch, mod = mod, ref.batch = 2))
record("combat_ref1_mod", res, base_desc(
  "sva::ComBat", "ComBat(x, batch = batch, mod = mod, ref.batch = 2)",
  list(batch = "factor(pheno$batch)", mod = MOD_DESC, par.prior = TRUE,
       mean.only = FALSE, ref.batch = "2"),
  covariates = list(mod = "cancer"),
  notes = "reference batch is batch \"2\" (14 Cancer + 4 Normal); its columns should come back unchanged"))

# singleton batch: keep only the first batch-3 sample (file order)
b3 <- which(batch == "3")
keep_single <- setdiff(seq_len(ncol(x)), b3[-1])
x_single <- x[, keep_single]
batch_single <- droplevels(batch[keep_single])
res <- run_captured(ComBat(x_single, batch = batch_single, mod = NULL))
record("combat_singleton", res, base_desc(
  "sva::ComBat", "ComBat(x_sub, batch = batch_sub, mod = NULL)",
  list(batch = "factor(pheno$batch)[subset]", mod = NULL, par.prior = TRUE,
       mean.only = FALSE, ref.batch = NULL),
  subset = colnames(x_single),
  notes = sprintf("all samples except batch-3 samples after the first; batch 3 keeps only %s; dropped: %s",
                  colnames(x)[b3[1]], paste(colnames(x)[b3[-1]], collapse = ", "))))

# constant genes: rows 3 and 7 set to 5.0 within batch 1
const_rows <- c(3L, 7L)
x_const <- x
x_const[const_rows, batch == "1"] <- 5.0
res <- run_captured(ComBat(x_const, batch = batch, mod = mod))
const_out <- record("combat_constant_gene", res, base_desc(
  "sva::ComBat", "ComBat(x_mod, batch = batch, mod = mod)",
  list(batch = "factor(pheno$batch)", mod = MOD_DESC, par.prior = TRUE,
       mean.only = FALSE, ref.batch = NULL),
  covariates = list(mod = "cancer"),
  notes = paste("x_mod = x with rows 3 and 7 (1-based) set to 5.0 in every batch-1 sample.",
                "sva 3.46 flags rows with var == 0 within any batch of >1 sample (not only all-zero rows),",
                "returns them unadjusted and computes everything else (priors included) on the other 1998 rows")))
cases$combat_constant_gene$modified_rows_1based <- I(const_rows)
cases$combat_constant_gene$modified_probes <- I(rownames(x)[const_rows])
cases$combat_constant_gene$modified_value <- 5.0
cases$combat_constant_gene$modified_samples <- I(colnames(x)[batch == "1"])
if (!is.null(const_out)) {
  cases$combat_constant_gene$result_rows_3_7 <- list(
    any_nan = any(is.na(const_out[const_rows, ])),
    unchanged_from_input = isTRUE(all.equal(unname(const_out[const_rows, ]),
                                            unname(x_const[const_rows, ]),
                                            tolerance = 0)),
    max_abs_change = max(abs(const_out[const_rows, ] - x_const[const_rows, ]))
  )
}

# aliased design: batches 1, 3, 4 only (batch determines cancer)
keep_alias <- which(batch %in% c("1", "3", "4"))
x_alias <- x[, keep_alias]
pheno_alias <- pheno[keep_alias, ]
batch_alias <- droplevels(pheno_alias$batch)
mod_alias <- model.matrix(~cancer, data = pheno_alias)
res <- run_captured(ComBat(x_alias, batch = batch_alias, mod = mod_alias))
record("combat_aliased", res, base_desc(
  "sva::ComBat", "ComBat(x_sub, batch = batch_sub, mod = model.matrix(~cancer, data = pheno_sub))",
  list(batch = "factor(pheno$batch)[subset] (levels 1, 3, 4)",
       mod = "model.matrix(~cancer, data = pheno_sub)", par.prior = TRUE,
       mean.only = FALSE, ref.batch = NULL),
  covariates = list(mod = "cancer"),
  subset = colnames(x_alias),
  notes = "samples of batches 1, 3 and 4: batch 1 = Cancer, 3 = Normal, 4 = Biopsy; expected to stop (no matrix written)"),
  write = FALSE)

res <- run_captured(removeBatchEffect(x_alias, batch = batch_alias,
                                      design = mod_alias))
record("limma_aliased", res, base_desc(
  "limma::removeBatchEffect",
  "removeBatchEffect(x_sub, batch = batch_sub, design = model.matrix(~cancer, data = pheno_sub))",
  list(batch = "factor(pheno$batch)[subset] (levels 1, 3, 4)",
       design = "model.matrix(~cancer, data = pheno_sub)"),
  covariates = list(design = "cancer"),
  subset = colnames(x_alias),
  notes = "same subset as combat_aliased"))

# -------------------------------------------------------------- metadata ----
meta <- list(
  generated_by = "tests/reference/make_reference.R",
  R_version = R.version.string,
  limma_version = as.character(packageVersion("limma")),
  sva_version = as.character(packageVersion("sva")),
  platform = R.version$platform,
  blas = tryCatch(extSoftVersion()[["BLAS"]], error = function(e) NA),
  lapack = tryCatch(La_library(), error = function(e) NA),
  input = list(expr = "bladder_expr.tsv.gz", pheno = "bladder_pheno.tsv",
               n_genes_used = N_GENES, n_rows_written = N_WRITE,
               first_probe = rownames(x)[1], last_probe = rownames(x)[N_GENES]),
  conventions = list(
    batch = "factor(pheno$batch) (levels 1..5)",
    cancer = "factor(pheno$cancer) (levels Biopsy, Cancer, Normal)",
    mod = MOD_DESC,
    batch2 = "factor(rep(c(\"a\",\"b\"), length.out = 57))",
    conc = "((1:57) - 29)^2 / 100",
    age = "round(40 + 20 * sin(1:57), 3)",
    values = "sprintf(\"%.17g\", x) (17 significant digits); NaN/NA written as NA"
  ),
  cases = cases
)
write_json(meta, file.path(out_dir, "cases.json"))
write_json(list(R_version = R.version.string,
                limma_version = meta$limma_version,
                sva_version = meta$sva_version,
                timings_s = timings,
                cases = messages),
           file.path(out_dir, "messages.json"))
cat("wrote fixtures to", out_dir, "\n")
