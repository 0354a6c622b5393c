"""hrp_harness.platform.conf without a server: every template under conf/ and data/ renders with the variables
its header documents, a missing variable is refused naming it, `$$` stays a literal `$`; the
fragment parser; write_private's mode."""

from __future__ import annotations

import os
import stat

import pytest

from hrp_harness import HarnessError
from hrp_harness.platform.conf import (
    conf_settings,
    fragment_values,
    parse_fragment,
    render,
    unquote,
    variables,
    write_private,
)
from hrp_harness.platform.paths import CONF, REPO

pytestmark = pytest.mark.unit

#: Every template of the repository: *.template under conf/ and data/, and the one fragment that is
#: a template (replication-primary.conf: rendered per instance).
TEMPLATES = sorted([*CONF.rglob("*.template"), *(REPO / "data").rglob("*.template"),
                    CONF / "replication-primary.conf"])


def _header(path) -> str:
    """The leading comment block of a template (`#`, `;` or `--` lines)."""
    lines = []
    for line in path.read_text().splitlines():
        if not line.lstrip().startswith(("#", ";", "--")):
            break
        lines.append(line)
    return "\n".join(lines)


def test_the_template_list_is_complete():
    names = {p.relative_to(REPO).as_posix() for p in TEMPLATES}
    assert {"conf/instance.conf.template", "conf/patroni.yml.template", "conf/etcd.yml.template",
            "conf/pgbackrest.conf.template", "conf/pg_hba.conf.template", "conf/pg_ident.conf.template",
            "conf/pgbouncer.ini.template", "conf/haproxy.cfg.template", "conf/replication-primary.conf",
            "conf/monitoring/prometheus.yml.template", "conf/monitoring/alertmanager.yml.template",
            "data/migration/pgloader.load.template"} <= names


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_variable_is_documented_in_the_header(template):
    used = variables(template)
    assert used, f"{template} uses no ${{NAME}} variable"
    header = _header(template)
    undocumented = sorted(name for name in used if name not in header)
    assert not undocumented, f"{template}: variables not in its header comment: {undocumented}"
    assert all(name == name.upper() for name in used), f"{template}: lower-case variables {used}"


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_template_renders_with_its_variables(template):
    values = {name: f"<{name}>" for name in variables(template)}
    values["CLIENT_NETWORKS"] = "127.0.0.1/32 10.1.0.0/16"
    text = render(template, values)
    for name in variables(template) - {"CLIENT_NETWORKS"}:
        assert f"<{name}>" in text, name
        # what is left of ${NAME} is what the template wrote $${NAME}
        assert text.count(f"${{{name}}}") == template.read_text().count(f"$${{{name}}}"), name


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_a_missing_variable_is_refused_naming_template_and_variable(template):
    values = {name: "x" for name in variables(template)}
    missing = sorted(values)[0]
    del values[missing]
    with pytest.raises(HarnessError, match=rf"{template.name}: no value for variable '{missing}'"):
        render(template, values)


def test_double_dollar_stays_a_literal_dollar(tmp_path):
    template = tmp_path / "t.template"
    template.write_text("# $${NAME} is replaced\nload $$1 from ${NAME} with $$HOME\n")
    assert render(template, {"NAME": "x"}) == "# ${NAME} is replaced\nload $1 from x with $HOME\n"


def test_a_lone_dollar_is_refused(tmp_path):
    template = tmp_path / "t.template"
    template.write_text("price = $ 3\n")
    with pytest.raises(HarnessError, match=r"t\.template: Invalid placeholder .*\(a literal \$ is written \$\$\)"):
        render(template, {})


def test_values_are_inserted_verbatim(tmp_path):
    template = tmp_path / "t.template"
    template.write_text("a = ${A}\n")
    assert render(template, {"A": "${B} $$ 'q'"}) == "a = ${B} $$ 'q'\n"


def test_client_network_lines_repeat_per_network(tmp_path):
    template = tmp_path / "hba.template"
    template.write_text("local all all peer\nhost ${DATABASE} all ${CLIENT_NETWORK} scram-sha-256\n")
    text = render(template, {"DATABASE": "db", "CLIENT_NETWORKS": "127.0.0.1/32 10.0.0.0/8"})
    assert text == ("local all all peer\nhost db all 127.0.0.1/32 scram-sha-256\n"
                    "host db all 10.0.0.0/8 scram-sha-256\n")
    with pytest.raises(HarnessError, match=r"hba\.template: no value for variable 'CLIENT_NETWORKS'"):
        render(template, {"DATABASE": "db"})


# -- the fragment parser -------------------------------------------------------------------------
def test_fragment_lines_as_written():
    text = ("# comment\n\n  shared_buffers = 128MB   # trailing\n"
            "log_line_prefix = '%m [%p] it''s # not a comment '  # comment\n"
            "archive_mode=on\nsearch_path = '\"$user\", public'\nempty = ''\n")
    assert parse_fragment(text, "x.conf") == [
        ("shared_buffers", "128MB"),
        ("log_line_prefix", "'%m [%p] it''s # not a comment '"),
        ("archive_mode", "on"),
        ("search_path", "'\"$user\", public'"),
        ("empty", "''"),
    ]


def test_unquote():
    assert unquote("'it''s'") == "it's"
    assert unquote("128MB") == "128MB"
    assert unquote("''") == ""


def test_a_line_without_a_setting_is_refused():
    with pytest.raises(HarnessError,
                       match=r"x\.conf:2: expected `name = value`, got 'include_dir conf.d'"):
        parse_fragment("a = 1\ninclude_dir conf.d\n", "x.conf")


def test_fragment_values_render_a_template_fragment():
    values = fragment_values(CONF / "replication-primary.conf",
                             {"PGBACKREST_CONFIG_PATH": "/b", "STANZA": "hrp", "PGDATA": "/d"})
    assert values["archive_command"] == ("pgbackrest --config-path=/b --stanza=hrp --pg1-path=/d "
                                         "archive-push %p")
    assert values["synchronous_standby_names"] == "standby1"


def test_fragment_values_of_plain_fragments(tmp_path):
    assert int(fragment_values(CONF / "log-retention.conf")["audit_log_days"]) > 0
    assert "%" in fragment_values(CONF / "logging.conf")["log_line_prefix"]
    settings = conf_settings(("base", "audit"))
    assert {fragment for fragment, _, _ in settings} == {"base", "audit"}
    preload = [value for _, name, value in settings if name == "shared_preload_libraries"]
    assert len(preload) == 1 and preload[0].startswith("'") and "pgaudit" in preload[0]


# -- write_private -------------------------------------------------------------------------------
def test_write_private_creates_a_0600_file(tmp_path):
    old = os.umask(0)
    try:
        path = write_private(tmp_path / "secret", "s3cret\n")
    finally:
        os.umask(old)
    assert path.read_text() == "s3cret\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["secret"]  # no temporary left behind


def test_write_private_replaces_an_open_file_atomically(tmp_path):
    path = tmp_path / "secret"
    path.write_text("old\n")
    path.chmod(0o644)
    before = path.stat().st_ino
    write_private(path, "new\n")
    assert path.read_text() == "new\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.stat().st_ino != before  # a new file renamed over the old one, never the old made private


def test_write_private_leaves_nothing_when_it_fails(tmp_path):
    with pytest.raises(FileNotFoundError):
        write_private(tmp_path / "missing" / "secret", "x")
    assert list(tmp_path.iterdir()) == []
