"""What a published file may name: no machine, no user, no local folder.

Published files (results/: matrix.json, COMPATIBILITY.md, index.html, history.jsonl,
bisect/*.json, the badge) are read by strangers, and on a self-hosted runner the raw facts
name internal hosts and workspaces. The cell files keep those raw facts (the diagnosis reads
traceback paths to find the sources of the frames), so a `Publication` rewrites text only
on its way out, in the writers of probes/record.py:

- an absolute path becomes what it means on any machine: `site-packages/...` for the env's
  packages, `transformers_modules/...` for the HF modules folder (remote code),
  `python3.11/...` for the standard library, relative to the config's folder,
  `$MATRIX_CACHE/...` below the cache, `~/...` below a home folder, `$TMPDIR/<name>` in a
  temporary folder, and `…/<name>` for anything else that is not a system folder (/usr,
  /etc, /proc, ...): placeholders that read the same in JSON, Markdown and HTML;
- a hostname becomes `host-<sha256[:8]>` (stable, so merged shards from several machines
  stay distinct and the same machine keeps its name from run to run), and a kernel string
  (`platform.platform()`) only its system and architecture, unless the config names a
  machine label (`[settings] machine_label`): then the machines are published under that
  label, with their full platform string.

Every rule is idempotent: publishing a published text again changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import socket
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from probes.record import dumps_strict, write_json_atomic, write_text_atomic

# An absolute POSIX path: a '/' that starts a name (not '//' of a URL, not '</' of a tag, not
# inside a relative path or a word), also right after a JSON escape (`\n/root/...` in the
# page's embedded JSON), or the path of a file:// URL; it ends at a character a traceback,
# log or JSON text puts after a path.
_NAME_CHAR = r"(?:[^\s\"'`<>|:;,()\[\]{}\\]|\\[_*])"  # what a path holds ('\_' is Markdown's '_')
# The first character names a file or folder (so `/*` of a CSS comment or ` / ` is no path).
ABSOLUTE_PATH = re.compile(rf"(?:(?<=file://)|(?<=\\[ntr])|(?<![\w.~<>/\\+\]…-]))/(?=[\w.~+-]){_NAME_CHAR}+")
# Markdown escapes a cell's text (`\_`, `\*`) before the publication sees it.
MD_ESCAPED = re.compile(r"\\([_*])")
PACKAGES = re.compile(r"/(?:site|dist)-packages(?=/|$)")
MODULES = "/transformers_modules/"
STDLIB = re.compile(r"/lib/(python\d+\.\d+)(?=/|$)")
NOX_ENVS = "/.nox/"
RUNNER_WORKSPACE = re.compile(r"/_work/[^/]+/[^/]+(?=/|$)")  # a GitHub Actions runner's checkout
HOMES = re.compile(r"^(?:/home/[^/]+|/Users/[^/]+|/root)(?=/|$)")
TEMP_FOLDERS = ("/tmp", "/var/tmp", "/var/folders", "/private/var/folders", "/private/tmp", "/dev/shm")
SYSTEM_FOLDERS = ("/usr", "/lib", "/lib64", "/bin", "/sbin", "/etc", "/proc", "/sys", "/dev", "/opt/conda", "/nix")
ALIAS = re.compile(r"^host-[0-9a-f]{8}$")
ARCHES = ("x86_64", "aarch64", "arm64", "AMD64", "i686", "ppc64le", "s390x", "riscv64")


def host_alias(hostname: str) -> str:
    """`host-<sha256[:8]>`: tells machines apart without naming them (an alias stays itself)."""
    if ALIAS.match(hostname):
        return hostname
    return "host-" + hashlib.sha256(hostname.encode("utf-8")).hexdigest()[:8]


def bare_platform(text: str) -> str:
    """'Linux-6.8.0-1017-azure-x86_64-with-glibc2.39' -> 'Linux-x86_64': no kernel build."""
    system = text.split("-", 1)[0]
    arch = next((arch for arch in ARCHES if arch in text), "")
    return f"{system}-{arch}" if arch else system


@dataclass(frozen=True)
class Publication:
    """The rewrites one publication applies; build it with `publication()`."""

    # (absolute folder, what a path below it is written as): "" for relative, else a prefix.
    folders: tuple[tuple[str, str], ...] = ()
    hosts: Mapping[str, str] = field(default_factory=dict)  # hostname -> published name
    platforms: Mapping[str, str] = field(default_factory=dict)  # platform string -> published one
    label: str | None = None
    home: str = ""
    temp: tuple[str, ...] = TEMP_FOLDERS

    def path(self, path: str) -> str:
        """One absolute path, as it is published (escaped again when it came escaped)."""
        if "\\" not in path:
            return self._path(path)
        return MD_ESCAPED.sub(r"\1", self._path(MD_ESCAPED.sub(r"\1", path))).replace("_", "\\_").replace("*", "\\*")

    def _path(self, path: str) -> str:
        found = list(PACKAGES.finditer(path))
        if found:
            return "site-packages" + path[found[-1].end() :]
        if MODULES in path:
            return "transformers_modules/" + path.split(MODULES, 1)[1]
        stdlib = STDLIB.search(path)  # wherever that Python lives (uv's, the system's, a runner's)
        if stdlib:
            return stdlib.group(1) + path[stdlib.end() :]
        for folder, written in self.folders:
            if path == folder or path.startswith(folder + "/"):
                rest = path[len(folder) + 1 :]
                return (written + "/" + rest if rest else written) if written else (rest or ".")
        if NOX_ENVS in path:
            return ".nox/" + path.split(NOX_ENVS, 1)[1]
        workspace = RUNNER_WORKSPACE.search(path)
        if workspace:
            return path[workspace.end() + 1 :] or "."
        if self.home and (path == self.home or path.startswith(self.home + "/")):
            return "~" + path[len(self.home) :]
        home = HOMES.match(path)
        if home:
            return "~" + path[home.end() :]
        name = path.rstrip("/").rsplit("/", 1)[-1]
        if any(path == folder or path.startswith(folder + "/") for folder in self.temp):
            return f"$TMPDIR/{name}"
        if any(path == folder or path.startswith(folder + "/") for folder in SYSTEM_FOLDERS):
            return path
        return f"…/{name}"

    def text(self, text: str) -> str:
        """`text` with every path, hostname and kernel string rewritten."""
        if "/" in text:
            text = ABSOLUTE_PATH.sub(lambda match: self.path(match.group(0)), text)
        for raw, published in self.platforms.items():
            if raw in text:
                text = text.replace(raw, published)
        for raw, published in self.hosts.items():
            if raw in text:
                text = re.sub(rf"(?<![A-Za-z0-9-]){re.escape(raw)}(?![A-Za-z0-9-])", published, text)
        return text

    def data(self, data: Any) -> Any:
        """A copy of JSON-like `data` rewritten: every string (keys too), and the `hostname` and
        `platform` of a machine fingerprint also when this publication did not know them (a
        history line of an earlier run, from another machine)."""
        if isinstance(data, str):
            return self.text(data)
        if isinstance(data, dict):
            copy = {self.data(key) if isinstance(key, str) else key: self.data(value) for key, value in data.items()}
            if isinstance(copy.get("hostname"), str):
                copy["hostname"] = self.host(copy["hostname"])
            fingerprint = "hostname" in copy or "cpu_count" in copy  # not some other `platform` field
            if fingerprint and isinstance(copy.get("platform"), str) and not self.label:
                copy["platform"] = bare_platform(copy["platform"])
            return copy
        if isinstance(data, (list, tuple)):
            return [self.data(item) for item in data]
        return data

    def host(self, hostname: str) -> str:
        """The published name of a machine."""
        if hostname in self.hosts or hostname in self.hosts.values():
            return self.hosts.get(hostname, hostname)
        return self.label or host_alias(hostname)


def publication(
    folders: Iterable[Path | str] = (),
    cache: Path | str | None = None,
    machines: Iterable[Mapping[str, Any] | None] = (),
    label: str | None = None,
) -> Publication:
    """The publication of one report: paths below `folders` (the config's folder, where the
    report runs) are written relative to them, paths below `cache` as `$MATRIX_CACHE/...`; the
    hostnames and platform strings of `machines` (the cells' fingerprints) and of this
    machine are replaced. With `label`, the machines are named by it (numbered by their
    hash when several machines ran the cells)."""
    roots: dict[str, str] = {}
    if cache is not None:
        roots.update(dict.fromkeys(_absolute(cache), "$MATRIX_CACHE"))
    for folder in folders:
        for form in _absolute(folder):
            roots.setdefault(form, "")
    fingerprints = [dict(machine) for machine in machines if machine]
    names = {str(m["hostname"]) for m in fingerprints if m.get("hostname")} | {socket.gethostname(), platform.node()}
    names = {name for name in names if len(name) >= 2 and not ALIAS.match(name) and name != label}
    ran = {str(m["hostname"]) for m in fingerprints if m.get("hostname")}
    if label:
        hosts = {name: label if len(ran) <= 1 else f"{label}-{host_alias(name)[5:]}" for name in names}
    else:
        hosts = {name: host_alias(name) for name in names}
    kernels = {str(m["platform"]) for m in fingerprints if m.get("platform")} | {platform.platform()}
    release = platform.release()
    platforms = {} if label else {raw: bare_platform(raw) for raw in kernels if len(raw) >= 8}
    if not label and len(release) >= 8 and "-" in release:
        platforms[release] = "(kernel)"
    temp = tuple(dict.fromkeys([*TEMP_FOLDERS, *_absolute(tempfile.gettempdir())]))
    return Publication(
        folders=tuple(sorted(roots.items(), key=lambda item: len(item[0]), reverse=True)),
        hosts=dict(sorted(hosts.items(), key=lambda item: len(item[0]), reverse=True)),
        platforms=dict(sorted(platforms.items(), key=lambda item: len(item[0]), reverse=True)),
        label=label,
        home=_absolute(Path.home())[0],
        temp=temp,
    )


def _absolute(folder: Path | str) -> list[str]:
    """The folder as an absolute path, as given and with symlinks resolved (a text may name
    either: /tmp and /private/tmp on macOS are one folder), without a trailing '/'."""
    given = os.path.abspath(folder)
    return list(dict.fromkeys(form.rstrip("/") or "/" for form in (given, os.path.realpath(given))))


def publish_json(path: Path, data: Any, public: Publication) -> None:
    """Write a published JSON file: `public` rewrites what would name this machine, its user
    or its folders, then as `write_json_atomic`. The cell files themselves
    keep the raw facts; only what leaves for results/ goes through here."""
    write_json_atomic(path, public.data(data))


def publish_text(path: Path, text: str, public: Publication) -> None:
    """Write a published text file (Markdown, HTML, JSON lines, SVG) the same way."""
    write_text_atomic(path, public.text(text))


def publish_json_lines(path: Path, entries: list[Any], public: Publication) -> None:
    """Write a published JSON-lines file (results/history.jsonl): one strict JSON entry a line,
    each rewritten as `publish_json` does (an earlier run's line from another machine too)."""
    write_text_atomic(path, "".join(dumps_strict(public.data(entry), sort_keys=True) + "\n" for entry in entries))


def publish_files(paths: list[Path], public: Publication) -> None:
    """Pass files already written under results/ through `public`: a JSON file as data, a
    JSON-lines file line by line, anything else as text; a file it does not change is left
    as it was. The report's last step calls this on every file it wrote (so a published file
    added later cannot miss it); a file that is gone (a pin removed) is skipped."""
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except (FileNotFoundError, IsADirectoryError, UnicodeDecodeError):
            continue
        if path.suffix == ".json":
            data = json.loads(text)
            if public.data(data) != data:
                publish_json(path, data, public)
        elif path.suffix == ".jsonl":
            entries = [json.loads(line) for line in text.splitlines() if line.strip()]
            if [public.data(entry) for entry in entries] != entries:
                publish_json_lines(path, entries, public)
        elif public.text(text) != text:
            publish_text(path, text, public)
