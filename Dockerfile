# A small, non-root image that runs `auth-backend serve` with a config mounted at
# /etc/auth-backend/app-config.yaml. Build with `make image` (docker, or buildah where there
# is no Docker engine); README.md "Docker" says how to run it.
FROM python:3.11-slim AS build
WORKDIR /src
# Dependencies first, from the hashed locks only: this layer is reused until a lock changes.
# --ignore-installed: packages the base already has (pip's own, setuptools) must still land
# in /install, which is all the final stage gets.
COPY requirements/build.lock requirements/runtime.lock ./requirements/
RUN pip install --no-cache-dir --require-hashes -r requirements/build.lock \
 && pip install --no-cache-dir --require-hashes --ignore-installed --prefix=/install \
      -r requirements/runtime.lock
COPY pyproject.toml README.md ./
COPY app ./app
COPY spec ./spec
# app/spec is a link to ../spec; the wheel build copies the files it points at. No resolving
# and no build isolation: the build tools came from build.lock, the dependencies are in place.
RUN pip install --no-cache-dir --no-deps --no-build-isolation --ignore-installed --prefix=/install .

FROM python:3.11-slim
# The data directory exists, owned by the image's user, so that a named volume mounted there
# starts out writable (Docker copies the ownership into a new volume).
RUN useradd --system --uid 10001 --home-dir /var/lib/auth-backend --create-home auth-backend \
 && install -d -o auth-backend -g auth-backend -m 0700 /var/lib/auth-backend/data
COPY --from=build /install /usr/local
USER auth-backend
WORKDIR /var/lib/auth-backend
ENV AUTH_BACKEND_DATA_DIR=/var/lib/auth-backend/data
EXPOSE 7007
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:7007/.backstage/health/v1/readiness', timeout=2).status == 200 else 1)"
ENTRYPOINT ["auth-backend", "serve"]
CMD ["--config", "/etc/auth-backend/app-config.yaml", "--host", "0.0.0.0"]
