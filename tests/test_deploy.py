"""deploy/: the image, Compose, Kubernetes and systemd files, checked without running them.

Strategy: no container engine or cluster runs here, so each file is checked for what can
be known statically, and against the real relay wherever a file names relay: every
command a file runs is parsed by relay's own argument parser (the image's entrypoint is
run as the Dockerfile calls it), every configuration a file sets (TOML files,
``RELAY_*`` variables) is loaded with ``relay.config.load``, and ports, paths, users and
timeouts are compared across the files. The Kubernetes manifests are validated against
Kubernetes' own schemas (kubernetes-validate). Tools that may be missing here
(docker-compose, the Compose JSON schema, kubectl, systemd-analyze) add their checks
when present and skip, saying so, when not.
"""

from __future__ import annotations

import ast
import configparser
import fnmatch
import http.server
import importlib.util
import os
import re
import shlex
import shutil
import socket
import socketserver
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

import relay.config
from relay.cli import _parser as relay_parser
from relay.storage import migrations

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
BASE = DEPLOY / "kubernetes" / "base"
SYSTEMD = DEPLOY / "systemd"
RELAY_SCRIPT = Path(sys.executable).parent / "relay"

#: Kubernetes versions the manifests must be valid for: the oldest we claim, the newest known.
KUBERNETES_VERSIONS = ("1.28.0", "latest")


def drain_bound(config: relay.config.Config) -> float:
    """How long relay itself may take to stop after SIGTERM: relay/composition.py cancels what is
    left max(smtp.shutdown_timeout, worker.send_timeout) + 5 s after the signal."""
    return max(config.smtp.shutdown_timeout, config.worker.send_timeout) + 5


def assert_relay_command(argv: list[str]) -> Any:
    """``argv`` (without the program name) is a command relay's own parser accepts."""
    try:
        return relay_parser().parse_args(argv)
    except SystemExit:  # argparse's way to refuse
        pytest.fail(f"relay does not accept the command {argv!r}")


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without relay's own variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_") and k != "DATABASE_URL"}
    return {**env, **extra}


def seconds(value: str | float) -> float:
    """A Compose/systemd duration (``150s``, ``2m``, ``1m30s`` or a bare number) in seconds."""
    text = str(value).strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*(ms|min|s|m|h)", text)
    assert parts and "".join(n + u for n, u in parts) == text.replace(" ", ""), text
    scale = {"ms": 0.001, "s": 1, "m": 60, "min": 60, "h": 3600}
    return sum(float(n) * scale[u] for n, u in parts)


# ---------------------------------------------------------------- Dockerfile


def parse_dockerfile(path: Path) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """Global ARG defaults and the stages: each ``{"base", "name", "instructions"}`` with
    instructions as (KEYWORD, text) after joining continuation lines."""
    logical: list[str] = []
    pending = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):  # a comment inside a continued instruction
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    args: dict[str, str] = {}
    stages: list[dict[str, Any]] = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], words[0])
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append({"base": base, "name": name, "instructions": []})
        elif not stages:
            assert keyword == "ARG", f"only ARG may come before the first FROM, not {keyword}"
            key, _, default = rest.partition("=")
            args[key.strip()] = default.strip()
        else:
            stages[-1]["instructions"].append((keyword, rest.strip()))
    return args, stages


def instructions(stage: dict[str, Any], keyword: str) -> list[str]:
    return [text for kw, text in stage["instructions"] if kw == keyword]


def copy_pairs(stage: dict[str, Any]) -> list[tuple[list[str], str]]:
    """(sources, destination) of each COPY from the build context (not ``--from``)."""
    pairs = []
    for text in instructions(stage, "COPY"):
        words = shlex.split(text)
        if any(w.startswith("--from") for w in words):
            continue
        words = [w for w in words if not w.startswith("--")]
        pairs.append((words[:-1], words[-1]))
    return pairs


def exec_form(text: str) -> list[str]:
    value = yaml.safe_load(text)  # a JSON array is YAML
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), (
        f"{text!r} is not the exec (JSON array) form: the shell form would leave relay "
        "without SIGTERM (sh is PID 1)"
    )
    return value


@pytest.fixture(scope="module")
def dockerfile() -> tuple[dict[str, str], list[dict[str, Any]]]:
    return parse_dockerfile(DEPLOY / "Dockerfile")


@pytest.fixture(scope="module")
def final_stage(dockerfile: tuple[dict[str, str], list[dict[str, Any]]]) -> dict[str, Any]:
    return dockerfile[1][-1]


def container_to_repo(stage: dict[str, Any]) -> dict[str, Path]:
    """Where each file the final stage copies in comes from in the repository."""
    mapping = {}
    for sources, dest in copy_pairs(stage):
        for source in sources:
            if dest.endswith("/"):
                mapping[dest.rstrip("/") + "/" + Path(source).name] = ROOT / source
            else:
                mapping[dest] = ROOT / source
    return mapping


def test_dockerfile_builds_wheels_then_installs_only_them(dockerfile: Any) -> None:
    _, stages = dockerfile
    assert len(stages) == 2, "stage 1 builds wheels, stage 2 runs"
    build, runtime = stages
    assert build["name"] and any("pip wheel" in r for r in instructions(build, "RUN"))
    # Same base for both: the wheels (asyncpg, bcrypt, cryptography...) match its ABI.
    assert build["base"] == runtime["base"]
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", runtime["base"]), runtime["base"]
    installs = [r for r in instructions(runtime, "RUN") if "pip install" in r]
    assert len(installs) == 1
    assert "--no-index" in installs[0] and f"from={build['name']}" in installs[0]
    copies_from_build = [c for c in instructions(runtime, "COPY") if "--from" in c]
    assert copies_from_build == [], "the runtime takes only the wheels (a bind mount) from stage 1"


def test_the_image_hosts_on_uvloop(dockerfile: Any) -> None:
    """The wheels and the install both name the uvloop extra (relay.storage.host uses
    uvloop's loop when it is installed): without it in both, pip would quietly leave
    the image on asyncio's loop."""
    _, (build, runtime) = dockerfile
    [wheel] = [r for r in instructions(build, "RUN") if "pip wheel" in r]
    [install] = [r for r in instructions(runtime, "RUN") if "pip install" in r]
    assert "'.[uvloop]'" in wheel and "'relay[uvloop]'" in install


def test_final_user_is_numeric_and_not_root(final_stage: dict[str, Any]) -> None:
    users = instructions(final_stage, "USER")
    assert users, "the final stage must set USER"
    user, _, group = users[-1].partition(":")
    # Kubernetes' runAsNonRoot can only verify a numeric user.
    assert user.isdigit() and int(user) != 0, users[-1]
    assert not group or (group.isdigit() and int(group) != 0)
    for manifest in workloads():
        pod = manifest["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsUser"] == int(user), manifest["metadata"]["name"]


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def ignored(relative: str, patterns: list[str]) -> bool:
    """Docker's matching, simplified (no ``!`` exceptions are used): a pattern excludes
    a path that it matches, or any of whose parents it matches."""
    assert not any(p.startswith("!") for p in patterns), "update ignored() for ! patterns"
    parts = Path(relative).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        for candidate in candidates:
            if fnmatch.fnmatch(candidate, pattern):
                return True
            if pattern.startswith("**/") and fnmatch.fnmatch(Path(candidate).name, pattern[3:]):
                return True
    return False


def test_every_copy_source_exists_and_is_in_the_build_context(dockerfile: Any) -> None:
    patterns = dockerignore_patterns()
    sources = [s for stage in dockerfile[1] for pair in copy_pairs(stage) for s in pair[0]]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
        assert not ignored(source.rstrip("/"), patterns), f"COPY {source}: excluded by .dockerignore"
    # What relay needs at run time never leaves the context with the rest.
    for needed in ("relay/config.py", "sql", "setup.cfg", "README.md"):
        assert not ignored(needed, patterns), needed
    for unwanted in (".git", ".tox", "var/pgdata/base", "tests/test_deploy.py"):
        assert ignored(unwanted, patterns), unwanted


def test_migrations_land_where_relay_looks_for_them(final_stage: dict[str, Any]) -> None:
    """The wheel holds only the relay and proto packages; relay reads migrations from
    PROJECT_ROOT / "sql", PROJECT_ROOT being the parent of the relay package, which for
    an installed wheel is the venv's site-packages."""
    assert relay.config.PROJECT_ROOT == Path(relay.config.__file__).resolve().parent.parent
    assert migrations.MIGRATIONS_DIR == relay.config.PROJECT_ROOT / "sql"
    venvs = [m.group(1) for r in instructions(final_stage, "RUN")
             for m in [re.search(r"python -m venv (\S+)", r)] if m]
    assert len(venvs) == 1
    version = re.match(r"python:(\d+\.\d+)", final_stage["base"])
    assert version, final_stage["base"]
    site_packages = f"{venvs[0]}/lib/python{version.group(1)}/site-packages"
    assert (["sql/"], f"{site_packages}/sql/") in copy_pairs(final_stage)
    assert any(f"PATH={venvs[0]}/bin:" in e for e in instructions(final_stage, "ENV"))


def test_entrypoint_runs_here_as_the_dockerfile_calls_it(final_stage: dict[str, Any]) -> None:
    entrypoint = exec_form(instructions(final_stage, "ENTRYPOINT")[-1])
    default_command = exec_form(instructions(final_stage, "CMD")[-1])
    assert entrypoint[0] == "relay" and default_command == ["serve"]
    files = container_to_repo(final_stage)
    argv = [str(RELAY_SCRIPT)] + [str(files.get(word, word)) for word in entrypoint[1:]]
    assert "/etc/relay/relay.toml" in entrypoint and files["/etc/relay/relay.toml"] == DEPLOY / "relay.toml"
    assert_relay_command(entrypoint[1:] + default_command)
    for command in ("smtp", "api", "worker"):
        assert_relay_command(entrypoint[1:] + [command])

    helped = subprocess.run(argv + ["--help"], check=False, capture_output=True, text=True, env=clean_env(), timeout=60)
    assert helped.returncode == 0, helped.stderr
    for command in ("serve", "smtp", "api", "worker", "migrate"):
        assert command in helped.stdout

    shown = subprocess.run(argv + ["config"], check=False, capture_output=True, text=True, env=clean_env(), timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert 'listen = "0.0.0.0:2587"' in shown.stdout
    assert 'listen = "0.0.0.0:8080"' in shown.stdout
    assert 'self_signed_dir = "/var/lib/relay/tls"' in shown.stdout


def test_container_config_is_valid_and_writes_only_under_var_lib_relay() -> None:
    config = relay.config.load(DEPLOY / "relay.toml", environ={})
    for path in (config.tls.self_signed_dir, config.database.embedded_dir):
        assert path.startswith("/var/lib/relay/"), path
    # A lone container migrates its embedded database itself.
    assert config.database.migrate_on_start is True
    assert relay.config.parse_listen(config.smtp.listen)[1] >= 1024, "the image's user cannot bind < 1024"


def test_healthcheck_instruction_runs_the_shipped_script(final_stage: dict[str, Any]) -> None:
    (text,) = instructions(final_stage, "HEALTHCHECK")
    options, _, command = text.partition("CMD ")
    argv = exec_form(command)
    files = container_to_repo(final_stage)
    assert argv[0] == "python" and files[argv[1]] == DEPLOY / "healthcheck.py"
    assert "--timeout=" in options and "--start-period=" in options


# ---------------------------------------------------------------- the health check script


def load_healthcheck() -> ModuleType:
    spec = importlib.util.spec_from_file_location("relay_healthcheck", DEPLOY / "healthcheck.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_healthcheck_reads_the_command_and_addresses() -> None:
    health = load_healthcheck()
    argv = ["relay", "-c", "/etc/relay/relay.toml", "smtp"]
    assert health.command_of(argv) == ("smtp", "/etc/relay/relay.toml")
    assert health.command_of(["/opt/relay/bin/python", "/opt/relay/bin/relay", "--config=/x", "serve"]) == ("serve", "/x")
    assert health.command_of(["sh"]) == ("", None)
    # The addresses are the ones relay itself reads from deploy/relay.toml.
    config = relay.config.load(DEPLOY / "relay.toml", environ={})
    for section in ("smtp", "api"):
        port = relay.config.parse_listen(getattr(config, section).listen)[1]
        assert health.listen_address(section, str(DEPLOY / "relay.toml")) == ("127.0.0.1", port)


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


class _Greeter(socketserver.BaseRequestHandler):
    greeting = b"220 relay.example ESMTP\r\n"

    def handle(self) -> None:
        self.request.sendall(self.greeting)
        if self.request.recv(64).startswith(b"QUIT"):
            self.request.sendall(b"221 2.0.0 bye\r\n")


@pytest.fixture
def fake_services() -> Iterator[dict[str, str]]:
    """An HTTP server answering /healthz and an SMTP greeter, on free loopback ports."""
    http_server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    smtp_server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Greeter)
    for server in (http_server, smtp_server):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield {
            "RELAY_API__LISTEN": f"0.0.0.0:{http_server.server_address[1]}",
            "RELAY_SMTP__LISTEN": f"0.0.0.0:{smtp_server.server_address[1]}",
        }
    finally:
        for server in (http_server, smtp_server):
            server.shutdown()
            server.server_close()




def run_healthcheck(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(DEPLOY / "healthcheck.py"), command],
        check=False, capture_output=True, text=True, env=clean_env(**env), timeout=30,
    )


@pytest.mark.parametrize("command", ["api", "smtp", "serve", "worker"])
def test_healthcheck_passes_when_the_service_answers(command: str, fake_services: dict[str, str]) -> None:
    result = run_healthcheck(command, fake_services)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("command", ["api", "smtp", "serve"])
def test_healthcheck_fails_when_nothing_listens(command: str) -> None:
    with socket.socket() as sock:  # bound, never listening: refused while the check runs
        sock.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{sock.getsockname()[1]}"
        result = run_healthcheck(command, {"RELAY_API__LISTEN": closed, "RELAY_SMTP__LISTEN": closed})
    assert result.returncode == 1
    assert result.stderr.startswith("relay-healthcheck: ")


def test_healthcheck_fails_on_a_421_greeting(fake_services: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_Greeter, "greeting", b"421 4.7.0 too many connections\r\n")
    result = run_healthcheck("smtp", fake_services)
    assert result.returncode == 1 and "421" in result.stderr


# ---------------------------------------------------------------- Compose

COMPOSE_FILES = (DEPLOY / "docker-compose.yml", DEPLOY / "docker-compose.override.yml")
COMPOSE_ENV = {"POSTGRES_PASSWORD": "compose-test-password"}


def interpolate(value: Any) -> Any:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} with COMPOSE_ENV only."""
    if isinstance(value, dict):
        return {k: interpolate(v) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2) or "", match.group(3) or ""
        if name in COMPOSE_ENV:
            return COMPOSE_ENV[name]
        assert op != ":?", f"${{{name}}} is required: {arg}"
        return arg

    return re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", one, value)


def merge_compose(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Compose's merge for what these files use: mappings merge, environment by name,
    volumes by their target path, other lists are replaced."""
    merged = dict(base)
    for key, value in override.items():
        old = merged.get(key)
        if key == "volumes" and isinstance(value, list) and isinstance(old, list):
            by_target = {v.split(":")[1]: v for v in old}
            by_target.update({v.split(":")[1]: v for v in value})
            merged[key] = list(by_target.values())
        elif isinstance(value, dict) and isinstance(old, dict):
            merged[key] = merge_compose(old, value)
        else:
            merged[key] = value
    return merged


def load_compose(with_override: bool) -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILES[0].read_text())
    if with_override:
        data = merge_compose(data, yaml.safe_load(COMPOSE_FILES[1].read_text()))
    return interpolate(data)  # type: ignore[no-any-return]


def check_compose(project: dict[str, Any], development: bool) -> None:
    services = project["services"]
    assert set(services) == {"postgres", "migrate", "smtp", "api", "worker"}
    postgres = services["postgres"]
    assert postgres["image"] == "postgres:16"
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])

    image_config = relay.config.load(DEPLOY / "relay.toml", environ={})
    for name in ("migrate", "smtp", "api", "worker"):
        service = services[name]
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (DEPLOY / service["build"]["context"]).resolve() == ROOT, "the context is the repository root"
        command = service["command"]
        assert_relay_command(["-c", "/etc/relay/relay.toml", *command])
        depends = service["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy"
        # What each service runs with is a configuration relay accepts.
        env = {k: str(v) for k, v in service["environment"].items()}
        config = relay.config.load(DEPLOY / "relay.toml", environ=env)
        assert config.database.url.startswith("postgresql://relay:compose-test-password@postgres:5432/")
        assert config.database.migrate_on_start is False
        if development:
            assert config.logging.level == "debug"
        if name == "migrate":
            assert command == ["migrate", "up"] and service["restart"] == "no"
            continue
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        test = service["healthcheck"]["test"]
        assert test[:3] == ["CMD", "python", "/usr/local/bin/relay-healthcheck"] and test[3] == command[0]
        assert seconds(service["stop_grace_period"]) > drain_bound(config)
        if name in ("smtp", "api"):
            mounts = {v.split(":")[1]: v.split(":")[0] for v in service["volumes"]}
            if development:  # relay makes its own pair, in a volume of its own
                assert config.tls.cert_file == "" and config.tls.key_file == ""
                assert mounts[config.tls.self_signed_dir] in project["volumes"]
            else:
                assert Path(config.tls.cert_file).parent.as_posix() in mounts
    published = {
        name: [str(p) for p in services[name].get("ports", [])] for name in ("smtp", "api")
    }
    smtp_port = relay.config.parse_listen(image_config.smtp.listen)[1]
    api_port = relay.config.parse_listen(image_config.api.listen)[1]
    assert published["smtp"] == [f"587:{smtp_port}"]
    assert published["api"] == [f"8080:{api_port}"]
    assert "ports" not in services["worker"]


@pytest.mark.parametrize("development", [False, True], ids=["production", "development"])
def test_compose_structure(development: bool) -> None:
    check_compose(load_compose(development), development)


@pytest.mark.skipif(shutil.which("docker-compose") is None,
                    reason="docker-compose is not installed (Debian: apt-get install docker-compose)")
@pytest.mark.parametrize("development", [False, True], ids=["production", "development"])
def test_compose_config_by_docker_compose(development: bool) -> None:
    """docker-compose itself: interpolation, the merge of the override, its schema."""
    files = COMPOSE_FILES if development else COMPOSE_FILES[:1]
    argv = ["docker-compose", "--project-directory", str(DEPLOY)]
    for file in files:
        argv += ["-f", str(file)]
    result = subprocess.run(argv + ["config"], check=False, capture_output=True, text=True,
                            env=clean_env(**COMPOSE_ENV), timeout=120)
    assert result.returncode == 0, result.stderr
    project = yaml.safe_load(result.stdout)
    # docker-compose prints ports as mappings; put them back in the short form.
    for service in project["services"].values():
        service["ports"] = [
            p if isinstance(p, str) else f"{p['published']}:{p['target']}"
            for p in service.get("ports", [])
        ]
        service["volumes"] = [
            v if isinstance(v, str) else f"{v['source']}:{v['target']}" for v in service.get("volumes", [])
        ]
        if not service["ports"]:
            del service["ports"]
    check_compose(project, development)


def compose_schema() -> dict[str, Any] | None:
    """The Compose JSON schema shipped with docker-compose's Python package, if any."""
    import json

    candidates = []
    spec = importlib.util.find_spec("compose")
    if spec and spec.submodule_search_locations:
        candidates += [Path(p) / "config" / "compose_spec.json" for p in spec.submodule_search_locations]
    candidates.append(Path("/usr/lib/python3/dist-packages/compose/config/compose_spec.json"))
    for path in candidates:
        if path.is_file():
            return json.loads(path.read_text())  # type: ignore[no-any-return]
    return None


@pytest.mark.skipif(compose_schema() is None,
                    reason="no Compose JSON schema here (it ships with docker-compose's Python package)")
@pytest.mark.parametrize("file", COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_files_match_the_compose_schema(file: Path) -> None:
    import jsonschema

    schema = compose_schema()
    # Its $schema is draft 2019-09, spelled with a "#" that jsonschema does not recognise.
    jsonschema.Draft201909Validator(schema).validate(interpolate(yaml.safe_load(file.read_text())))


# ---------------------------------------------------------------- Kubernetes


def render_base() -> list[dict[str, Any]]:
    """The base as kustomize renders it, minus the ConfigMap's name hash: the resources
    listed in kustomization.yaml, the ConfigMap from configMapGenerator, the images
    and labels transformers."""
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    assert set(kustomization) <= {"apiVersion", "kind", "resources", "configMapGenerator", "images", "labels"}, \
        "render_base() does not know every field kustomization.yaml uses"
    documents = []
    for resource in kustomization["resources"]:
        documents += [d for d in yaml.safe_load_all((BASE / resource).read_text()) if d]
    for generator in kustomization.get("configMapGenerator", []):
        data = {}
        for entry in generator["files"]:
            key, _, file = entry.rpartition("=")
            data[key or Path(file).name] = (BASE / file).read_text()
        documents.append({"apiVersion": "v1", "kind": "ConfigMap",
                          "metadata": {"name": generator["name"]}, "data": data})
    images = {i["name"]: f"{i['newName']}:{i['newTag']}" for i in kustomization.get("images", [])}
    for document in documents:
        for labels in kustomization.get("labels", []):
            assert labels.get("includeSelectors") is False
            document["metadata"].setdefault("labels", {}).update(labels["pairs"])
        for container in pod_spec(document).get("containers", []):
            container["image"] = images.get(container["image"], container["image"])
    return documents


def pod_spec(document: dict[str, Any]) -> dict[str, Any]:
    template = document.get("spec", {}).get("template", {})
    return template.get("spec", {}) if isinstance(template, dict) else {}


def workloads() -> list[dict[str, Any]]:
    return [d for d in render_base() if d["kind"] in ("Deployment", "Job")]


def by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in render_base() if d["kind"] == kind}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_manifests_match_the_kubernetes_schemas(version: str) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    from kubernetes_validate.utils import latest_version

    documents = render_base()
    kinds = {d["kind"] for d in documents}
    assert {"Deployment", "Service", "ConfigMap", "Secret", "PodDisruptionBudget",
            "HorizontalPodAutoscaler", "Job", "ServiceAccount"} <= kinds
    for document in documents:
        kubernetes_validate.validate(
            document, latest_version() if version == "latest" else version, strict=True
        )


@pytest.mark.skipif(shutil.which("kubectl") is None and shutil.which("kustomize") is None,
                    reason="neither kubectl nor kustomize is installed")
def test_kustomize_renders_what_we_validate() -> None:
    """kustomize's own rendering (offline) has the same objects, with the ConfigMap
    name hashed and every reference to it rewritten."""
    argv = ["kubectl", "kustomize", str(BASE)] if shutil.which("kubectl") else ["kustomize", "build", str(BASE)]
    result = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    rendered = [d for d in yaml.safe_load_all(result.stdout) if d]
    config_maps = [d["metadata"]["name"] for d in rendered if d["kind"] == "ConfigMap"]
    assert len(config_maps) == 1 and config_maps[0].startswith("relay-config-")

    def identity(d: dict[str, Any]) -> tuple[str, str]:
        name = d["metadata"]["name"]
        return d["kind"], "relay-config" if name == config_maps[0] else name

    assert sorted(map(identity, rendered)) == sorted(map(identity, render_base()))
    for document in rendered:
        for volume in pod_spec(document).get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] == config_maps[0]


def main_container(document: dict[str, Any]) -> dict[str, Any]:
    (container,) = pod_spec(document)["containers"]
    return container  # type: ignore[no-any-return]


def k8s_config() -> relay.config.Config:
    secret = by_kind("Secret")["relay-database"]
    return relay.config.load(BASE / "relay.toml", environ={"DATABASE_URL": secret["stringData"]["url"]})


def test_configmap_is_a_valid_production_configuration() -> None:
    config = k8s_config()
    assert config.database.url.startswith("postgresql://")
    assert config.database.migrate_on_start is False
    assert config.logging.format == "json"
    assert config.tls.cert_file and config.tls.key_file
    # Every key conf/relay.toml documents is spelled out here too (changed ones marked
    # "# deploy:"), so a new key gets a production value chosen, not inherited unseen.
    documented = tomllib.loads((ROOT / "conf" / "relay.toml").read_text())
    production = tomllib.loads((BASE / "relay.toml").read_text())
    missing = [f"{section}.{key}" for section, keys in documented.items() for key in keys
               if key not in production.get(section, {})]
    assert not missing, f"add to deploy/kubernetes/base/relay.toml (with a production value): {missing}"
    assert "# deploy:" in (BASE / "relay.toml").read_text()


def test_secrets_are_clearly_placeholders() -> None:
    secrets = by_kind("Secret")
    assert set(secrets) == {"relay-database", "relay-tls"}
    assert secrets["relay-tls"]["type"] == "kubernetes.io/tls"
    for secret in secrets.values():
        assert all("REPLACE-ME" in v for v in secret["stringData"].values())
    assert "PLACEHOLDER" in (BASE / "secrets.yaml").read_text()


def test_every_workload_runs_a_relay_command_as_the_image_expects(final_stage: dict[str, Any]) -> None:
    entrypoint = exec_form(instructions(final_stage, "ENTRYPOINT")[-1])
    config_path = entrypoint[entrypoint.index("-c") + 1]
    expected = {"relay-smtp": ["smtp"], "relay-api": ["api"], "relay-worker": ["worker"],
                "relay-migrate": ["migrate", "up"]}
    found = {}
    for document in workloads():
        container = main_container(document)
        assert "command" not in container, "keep the image's ENTRYPOINT (relay -c ...)"
        assert_relay_command(entrypoint[1:] + container["args"])
        found[document["metadata"]["name"]] = container["args"]
        assert container["image"].startswith("registry.example.com/relay:")
        env = {e["name"]: e for e in container["env"]}
        assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "relay-database", "key": "url"}
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        assert mounts[config_path]["subPath"] == "relay.toml"
    assert found == expected


def test_pods_are_non_root_with_a_read_only_root() -> None:
    for document in workloads():
        name = document["metadata"]["name"]
        pod = pod_spec(document)
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["automountServiceAccountToken"] is False, name
        container = main_container(document)
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True, name
        assert security["allowPrivilegeEscalation"] is False, name
        assert security["capabilities"]["drop"] == ["ALL"], name
        volumes = {v["name"]: v for v in pod["volumes"]}
        for mount in container["volumeMounts"]:
            assert mount["name"] in volumes, f"{name}: mount {mount['name']} has no volume"
        writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
        assert writable == {"/tmp"} and "emptyDir" in volumes["tmp"], name
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][kind]), name
    # Whatever relay may write in Kubernetes lies in a writable volume.
    config = k8s_config()
    for path in (config.tls.self_signed_dir, config.database.embedded_dir):
        assert path.startswith("/tmp/"), path


def test_probes_use_what_each_service_serves() -> None:
    config = k8s_config()
    deployments = by_kind("Deployment")
    api = main_container(deployments["relay-api"])
    ports = {p["name"]: p["containerPort"] for p in api["ports"]}
    assert ports["http"] == relay.config.parse_listen(config.api.listen)[1]
    assert api["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert api["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    routes = health_routes()
    assert {"/healthz", "/readyz"} <= routes
    # /readyz may wait PING_TIMEOUT for the database: the probe must wait longer.
    from relay.api.health import PING_TIMEOUT

    assert api["readinessProbe"]["timeoutSeconds"] > PING_TIMEOUT

    smtp = main_container(deployments["relay-smtp"])
    ports = {p["name"]: p["containerPort"] for p in smtp["ports"]}
    assert ports["submission"] == relay.config.parse_listen(config.smtp.listen)[1]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert smtp[probe]["tcpSocket"] == {"port": "submission"}

    worker = main_container(deployments["relay-worker"])
    assert not {"ports", "livenessProbe", "readinessProbe", "startupProbe"} & set(worker)


def health_routes() -> set[str]:
    """The paths relay/api/health.py routes (read from its decorators)."""
    tree = ast.parse((ROOT / "relay" / "api" / "health.py").read_text())
    return {
        d.args[0].value
        for node in ast.walk(tree) if isinstance(node, ast.AsyncFunctionDef)
        for d in node.decorator_list
        if isinstance(d, ast.Call) and d.args and isinstance(d.args[0], ast.Constant)
    }


def test_tls_secret_is_where_the_configuration_looks() -> None:
    config = k8s_config()
    for name in ("relay-smtp", "relay-api"):
        document = by_kind("Deployment")[name]
        volumes = {v["name"]: v for v in pod_spec(document)["volumes"]}
        mounts = {m["mountPath"]: volumes[m["name"]] for m in main_container(document)["volumeMounts"]}
        for path, key in ((config.tls.cert_file, "tls.crt"), (config.tls.key_file, "tls.key")):
            directory, file = str(Path(path).parent), Path(path).name
            assert mounts[directory]["secret"]["secretName"] == "relay-tls", name
            assert file == key


def test_grace_periods_outlast_relays_own_drain() -> None:
    bound = drain_bound(k8s_config())
    for document in by_kind("Deployment").values():
        container = main_container(document)
        pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
        pause = float(pre_stop[1]) if pre_stop[:1] == ["sleep"] else 0.0
        assert pod_spec(document)["terminationGracePeriodSeconds"] > bound + pause


def test_services_budgets_and_autoscalers_select_the_deployments() -> None:
    deployments = by_kind("Deployment")
    for deployment in deployments.values():
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()

    def selects(selector: dict[str, str]) -> list[str]:
        return [n for n, d in deployments.items()
                if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()]

    services = by_kind("Service")
    assert selects(services["relay-smtp"]["spec"]["selector"]) == ["relay-smtp"]
    assert selects(services["relay-api"]["spec"]["selector"]) == ["relay-api"]
    smtp = services["relay-smtp"]["spec"]
    assert smtp["type"] == "LoadBalancer" and smtp["externalTrafficPolicy"] == "Local"
    assert smtp["ports"][0]["port"] == 587
    assert services["relay-api"]["spec"]["type"] == "ClusterIP"
    for service in services.values():
        (target,) = selects(service["spec"]["selector"])
        names = {p["name"] for p in main_container(deployments[target])["ports"]}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= names

    budgets = by_kind("PodDisruptionBudget")
    autoscalers = by_kind("HorizontalPodAutoscaler")
    for name in deployments:
        assert selects(budgets[name]["spec"]["selector"]["matchLabels"]) == [name]
        target = autoscalers[name]["spec"]["scaleTargetRef"]
        assert (target["kind"], target["name"]) == ("Deployment", name)
        assert autoscalers[name]["spec"]["minReplicas"] > budgets[name]["spec"]["minAvailable"]


def test_migration_job() -> None:
    (job,) = by_kind("Job").values()
    assert pod_spec(job)["restartPolicy"] == "Never"
    assert main_container(job)["args"] == ["migrate", "up"]


# ---------------------------------------------------------------- systemd


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """A unit file as {section: {key: [values in order]}} (keys may repeat in systemd)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"{path.name}: {line!r} outside a section"
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: {line!r} is not key=value"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def unit_environment(service: dict[str, list[str]]) -> dict[str, str]:
    env = {}
    for value in service.get("Environment", []):
        for word in shlex.split(value):
            key, _, val = word.partition("=")
            env[key] = val
    return env


UNITS = {"relay@.service": ["smtp", "api", "worker", "serve"], "relay-migrate.service": [""]}


@pytest.mark.parametrize("unit", UNITS)
def test_systemd_unit_runs_relay_hardened(unit: str) -> None:
    # configparser reads it too (no duplicate sections; interpolation off for %i).
    configparser.ConfigParser(strict=False, interpolation=None).read_string((SYSTEMD / unit).read_text())
    sections = parse_unit(SYSTEMD / unit)
    service = sections["Service"]
    (exec_start,) = service["ExecStart"]
    for instance in UNITS[unit]:
        argv = shlex.split(exec_start.replace("%i", instance))
        assert Path(argv[0]).is_absolute() and Path(argv[0]).name == "relay"
        parsed = assert_relay_command(argv[1:])
        if unit == "relay-migrate.service":
            assert (parsed.command, parsed.action) == ("migrate", "up")
        else:
            assert parsed.command == instance
    assert service["User"] == ["relay"]
    config = relay.config.load(ROOT / "conf" / "relay.toml", environ=unit_environment(service))
    for path in (config.tls.self_signed_dir, config.database.embedded_dir):
        assert path.startswith("/var/lib/relay/"), path
    assert "/var/lib/relay" in " ".join(service["ReadWritePaths"])
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
                       "PrivateTmp": "yes", "PrivateDevices": "yes", "RestrictSUIDSGID": "yes"}.items():
        assert service[key] == [value], key
    if unit == "relay@.service":
        assert service["Restart"] == ["on-failure"]
        assert service["KillSignal"] == ["SIGTERM"]
        assert seconds(service["TimeoutStopSec"][0]) > drain_bound(config)
        assert config.database.migrate_on_start is False
        assert "relay-migrate.service" in sections["Unit"]["After"][0]
        # Binding 587 is the one privilege relay needs.
        assert service["AmbientCapabilities"] == ["CAP_NET_BIND_SERVICE"]
        assert service["CapabilityBoundingSet"] == ["CAP_NET_BIND_SERVICE"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    """systemd's own check. It insists that ExecStart's program exists, so the copies
    it reads name this venv's relay instead of /opt/relay/venv/bin/relay; nothing else
    is changed. Unknown keys are only warnings to it: any output fails the test."""
    for unit in UNITS:
        text = (SYSTEMD / unit).read_text()
        program = shlex.split(parse_unit(SYSTEMD / unit)["Service"]["ExecStart"][0])[0]
        (tmp_path / unit).write_text(text.replace(f"ExecStart={program} ", f"ExecStart={RELAY_SCRIPT} "))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / "relay@smtp.service"), str(tmp_path / "relay-migrate.service")],
        check=False, capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), (
        result.stdout + result.stderr
    )
