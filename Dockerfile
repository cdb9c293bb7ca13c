# syntax=docker/dockerfile:1
# Build stage: installs production dependencies only. The onnxruntime-node install script
# would download CUDA files, which Wardgate does not use, so it is skipped.
FROM node:24-bookworm-slim AS build
WORKDIR /app
ENV ONNXRUNTIME_NODE_INSTALL=skip
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --ignore-scripts=false && npm cache clean --force
COPY proxy ./proxy
COPY policy ./policy
COPY scorer ./scorer
COPY certs ./certs
COPY demo ./demo

# Runtime stage: Node 24 (OpenSSL 3.5, for X25519MLKEM768), no dev dependencies, non-root.
FROM node:24-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build --chown=root:root /app /app
RUN mkdir -p /app/.wardgate && chown node:node /app/.wardgate
USER node
EXPOSE 8443
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD node -e "require('node:https').get({host:'127.0.0.1',port:process.env.WARDGATE_HEALTH_PORT||8443,path:'/.wardgate/health',rejectUnauthorized:false},r=>process.exit(r.statusCode===200?0:1)).on('error',()=>process.exit(1))"
ENTRYPOINT ["node", "proxy/cli/wardgate.ts"]
CMD ["start", "--config", "/etc/wardgate/wardgate.yaml"]
