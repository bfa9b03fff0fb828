# The one image for every knflow function; KNFLOW_FUNCTION picks the function a container serves.
#   docker build -t REGISTRY/knflow-function:VERSION .
#   docker run -e KNFLOW_FUNCTION=sentiment -p 8080:8080 REGISTRY/knflow-function:VERSION
# `knflow render --image-registry REGISTRY` points every Knative Service at this image.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm
FROM ${PYTHON_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# ffmpeg decodes mp3/ogg/flac for whisper; libsndfile backs soundfile. Debian's security updates
# are wanted here, so these follow the (pinned) base image's release rather than fixed versions.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg libsndfile1 \
 && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 knflow \
 && useradd --system --uid 10001 --gid knflow --home-dir /home/knflow --create-home \
      --shell /usr/sbin/nologin knflow

WORKDIR /app

# Dependencies in their own layer (reused while only code changes), at the exact versions of
# constraints.txt, as every knflow install uses them.
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
      > /tmp/requirements.txt \
 && pip install -c constraints.txt -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

COPY README.md ./
COPY functions ./functions
COPY eventing ./eventing
COPY storage ./storage
COPY builders ./builders
COPY knative ./knative
RUN pip install --no-deps -c constraints.txt .

# Model weights are cached under /models (mount a volume there to keep them across pods);
# KNFLOW_DATA is scratch only: everything durable lives in the object store.
ENV KNFLOW_MODEL_CACHE=/models \
    HF_HOME=/models/huggingface \
    TORCH_HOME=/models/torch \
    XDG_CACHE_HOME=/models/cache \
    KNFLOW_DATA=/tmp/knflow \
    PORT=8080
RUN mkdir -p /models/huggingface /models/torch /models/cache /tmp/knflow \
 && chown -R knflow:knflow /models /tmp/knflow

USER 10001:10001
EXPOSE 8080
# The function runtime (gunicorn + Flask, CloudEvents in/out, /health/readiness|liveness) for
# the function named by KNFLOW_FUNCTION, which the Knative Service sets.
CMD ["python", "-m", "functions.runtime"]
