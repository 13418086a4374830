# The operator image: tunekeeper-operator (kopf) on the reconcile core; also carries the
# `tunekeeper` CLI, whose emulator the Helm chart can run next to the operator for demos.
# Build: docker build -t tunekeeper-operator .   (the base image is pinned to an exact tag; pin it
# by digest too in your registry: python:3.11.11-slim-bookworm@sha256:...)
#
# Stage 1 builds wheels of tunekeeper and every dependency (at the versions CI tested,
# constraints.txt); stage 2 installs them, offline, into a
# virtual environment and runs as an unprivileged user. tests/e2e/test_image.py runs the same
# install and entry point outside a container (no container engine exists where the tests run).

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY schemas ./schemas
COPY controller ./controller
RUN python -m pip wheel --no-cache-dir --constraint constraints.txt --wheel-dir /wheels ".[operator]"

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 tunekeeper \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin tunekeeper
COPY --from=build /wheels /wheels
RUN python -m venv /opt/tunekeeper \
 && /opt/tunekeeper/bin/pip install --no-cache-dir --no-index --find-links /wheels "tunekeeper[operator]" \
 && rm -rf /wheels
ENV PATH=/opt/tunekeeper/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TUNEKEEPER_DATA_DIR=/var/lib/tunekeeper/data
USER 10001:10001
EXPOSE 8080 9090
ENTRYPOINT ["tunekeeper-operator"]
