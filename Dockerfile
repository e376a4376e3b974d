# One image for every Trainyard service: web, control worker, beat, ingest and the node agent.
# Build: docker compose build   (see docs/deploying.md)

# Front-end libraries (uPlot) come from npm, pinned by package-lock.json.
FROM node:20-slim AS static
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# pip reads these: point them at a CPU-only PyTorch wheel index for a much smaller image
# when no service of this image will run on a GPU.
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL

RUN groupadd --system --gid 10001 trainyard \
 && useradd --system --uid 10001 --gid trainyard --home-dir /app --shell /usr/sbin/nologin trainyard

WORKDIR /app
# Dependencies in their own layer, pinned by constraints.txt, so a code change reuses it.
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
 && pip install -c constraints.txt -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

COPY . .
COPY --from=static /src/node_modules ./node_modules
# Editable, so the code, templates/ and static/ are all read from /app (settings' BASE_DIR).
RUN pip install --no-deps -c constraints.txt -e . \
 && mkdir -p /srv/trainyard/state /srv/trainyard/storage /srv/trainyard/node \
 && chown -R trainyard:trainyard /srv/trainyard

USER trainyard
ENV TRAINYARD_STATE_DIR=/srv/trainyard/state \
    TRAINYARD_STORAGE_ROOT=/srv/trainyard/storage
EXPOSE 8000
CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "portal.asgi:application"]
