"""What a published file may name: no machine, no user, no local folder.

Published files (results/: matrix.json, COMPATIBILITY.md, index.html, history.jsonl,
bisect/*.json, the badge) are read by strangers, and on a self-hosted runner the raw facts
name internal hosts and workspaces. The cell files keep those raw facts (the diagnosis reads
traceback paths to find the sources of the frames), so a `Publication` rewrites text only
on its way out, in the writers of probes/record.py:

- an absolute path becomes what it means on any machine: `site-packages/...` for the env's
  packages, `transformers_modules/...` for the HF modules folder (remote code),
  `python3.11/...` for the standard library, relative to the config's folder, `<cache>/...`
  below the cache, `~/...` below a home folder, `<tmp>/<name>` in a temporary folder, and
  `<local>/<name>` for anything else that is not a system folder (/usr, /etc, /proc, ...);
- a hostname becomes `host-<sha256[:8]>` (stable, so merged shards from several machines
  stay distinct and the same machine keeps its name from run to run), and a kernel string
  (`platform.platform()`) only its system and architecture, unless the config names a
  machine label (`[settings] machine_label`): then the machines are published under that
  label, with their full platform string.

Every rule is idempotent: publishing a published text again changes nothing.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import socket
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# An absolute POSIX path: a '/' that starts a name (not '//' of a URL, not '</' of a tag, not
# inside a relative path or a word), or the path of a file:// URL; it ends at a character a
# traceback, log or JSON text puts after a path.
ABSOLUTE_PATH = re.compile(r"(?:(?<=file://)|(?<![\w.~<>/\\+-]))/(?![/\s])[^\s\"'`<>|:;,()\[\]{}\\]*")
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
        """One absolute path, as it is published."""
        found = list(PACKAGES.finditer(path))
        if found:
            return "site-packages" + path[found[-1].end() :]
        if MODULES in path:
            return "transformers_modules/" + path.split(MODULES, 1)[1]
        for folder, written in self.folders:
            if path == folder or path.startswith(folder + "/"):
                rest = path[len(folder) + 1 :]
                return (written + "/" + rest if rest else written) if written else (rest or ".")
        stdlib = STDLIB.search(path)
        if stdlib:
            return stdlib.group(1) + path[stdlib.end() :]
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
            return f"<tmp>/{name}"
        if any(path == folder or path.startswith(folder + "/") for folder in SYSTEM_FOLDERS):
            return path
        return f"<local>/{name}"

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
            if isinstance(copy.get("platform"), str) and not self.label:
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
    report runs) are written relative to them, paths below `cache` as `<cache>/...`; the
    hostnames and platform strings of `machines` (the cells' fingerprints) and of this
    machine are replaced. With `label`, the machines are named by it (numbered by their
    hash when several machines ran the cells)."""
    roots: dict[str, str] = {}
    if cache is not None:
        roots.update(dict.fromkeys(_absolute(cache), "<cache>"))
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
        platforms[release] = "<kernel>"
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
