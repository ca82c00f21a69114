# Image for source-bill. Airbyte's monorepo builds Python connectors from a shared template
# (docker-images/Dockerfile.python-connector); this standalone file does the same thing in one
# stage: install the package onto the base image, then run its console script as `airbyte`.
# Keep BASE_IMAGE equal to data.connectorBuildOptions.baseImage in metadata.yaml.
ARG BASE_IMAGE=docker.io/airbyte/python-connector-base:4.0.2@sha256:9fdb1888c4264cf6fee473649ecb593f56f58e5d0096a87ee0b231777e2e3e73
FROM ${BASE_IMAGE}

LABEL io.airbyte.name=airbyte/source-bill \
      io.airbyte.version=0.4.1

WORKDIR /airbyte/integration_code

# Only what building the package needs (see .dockerignore).
COPY pyproject.toml README.md main.py ./
COPY source_bill ./source_bill

RUN pip install --no-cache-dir .

ENV AIRBYTE_ENTRYPOINT="source-bill"

# Non-root: the base image's `airbyte` user (adduser --uid 1000). Numeric so that Kubernetes'
# runAsNonRoot can verify it (and hadolint DL3066 is satisfied); its primary group comes from /etc/passwd.
USER 1000

ENTRYPOINT ["source-bill"]
