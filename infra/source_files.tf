# What Cloud Functions gets is defined once, in source_files.json: include globs less exclude patterns. deploy.sh
# reads the same file (--list-source prints the result); tests/infra checks both give the same files, evaluating
# these locals with Terraform itself, and imports every entry point from exactly those files.
locals {
  repo_root    = abspath("${path.module}/..")
  source_rules = jsondecode(file("${path.module}/source_files.json"))

  source_files = sort([
    for file in setunion([for pattern in keys(local.source_rules.include) : fileset(local.repo_root, pattern)]...) : file
    if alltrue([for pattern in keys(local.source_rules.exclude) : length(regexall(pattern, file)) == 0])
  ])

  # Over names and contents, so the object name (and with it the functions) changes exactly when the code does.
  source_hash = sha256(join("\n", [for file in local.source_files : "${file} ${filesha256("${local.repo_root}/${file}")}"]))
}
