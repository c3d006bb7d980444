# syntax=docker/dockerfile:1
# hearth: one image for the gateway, workers and `hearth up`. No build step: the TypeScript
# sources run through tsx, so the image is "dependencies + src".
#   docker build -t hearth .
#   docker run --rm -p 127.0.0.1:8080:8080 -e HEARTH_API_KEYS=$(openssl rand -hex 24) hearth
# See docs/operator.md ("Docker") and deploy/docker-compose.yml.

# ---- deps: production node_modules -------------------------------------------------------
FROM node:20-bookworm-slim AS deps
WORKDIR /app
# .npmrc carries onnxruntime-node-install=skip: the CPU build ships inside the npm tarball, and
# the install script's CUDA download would fail in an offline or proxied build.
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --no-audit --no-fund \
 && npm cache clean --force

# ---- runtime -------------------------------------------------------------------------------
FROM node:20-bookworm-slim AS runtime
# nats-server lets `hearth up` start its private, authenticated bus inside a single container;
# compose/k8s run their own nats and never use it. tini reaps children and forwards SIGTERM so
# the gateway can drain streams (server.drainMs) before exit.
RUN apt-get update \
 && apt-get install -y --no-install-recommends nats-server tini ca-certificates \
 && rm -rf /var/lib/apt/lists/*

ENV NODE_ENV=production \
    HEARTH_HOST=0.0.0.0 \
    HEARTH_PORT=8080 \
    HEARTH_LOG_PRETTY=false \
    HEARTH_WORKER_CACHE_DIR=/data/cache \
    HEARTH_CACHE_DIR=/data/cache/shards \
    HEARTH_HOME=/data/hearth \
    HEARTH_MODELS_DIR=/data/models \
    HOME=/home/node
# Everything the process writes lives under /data: the demo checkpoint (HEARTH_HOME), pulled
# models (HEARTH_MODELS_DIR, so `--model ORG/NAME` finds them), the workers' layer cache and their
# built-shard cache (HEARTH_CACHE_DIR: graphs + int4 weights, so a restart loads in seconds).
# HEARTH_HOST=0.0.0.0 is needed to be reachable through the container's port mapping; hearth
# then refuses to start without HEARTH_API_KEYS (or HEARTH_INSECURE=true): no open API by accident.

WORKDIR /app
COPY --from=deps --chown=root:root /app/node_modules ./node_modules
COPY --chown=root:root package.json package-lock.json .npmrc ./
COPY --chown=root:root bin ./bin
COPY --chown=root:root src ./src
COPY --chown=root:root config ./config
COPY --chown=root:root openapi ./openapi

# Code is root-owned and read-only to the process; only /data (models, caches) is writable.
RUN mkdir -p /data/cache /data/models /data/hearth && chown -R node:node /data
VOLUME ["/data"]
USER node

EXPOSE 8080
# Liveness of the HTTP gateway (worker containers have no HTTP server: compose/k8s disable it).
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.HEARTH_PORT||8080)+'/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]

ENTRYPOINT ["/usr/bin/tini", "--", "node", "bin/hearth.js"]
CMD ["up"]
