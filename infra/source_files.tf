# What Cloud Functions gets: main.py, the runtime requirements and the functions package, without the developer
# tools (tools/), the operators' command line (functions/cli*.py, functions/__main__.py) and bytecode.
# tests/infra evaluates these locals with Terraform itself and imports every entry point from exactly these files.
locals {
  repo_root = abspath("${path.module}/..")

  source_files = sort(concat(
    ["main.py", "requirements.txt"],
    [
      for file in fileset(local.repo_root, "functions/**") : file
      if length(regexall("^functions/(devtools/|cli|__main__[.]py$)|__pycache__|[.]pyc$", file)) == 0
    ],
  ))

  # Over names and contents, so the object name (and with it the functions) changes exactly when the code does.
  source_hash = sha256(join("\n", [for file in local.source_files : "${file} ${filesha256("${local.repo_root}/${file}")}"]))
}
