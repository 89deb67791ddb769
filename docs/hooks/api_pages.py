"""MkDocs hook: an API page that documents a package module by module (models, bench: their
`__init__` re-exports every public name, so rendering the package whole would show each twice)
must name every module of the package, so a new module cannot be left out of the reference
unnoticed: `mkdocs build --strict` fails on the warning."""

from __future__ import annotations

import logging
import os
import re

log = logging.getLogger("mkdocs.hooks.api_pages")

_DIRECTIVE = re.compile(r"^::: ([\w.]+)", re.MULTILINE)


def on_page_markdown(markdown, page, config, files):
    documented = set(_DIRECTIVE.findall(markdown))
    repo_dir = os.path.dirname(os.path.abspath(config["config_file_path"]))
    for package in documented:
        folder = os.path.join(repo_dir, *package.split("."))
        by_module = any(name.startswith(package + ".") for name in documented)
        if not by_module or not os.path.isfile(os.path.join(folder, "__init__.py")):
            continue  # a package rendered whole (show_submodules) lists its modules itself
        for entry in sorted(os.listdir(folder)):
            name, ext = os.path.splitext(entry)
            if ext == ".py" and not name.startswith("_") and f"{package}.{name}" not in documented:
                log.warning("Doc file '%s' documents %s module by module but leaves out %s.%s",
                            page.file.src_path, package, package, name)
    return markdown
