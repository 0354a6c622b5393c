"""The one renderer of the templates under conf/ and data/, the one parser of conf/ fragments, and
the one writer of 0600 files.

Templates use one syntax, string.Template's: `${NAME}` (upper case) is replaced, `$$` stands for a
literal `$`, and every variable is documented once, in the template's own header comment. A
variable without a value is refused, naming the template and the variable. One convenience for
pg_hba.conf: a line naming ${CLIENT_NETWORK} is repeated once per network of CLIENT_NETWORKS
(space-separated).

Fragments (conf/*.conf) are PostgreSQL configuration files: `name = value` lines, `#` comments,
values in single quotes with '' for a quote. conf_settings() gives them as written (what a DBA
is told to install), fragment_values() with the quotes removed (what Patroni, pg_ctl -c and
ALTER SYSTEM take), rendered first when the fragment is a template (replication-primary.conf).
"""

from __future__ import annotations

import os
import re
import string
import tempfile
from collections.abc import Mapping
from pathlib import Path

from hrp_harness import HarnessError
from hrp_harness.platform.paths import CONF
from hrp_harness.platform.server_user import chown_for_server

#: A setting line of a fragment: name, `=`, a quoted value or the rest of the line up to a comment.
SETTING = re.compile(r"([A-Za-z_][\w.]*)\s*=\s*('(?:[^']|'')*'|[^#]*?)\s*(?:#.*)?")


# -- templates ---------------------------------------------------------------------------------
def render(template: Path, values: Mapping[str, object]) -> str:
    """The text of template with every ${NAME} replaced by values[NAME] (str() of it)."""
    template = Path(template)
    text = template.read_text()
    if "${CLIENT_NETWORK}" in text:
        try:
            networks = str(values["CLIENT_NETWORKS"]).split()
        except KeyError:
            raise HarnessError(f"{template}: no value for variable 'CLIENT_NETWORKS'") from None
        text = "".join("".join(line.replace("${CLIENT_NETWORK}", network) for network in networks)
                       if "${CLIENT_NETWORK}" in line else line
                       for line in text.splitlines(keepends=True))
    try:
        return string.Template(text).substitute({k: str(v) for k, v in values.items()})
    except KeyError as missing:
        raise HarnessError(f"{template}: no value for variable {missing}") from None
    except ValueError as exc:  # a lone `$`: write `$$` for a literal one
        raise HarnessError(f"{template}: {exc} (a literal $ is written $$)") from None


def variables(template: Path) -> set[str]:
    """The names of the ${NAME} variables template uses (CLIENT_NETWORK counted as CLIENT_NETWORKS)."""
    found = set()
    for match in string.Template.pattern.finditer(Path(template).read_text()):
        name = match.group("named") or match.group("braced")
        if name:
            found.add("CLIENT_NETWORKS" if name == "CLIENT_NETWORK" else name)
    return found


# -- fragments ---------------------------------------------------------------------------------
def parse_fragment(text: str, where: str) -> list[tuple[str, str]]:
    """(name, value as written) of every setting of a fragment's text; where names it in errors."""
    found = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = SETTING.fullmatch(line)
        if match is None:
            raise HarnessError(f"{where}:{lineno}: expected `name = value`, got {raw!r}")
        found.append((match.group(1), match.group(2)))
    return found


def unquote(value: str) -> str:
    """A setting's value without its single quotes ('' inside is one quote)."""
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1].replace("''", "'")
    return value


def fragment_values(path: Path, values: Mapping[str, object] | None = None) -> dict[str, str]:
    """name -> unquoted value of every setting of a fragment; a template fragment is rendered
    with values first."""
    text = render(path, values) if values is not None else Path(path).read_text()
    return {name: unquote(value) for name, value in parse_fragment(text, str(path))}


def conf_settings(fragments: tuple[str, ...]) -> list[tuple[str, str, str]]:
    """(fragment, name, value as written) of every setting in the named conf/ fragments."""
    return [(fragment, name, value) for fragment in fragments
            for name, value in parse_fragment((CONF / f"{fragment}.conf").read_text(),
                                              str(CONF / f"{fragment}.conf"))]


# -- private files -----------------------------------------------------------------------------
def write_private(path: Path, text: str, server: bool = False) -> Path:
    """Write text to path as a 0600 file, atomically: a temporary file beside it, created 0600 (never
    readable by others, not even briefly), renamed over path. server: owned by the server user."""
    path = Path(path)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        if server:
            chown_for_server(Path(temporary))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
