# syntax=docker/dockerfile:1
#
# certprov-adapter container image. Three stages:
#   build    — all dependencies (TypeScript included), `npm run build` compiles src/ to dist/
#   prod-deps — production dependencies only (`npm ci --omit=dev`): no compiler, linter or test runner in the image
#   runtime  — Node.js 24 slim, dist/ + production node_modules + package.json, non-root, runs `certprov run`
#
# Build:  docker build -t REGION-docker.pkg.dev/PROJECT/certprov/certprov:$(node -p 'require("./package.json").version') \
#           --build-arg VERSION=… --build-arg REVISION=$(git rev-parse HEAD) .
# The manifests in deploy/ run it with a read-only root filesystem: nothing here writes outside /tmp and, with the
# sqlite store, the volume at $CERTPROV_DATA_DIR.

ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM ${NODE_IMAGE} AS prod-deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

FROM ${NODE_IMAGE} AS runtime
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="certprov-adapter" \
      org.opencontainers.image.description="Chrome Enterprise certificate provisioning adapter: Pub/Sub -> Chrome Management API -> your CA" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="docker.io/library/node:24-bookworm-slim"
# CERTPROV_DATA_DIR: where `run` keeps its sqlite store when the configuration names none (one replica; mount a
# ReadWriteOnce volume there — the root filesystem is read-only). Several replicas use Firestore and write nothing.
ENV NODE_ENV=production \
    NODE_OPTIONS="--enable-source-maps" \
    CERTPROV_DATA_DIR=/var/lib/certprov
WORKDIR /app
# package.json is read at start for the version (src/version.ts); dist/ keeps its source maps for stack traces.
COPY --from=prod-deps --chown=root:root /app/node_modules ./node_modules
COPY --from=build --chown=root:root /app/dist ./dist
COPY --chown=root:root package.json ./
# Files stay owned by root and read-only for the process; it runs as the image's unprivileged `node` user, by
# number so that Kubernetes can verify runAsNonRoot without resolving names.
USER 1000:1000
# /metrics, /healthz, /readyz (config http.port, default 8080).
EXPOSE 8080
# PID 1 is node itself, not npm (npm start is the demo) and not a shell: the adapter installs its own SIGTERM and
# SIGINT handlers (drain, then exit; a second signal exits at once — src/cli/run.ts), so signals reach it directly.
# It spawns no child processes, so there are no zombies to reap and no init (tini) is needed.
ENTRYPOINT ["node", "dist/main.js"]
CMD ["run", "--config", "/etc/certprov/config.yaml"]
