"""MkDocs hook: links from included Markdown to repository files outside docs/ (BENCHMARKS.md's
`benchmarks/h100/`, `scripts/bench_gpu.sh`) are shown as the file's repository path.

The site holds only docs/, so such a link cannot be followed there, yet it is right on GitHub, where
the same Markdown is read. A link whose target does not exist in the repository is still reported,
so `mkdocs build --strict` fails on it as on any broken link.
"""

from __future__ import annotations

import logging
import os
import re

log = logging.getLogger("mkdocs.hooks.repository_links")

# [text](target) with a relative target (no scheme, no anchor-only, no site-absolute path).
_LINK = re.compile(r"(?<!!)\[([^\]]+)\]\((?![a-z][a-z0-9+.-]*:|#|/)([^)\s#]+)(#[^)\s]*)?\)")


def on_page_markdown(markdown, page, config, files):
    docs_dir = os.path.abspath(config["docs_dir"])
    repo_dir = os.path.dirname(os.path.abspath(config["config_file_path"]))
    page_dir = os.path.dirname(os.path.join(docs_dir, page.file.src_path))

    def to_path(match: re.Match) -> str:
        text, target = match.group(1), match.group(2)
        absolute = os.path.normpath(os.path.join(page_dir, target))
        if absolute == docs_dir or absolute.startswith(docs_dir + os.sep):
            return match.group(0)  # a documentation page: MkDocs checks it
        path = os.path.relpath(absolute, repo_dir) + ("/" if target.endswith("/") else "")
        if not os.path.exists(absolute):
            log.warning("Doc file '%s' links to '%s', which is not in the repository", page.file.src_path, path)
            return match.group(0)
        return f"`{path}`" if text.strip("`") == path else f"{text} (`{path}`)"

    return _LINK.sub(to_path, markdown)
